"""Every unit validates what it stores, and stores what the game judged (issue 27 items 2, 4).

- a defense answering [B, 1], float or out-of-range labels fails the first unit that
  classifies with it — legitimate accuracy, a sweep point, a rejudge — with one line naming
  the unit, and nothing of it is committed (it used to commit "25,009 correct of 500", and
  the run could never finish);
- an adversary's NaN or out-of-range p̂ fails its cell's play unit, not the whole run at the end;
- the samples stored for a cell are the x′ the game judged, even when the adversary
  submits from 6 threads at once, through a lying tensor subclass, from a buffer it
  overwrites right after each call.

Small: the 8×8 digits model, X_D of 12, N = 12 (or 4), 2 games; figures off unless needed.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3

import attrs
import numpy as np
import pytest
import torch

from evcsa.config import load_config
from evcsa.errors import InvalidOutput
from evcsa.experiments import run_experiment
from evcsa.experiments.store import RunStore, SubmittedSamples

HERE = pathlib.Path(__file__).resolve().parent

CONFIG = """
name = "validated"
seed = 7
runs = 2
master_key = "7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed"
legitimate_draws = 1
[data]
dataset = "digits"
samples = 12
[model]
reference = "digits"
[game]
n_chosen = 4
epsilon = 0.3
[[defenses]]
label = "bad"
kind = "plugin_faulty:faulty"
mode = "column"
[[adversaries]]
label = "noise"
kind = "plugin_adversaries:NoisyTransfer"
[figures]
enabled = false
"""


def _config(tmp_path, text=CONFIG, **replace):
    for old, new in replace.items():
        text = text.replace(old, new)
    for name in ("plugin_faulty.py", "plugin_adversaries.py"):
        (tmp_path / name).write_text((HERE / name).read_text())
    (tmp_path / "run.toml").write_text(text)
    return load_config(tmp_path / "run.toml")


@pytest.fixture
def cache(digits_cache, monkeypatch):
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    return digits_cache


def _stored_kinds(path: pathlib.Path) -> dict[str, list[dict]]:
    db = sqlite3.connect(path / "evcsa-run.sqlite")
    rows = db.execute("SELECT kind, record FROM units").fetchall()
    db.close()
    out: dict[str, list[dict]] = {}
    for kind, record in rows:
        out.setdefault(kind, []).append(json.loads(record))
    return out


def _run(config, path):
    with RunStore.open(path, config) as store:
        return run_experiment(config, progress=False, store=store)


@pytest.mark.parametrize("mode, got", [
    ("column", r"got torch tensor of dtype torch.int64 and shape \(500, 1\)"),
    ("float", r"got torch tensor of dtype torch.float32 and shape \(500,\)"),
    ("range", r"labels in \[-1, 9\], got values in \[1\d, 1\d\]"),
    ("count", r"got torch tensor of dtype torch.int64 and shape \(501,\)"),
])
def test_a_bad_classifier_answer_fails_the_legitimate_unit_and_nothing_is_stored(cache, tmp_path, mode, got):
    config = _config(tmp_path, **{'mode = "column"': f'mode = "{mode}"'})
    with pytest.raises(InvalidOutput, match=r"^legitimate accuracy of bad: expected classifier.predict .*" + got) as info:
        _run(config, tmp_path / "run")
    assert "\n" not in str(info.value)
    stored = _stored_kinds(tmp_path / "run")
    assert "legitimate" not in stored, stored.get("legitimate")
    assert all(r["correct"] <= r["trials"] for r in stored.get("legitimate", []))


def test_accuracy_counts_checks_every_answer():
    """The engine's one "classify and count" helper refuses [B, 1] (it used to broadcast
    [B, 1] == [B] into B² comparisons: 25,009 correct of 500)."""
    from evcsa.experiments.unit_parts import accuracy_counts
    from evcsa.testing import PixelCodeModel, coded_samples

    from plugin_faulty import Faulty

    labels = torch.arange(20) % 10
    images = coded_samples(labels)
    good = Faulty(PixelCodeModel(10), "none")
    assert accuracy_counts(good, images, labels, 2, num_classes=10) == (40, 40)
    for mode in ("column", "float", "range", "count"):
        with pytest.raises(InvalidOutput, match="expected classifier.predict"):
            accuracy_counts(Faulty(PixelCodeModel(10), mode), images, labels, 1, num_classes=10)


def test_rejudge_checks_the_classifier_answers():
    """rejudge used to view a [B, 1] answer as [draws, B] and count labels ≥ K as successes."""
    from evcsa.games import Rules, rejudge
    from evcsa.testing import PixelCodeModel, coded_samples

    from plugin_faulty import Faulty

    labels = torch.arange(6) % 10
    x = coded_samples(labels)
    rules = Rules(n_chosen=6)
    assert rejudge(Faulty(PixelCodeModel(10), "none"), x, x, labels, rules, draws=2).tolist() == [0] * 6
    for mode in ("column", "float", "range", "count"):
        with pytest.raises(InvalidOutput, match="expected classifier.predict"):
            rejudge(Faulty(PixelCodeModel(10), mode), x, x, labels, rules, draws=2)


def test_a_bad_sweep_classifier_fails_its_sweep_unit(cache, tmp_path, monkeypatch):
    from evcsa.experiments import sweep_work

    from plugin_faulty import Faulty

    text = CONFIG.replace('kind = "plugin_faulty:faulty"\nmode = "column"',
                          'kind = "feature_squeezing"\nsqueezers = "bit-depth-1"')
    text = text.replace("enabled = false", 'deltas = [0.0]\nn_values = [1]\ndraws = 2\nattack = "fgsm"\nexamples = 1')
    config = _config(tmp_path, text)
    real = sweep_work.sweep_defense
    monkeypatch.setattr(sweep_work, "sweep_defense", lambda *a: Faulty(real(*a), "range"))
    with pytest.raises(InvalidOutput, match=r"^sweep legitimate accuracy bit-depth-1 δ = 0: expected classifier.predict labels"):
        _run(config, tmp_path / "run")
    stored = _stored_kinds(tmp_path / "run")
    assert "sweep_legitimate" not in stored and "sweep_point" not in stored


@pytest.mark.parametrize("value", ["nan", "1.5", "-0.1"])
def test_a_bad_estimate_fails_its_cell_not_the_run_at_the_end(cache, tmp_path, value):
    text = CONFIG.replace('kind = "plugin_faulty:faulty"\nmode = "column"', 'kind = "none"')
    text = text.replace('kind = "plugin_adversaries:NoisyTransfer"',
                        f'kind = "plugin_faulty:BadEstimates"\nvalue = "{value}"')
    config = _config(tmp_path, text)
    with pytest.raises(InvalidOutput, match=r"^play bad × noise, games 0–1: expected the adversary's p̂ in \[0, 1\]"):
        _run(config, tmp_path / "run")
    stored = _stored_kinds(tmp_path / "run")
    assert "play" not in stored and "legitimate" in stored


def test_the_output_checks_refuse_counts_above_their_totals():
    """The checks themselves, on outputs that no shipped component makes."""
    from evcsa.experiments.output_checks import Facts, check_output
    from evcsa.experiments.units import Output, Unit

    facts = Facts(samples=12, image_shape=(1, 8, 8), num_classes=10, legitimate=500, n_chosen=4)
    unit = Unit(kind="legitimate", key="0" * 64, name="legitimate x", params={"defense": 0})
    check_output(unit, Output(record={"correct": 500, "trials": 500}), facts)
    for record, what in (({"correct": 25_009, "trials": 500}, r"correct ≤ trials = 500, got 25009"),
                         ({"correct": -1, "trials": 500}, "correct"),
                         ({"correct": 3.5, "trials": 500}, "correct"),
                         ({"correct": 3, "trials": 499}, "trials")):
        with pytest.raises(InvalidOutput, match=r"^legitimate x: expected .*" + what):
            check_output(unit, Output(record=record), facts)
    rejudge = Unit(kind="rejudge", key="1" * 64, name="rejudge x", params={})
    check_output(rejudge, Output(record={"successes": [0, 3, 2], "draws": 3}), facts)
    with pytest.raises(InvalidOutput, match=r"^rejudge x: expected successes in \[0, 3\]"):
        check_output(rejudge, Output(record={"successes": [0, 4], "draws": 3}), facts)


# -- item 4: what is stored is what the game judged ----------------------------------------

THREADED = CONFIG.replace('kind = "plugin_faulty:faulty"\nmode = "column"', 'kind = "none"').replace(
    'kind = "plugin_adversaries:NoisyTransfer"', 'kind = "plugin_faulty:Threaded"').replace(
    "n_chosen = 4", "n_chosen = 12")


@pytest.mark.parametrize("lie", [False, True])
def test_a_multithreaded_adversary_is_recorded_as_the_game_judged_it(cache, tmp_path, lie):
    """6 threads submit 12 samples through attack and attack_batch, overwriting their buffer
    right after each call (and, with ``lie``, handing over a tensor subclass whose detach,
    cpu, to and clone answer zeros): the stored samples are exactly each source's x′, and
    the stored labels are the model's on them (the game's own copy was recorded)."""
    from evcsa.experiments.inputs import load_inputs

    from plugin_faulty import threaded_sample

    config = _config(tmp_path, THREADED.replace('kind = "plugin_faulty:Threaded"', f'kind = "plugin_faulty:Threaded"\nlie = {str(lie).lower()}'))
    result = _run(config, tmp_path / "run")
    cell = result.cells[0]
    assert cell.submissions == 12.0
    s = SubmittedSamples.load(tmp_path / "run", "bad", "noise")
    assert len(s) == 2 * 12
    inputs = load_inputs(config)
    knowledge = attrs.make_class("K", ["samples", "image_shape"])(inputs.samples.images,
                                                                   tuple(inputs.samples.image_shape))
    for g in range(2):
        here = s.games == g
        assert sorted(s.sources[here].tolist()) == list(range(12)), "one submission per source, none lost"
    expected = np.stack([threaded_sample(knowledge, int(src)).numpy() for src in s.sources])
    assert np.array_equal(s.x_adv, expected), "stored x′ = the submitted x′, bit for bit"
    assert np.array_equal(s.labels, inputs.model.predict(torch.from_numpy(s.x_adv)).numpy())


def test_a_poisoned_output_left_in_a_store_is_computed_again(cache, tmp_path):
    """A store written before the checks may hold "25,009 correct of 500": resuming computes
    that unit again (and says so in the store's log) instead of failing at the end forever."""
    config = _config(tmp_path, CONFIG.replace('kind = "plugin_faulty:faulty"\nmode = "column"', 'kind = "none"'))
    first = _run(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "evcsa-run.sqlite")
    with db:
        db.execute("""UPDATE units SET record = '{"correct": 25009, "trials": 500}' WHERE kind = 'legitimate'""")
    db.close()
    again = _run(config, tmp_path / "run")
    assert again.environment["units"]["computed"] == 1
    assert again.legitimate == first.legitimate
    assert _stored_kinds(tmp_path / "run")["legitimate"] == [{"correct": first.legitimate["bad"].successes,
                                                             "trials": 500}]


def test_a_crafting_with_nan_samples_fails_the_craft_unit(cache, tmp_path):
    """A NaN candidate used to be committed with its crafting (every play unit then failed
    on it, and the stored set stayed); now the craft unit fails, naming itself."""
    text = CONFIG.replace('kind = "plugin_faulty:faulty"\nmode = "column"', 'kind = "none"').replace(
        'kind = "plugin_adversaries:NoisyTransfer"', 'kind = "plugin_faulty:NaNCrafter"')
    with pytest.raises(InvalidOutput, match=r"^craft noise \(graybox, shared by every defense\): expected the "
                                            r"crafted x′ finite in \[0, 1\], got 64 NaN or infinite value\(s\)"):
        _run(_config(tmp_path, text), tmp_path / "run")
    assert "craft" not in _stored_kinds(tmp_path / "run")
