"""What a unit computes (evcsa.experiments.work): determined work done once.

A cell whose defense is deterministic and whose adversary plays without coins plays one game
per play unit and replicates it; the stored units equal, bit for bit, those of the run with
the collapse off (``EVCSA_COLLAPSE=0``). A randomized defense is never collapsed.

Small: the 8×8 digits model, X_D of 20, N = 5, 30 games per cell (two play units)."""

from __future__ import annotations

import pathlib

import attrs
import numpy as np
import pytest

from evcsa.config import parse_config
from evcsa.experiments import run_experiment, work
from evcsa.experiments.executors import SerialExecutor
from evcsa.experiments.store import RunStore
from tests.experiments.tiny_runs import stored_units

HERE = pathlib.Path(__file__).resolve().parent

CONFIG = """
name = "determined"
seed = 7
runs = 30
master_key = "7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed7eed"
legitimate_draws = 1
[data]
dataset = "digits"
samples = 20
[model]
reference = "digits"
[game]
n_chosen = 5
epsilon = 0.3
[[defenses]]
label = "plain"
kind = "none"
[[defenses]]
label = "median"
kind = "feature_squeezing"
squeezers = "median-2x2"
[[defenses]]
label = "rs"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.4
[[adversaries]]
label = "graybox FGSM"
kind = "graybox_transfer"
attack = "fgsm"
[[adversaries]]
label = "noisy"
kind = "plugin_adversaries:NoisyTransfer"
strength = 0.3
"""


@pytest.fixture
def config(tmp_path, digits_cache, monkeypatch):
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    (tmp_path / "plugin_adversaries.py").write_text((HERE / "plugin_adversaries.py").read_text())
    return parse_config(CONFIG, base_dir=tmp_path)



def _run_counting(config, path, monkeypatch) -> tuple[dict[str, int], object]:
    """Run ``config`` serially in this process; the games played, by defense label."""
    from evcsa.games import game as game_module

    played: dict[str, int] = {}
    original = game_module.EVCSA._play_prepared

    def counting(self, adversary, knowledge, classifier=None):
        label = type(self.classifier).__name__
        played[label] = played.get(label, 0) + 1
        return original(self, adversary, knowledge, classifier)

    monkeypatch.setattr(game_module.EVCSA, "_play_prepared", counting)
    with RunStore.open(path, config) as store:
        result = run_experiment(config, progress=False, store=store, executor=SerialExecutor())
    monkeypatch.setattr(game_module.EVCSA, "_play_prepared", original)
    return played, result


def test_a_determined_cell_plays_once_per_unit_and_stores_what_the_full_run_stores(config, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "0")
    full_played, full = _run_counting(config, tmp_path / "full", monkeypatch)
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "1")
    once_played, once = _run_counting(config, tmp_path / "once", monkeypatch)
    a, b = stored_units(tmp_path / "full"), stored_units(tmp_path / "once")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == b[key][0] and a[key][1] == b[key][1], a[key][0]
        assert a[key][2].keys() == b[key][2].keys()
        for name in a[key][2]:
            assert np.array_equal(a[key][2][name], b[key][2][name]), (a[key][0], name)
    assert [c.adversarial_accuracy for c in full.cells] == [c.adversarial_accuracy for c in once.cells]
    # 2 adversaries × 30 games per defense without the collapse
    assert full_played == {"ModelClassifier": 60, "FeatureSqueezing": 60, "RandomizedSqueezing": 60}
    # the graybox cells of the deterministic defenses: one game per play unit (2 units);
    # the coin-using NoisyTransfer and the randomized defense: every game
    assert once_played == {"ModelClassifier": 2 + 30, "FeatureSqueezing": 2 + 30, "RandomizedSqueezing": 60}


def test_a_randomized_defense_is_never_collapsed(config, digits_cache):
    """Decided from the declarations: RandomizedSqueezing holds a key source (randomized),
    so no adversary's declaration collapses its cells; the deterministic defenses collapse
    only with an adversary that declares its play coin-free."""
    from evcsa.adversaries._common import PreparedAdversary
    from evcsa.experiments.seeds import with_master_key

    keyed = with_master_key(config)
    inputs = work.inputs_of(keyed, None)
    defenses = [work.defense_of(keyed, d, inputs, work._cell_keys(keyed, d, 0)) for d in range(3)]
    graybox = PreparedAdversary(work.adversary_of(keyed, 0), candidates=None, image_shape=(1, 8, 8), n_samples=20)
    noisy = work.adversary_of(keyed, 1)
    assert [work.is_determined(d, graybox) for d in defenses] == [True, True, False]
    assert [work.is_determined(d, noisy) for d in defenses] == [False, False, False]

    class Undeclared:  # a classifier that declares nothing counts as randomized
        def predict(self, x):
            return np.zeros(len(x), dtype=np.int64)

    assert not work.is_determined(Undeclared(), graybox)
    assert not work.is_determined(defenses[0], attrs.evolve(graybox, strategy=object()))


def test_the_collapse_switch_reads_the_environment(monkeypatch):
    monkeypatch.delenv(work.COLLAPSE_VARIABLE, raising=False)
    assert work.collapsing()
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "0")
    assert not work.collapsing()
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "1")
    assert work.collapsing()
