"""The experiment engine: units of work with content keys, the run-directory store, resume
after SIGKILL, the executors (serial, process pool, Dask) giving identical stored results,
plugins and the lock.

Small: the 8×8 digits model, X_D of 30, N = 5; a cell's games split into chunks of 25."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import attrs
import numpy as np
import pytest

from evcsa.config import load_config, parse_config
from evcsa.errors import InvalidParameter
from evcsa.experiments import run_experiment
from evcsa.experiments.executors import DaskExecutor, PoolExecutor, SerialExecutor
from evcsa.experiments.store import RunStore, SubmittedSamples
from tests.experiments.tiny_runs import stored_units

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

SMALL = """
name = "engine"
seed = 5
runs = 30
# one fixed master key: runs in different directories (serial, pool, Dask, uninterrupted)
# derive the same defense keys and must give the same numbers
master_key = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
legitimate_draws = 1
[data]
dataset = "digits"
samples = 30
[model]
reference = "digits"
[game]
n_chosen = 5
epsilon = 0.3
[[defenses]]
label = "plain"
kind = "none"
[[defenses]]
label = "rs"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.3
[[adversaries]]
label = "mine"
kind = "plugin_adversaries:NoisyTransfer"
strength = 0.3
[[adversaries]]
label = "graybox FGSM"
kind = "graybox_transfer"
attack = "fgsm"
[[adversaries]]
label = "graybox FGSM again"
kind = "graybox_transfer"
attack = "fgsm"
[figures]
deltas = [0.0, 0.3]
n_values = [1, 5]
draws = 3
attack = "fgsm"
examples = 2
"""


@pytest.fixture
def small(tmp_path, digits_cache, monkeypatch):
    """The configuration, written beside the plugin module (found through base_dir)."""
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    (tmp_path / "plugin_adversaries.py").write_text((HERE / "plugin_adversaries.py").read_text())
    (tmp_path / "engine.toml").write_text(SMALL)
    return load_config(tmp_path / "engine.toml")



def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == b[key][0] and a[key][1] == b[key][1], a[key][0]
        assert a[key][2].keys() == b[key][2].keys()
        for name in a[key][2]:
            assert np.array_equal(a[key][2][name], b[key][2][name]), (a[key][0], name)


def _run(config, path, executor=None):
    with RunStore.open(path, config) as store:
        result = run_experiment(config, progress=False, store=store, executor=executor)
    return result


def test_graybox_crafting_is_shared_and_identical_work_done_once(small, tmp_path):
    """3 adversaries × 2 defenses: the plugin prepares nothing (no set crafted), the two
    identical FGSM tables craft one set for both defenses and the sweep crafts its own."""
    result = _run(small, tmp_path / "run")
    counts = result.environment["units"]
    assert counts["craftings"] == 2, counts  # FGSM once for 4 cells, the sweep's set
    cells = {(c.defense, c.adversary): c for c in result.cells}
    assert len(cells) == 6 and all(c.runs == 30 for c in cells.values())
    # both FGSM tables submit the same crafted set (shared crafting), against each defense
    for d in ("plain", "rs"):
        a = SubmittedSamples.load(tmp_path / "run", d, "graybox FGSM")
        b = SubmittedSamples.load(tmp_path / "run", d, "graybox FGSM again")
        assert np.array_equal(a.x_adv[:5], b.x_adv[:5])
    plain = SubmittedSamples.load(tmp_path / "run", "plain", "graybox FGSM")
    rs = SubmittedSamples.load(tmp_path / "run", "rs", "graybox FGSM")
    assert np.array_equal(plain.x_adv, rs.x_adv), "one adversarial set for every defense"
    assert len(plain) == 30 * 5 and plain.games.max() == 29
    assert int(plain.success.sum()) == sum(cells[("plain", "graybox FGSM")].successes)
    assert np.array_equal(plain.success, plain.labels != plain.true_labels), "untargeted, label reference"
    # the expected advantage of the first game's N samples, re-judged on fresh keys
    fgsm = cells[("plain", "graybox FGSM")]
    assert fgsm.submitted_draws == 1, "a deterministic defense is classified once"
    assert list(fgsm.submitted_successes) == plain.success[plain.games == 0].astype(int).tolist()
    rs_cell = cells[("rs", "graybox FGSM")]
    assert rs_cell.submitted_draws == 3 and len(rs_cell.submitted_successes) == 5
    e = rs_cell.expected_advantage["1.0"]
    assert e.low <= e.value <= e.high
    assert e.value == pytest.approx(float(np.prod(np.asarray(rs_cell.submitted_successes) / 3)))


def test_rerun_recomputes_nothing_and_refuses_other_configurations(small, tmp_path):
    first = _run(small, tmp_path / "run")
    before = stored_units(tmp_path / "run")
    with RunStore.open(tmp_path / "run", small) as store:
        again = run_experiment(small, progress=False, store=store)
        assert store.executions(store.attempt) == [], "no unit computed twice"
    assert again.environment["units"]["computed"] == 0
    assert [c.successes for c in again.cells] == [c.successes for c in first.cells]
    _same(before, stored_units(tmp_path / "run"))
    other = attrs.evolve(small, runs=31)
    with pytest.raises(InvalidParameter, match="holds a run of another configuration"):
        RunStore.open(tmp_path / "run", other)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidParameter, match="not an evcsa run directory"):
        RunStore.open(tmp_path / "theirs", small)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep me"
    with pytest.raises(InvalidParameter, match="got a directory evcsa did not create"):
        RunStore.open(tmp_path / "theirs", small, overwrite=True)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep me", "--overwrite deletes only evcsa's"
    RunStore.open(tmp_path / "run", other, overwrite=True).close()  # another configuration's run: replaced
    assert stored_units(tmp_path / "run") == {}


def test_a_second_run_on_the_same_directory_is_refused(small, tmp_path):
    with RunStore.open(tmp_path / "run", small):
        with pytest.raises(InvalidParameter, match="in use by a run in progress"):
            RunStore.open(tmp_path / "run", small)
        with pytest.raises(InvalidParameter, match="in use by a run in progress"):
            RunStore.open(tmp_path / "run", small, overwrite=True)
    RunStore.open(tmp_path / "run", small).close()  # released


def test_serial_pool_and_dask_store_identical_results(small, tmp_path):
    """The same stored units (records and arrays, bit for bit) on every executor; the user's
    plugin adversary plays in spawned pool workers and on Dask workers."""
    pytest.importorskip("dask.distributed")
    small = attrs.evolve(small, runs=10)
    _run(small, tmp_path / "serial", SerialExecutor())
    pool = PoolExecutor(2, threads=1)
    try:
        _run(small, tmp_path / "pool", pool)
    finally:
        pool.close()
    dask = DaskExecutor(jobs=2)
    try:
        assert dask.workers == 2
        _run(small, tmp_path / "dask", dask)
    finally:
        dask.close()
    serial = stored_units(tmp_path / "serial")
    _same(serial, stored_units(tmp_path / "pool"))
    _same(serial, stored_units(tmp_path / "dask"))


def test_a_fork_pool_is_refused(small):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from evcsa.errors import ConfigError

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with pytest.raises(ConfigError, match="spawn or forkserver"):
            run_experiment(small, progress=False, executor=pool)


def _cli(*args, cwd, env):
    return subprocess.Popen([sys.executable, "-m", "evcsa.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(path: pathlib.Path) -> int:
    try:
        db = sqlite3.connect(f"file:{path / 'evcsa-run.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def test_sigkill_half_way_then_the_same_command_finishes_without_recomputing(small, tmp_path, digits_cache):
    """kill -9 once a few units are committed; rerunning the same command computes only
    the rest (counted in the store's executions) and the results equal an uninterrupted
    run's."""
    cfg = tmp_path / "engine.toml"
    cfg.write_text(SMALL.replace("runs = 30", "runs = 75"))  # 3 chunks per cell
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVCSA_CACHE": str(digits_cache), "OMP_NUM_THREADS": "1"}
    args = ("play", "engine.toml", "-o", "run", "--no-progress")
    proc = _cli(*args, cwd=tmp_path, env=env)
    deadline = time.monotonic() + 240
    while _finished(tmp_path / "run") < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = stored_units(tmp_path / "run")
    assert 6 <= len(kept) and not (tmp_path / "run" / "results.json").exists()
    proc = _cli(*args, cwd=tmp_path, env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming run/" in out
    db = sqlite3.connect(tmp_path / "run" / "evcsa-run.sqlite")
    second = {k for (k,) in db.execute("SELECT key FROM executions WHERE attempt = 2")}
    total = db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    db.close()
    assert not (second & kept.keys()), "a finished unit was recomputed"
    assert len(second) == total - len(kept)
    proc = _cli("play", "engine.toml", "-o", "straight", "--no-progress", cwd=tmp_path, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _same(stored_units(tmp_path / "run"), stored_units(tmp_path / "straight"))
    resumed = json.loads((tmp_path / "run" / "results.json").read_text())
    straight = json.loads((tmp_path / "straight" / "results.json").read_text())
    for doc in (resumed, straight):
        for c in doc["cells"]:
            c.pop("seconds")
    assert resumed["cells"] == straight["cells"] and resumed["sweep"] == straight["sweep"]
    assert resumed["legitimate_accuracy"] == straight["legitimate_accuracy"]


def test_sigterm_leaves_a_resumable_directory_or_none(small, tmp_path, digits_cache):
    """SIGTERM stops the run like Ctrl-C: finished units are kept (exit 143, the message says
    how to resume); stopped before any unit finished, no directory is left."""
    cfg = tmp_path / "engine.toml"
    cfg.write_text(SMALL.replace("runs = 30", "runs = 75"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVCSA_CACHE": str(digits_cache), "OMP_NUM_THREADS": "1"}
    proc = _cli("play", "engine.toml", "-o", "run", "--no-progress", cwd=tmp_path, env=env)
    deadline = time.monotonic() + 240
    while _finished(tmp_path / "run") < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "finished units kept in run/" in err and "--resume run" in err
    assert _finished(tmp_path / "run") >= 3 and not list((tmp_path / "run").glob("units/*.tmp"))
    proc = _cli("play", "engine.toml", "-o", "early", "--no-progress", cwd=tmp_path, env=env)
    while not (tmp_path / "early").exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    if proc.returncode == 143 and _finished(tmp_path / "early") == 0:
        assert not (tmp_path / "early").exists(), "nothing finished: no directory left"


def test_resume_from_the_directory_alone(small, tmp_path, capsys, monkeypatch):
    from evcsa import cli

    monkeypatch.chdir(tmp_path)
    config = attrs.evolve(small, figures=attrs.evolve(small.figures, enabled=False), runs=3)
    with RunStore.open(tmp_path / "run", config) as store:
        store.log("created by the test")
    code = cli.main(["play", "--resume", "run", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "resuming run/" in out and (tmp_path / "run" / "results.json").is_file()
    code = cli.main(["play", "--resume", "run", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and err == ""
    log = (tmp_path / "run" / "run.log").read_text()
    assert "[attempt 3] 16 units, 16 already finished, 0 to run" in log


def test_check_validates_plugins(small, tmp_path, capsys, monkeypatch):
    from evcsa import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["play", "engine.toml", "--check"]) == 0
    (tmp_path / "bad.toml").write_text(SMALL.replace("plugin_adversaries:NoisyTransfer", "plugin_adversaries:Nope"))
    assert cli.main(["play", "bad.toml", "--check"]) == 2
    assert "adversaries[0].kind: expected module 'plugin_adversaries' to define 'Nope'" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text(SMALL.replace("plugin_adversaries:NoisyTransfer", "nowhere_mod:X"))
    assert cli.main(["play", "bad.toml", "--check"]) == 2
    assert "adversaries[0].kind: cannot import module 'nowhere_mod'" in capsys.readouterr().err


def test_device_auto_follows_the_machine(small):
    import torch

    from evcsa.experiments.inputs import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        from evcsa.errors import ConfigError

        with pytest.raises(ConfigError, match="device: expected a machine with CUDA"):
            resolve_device("cuda")
    with pytest.raises(Exception, match="device"):
        parse_config(SMALL.replace('name = "engine"', 'name = "engine"\ndevice = "tpu"'))


# -- fresh randomness in every game (chunks replay nothing) ------------------------------------
def _chunked(monkeypatch, games_per_chunk):
    import functools

    from evcsa.experiments import units

    monkeypatch.setattr(units, "plan_units", functools.partial(units.plan_units, games_per_chunk=games_per_chunk))


def _label_rows(path, defense, adversary):
    s = SubmittedSamples.load(path, defense, adversary)
    return [tuple(s.labels[s.games == g].tolist()) for g in range(int(s.games.max()) + 1)]


def test_a_randomized_cell_in_chunks_equals_one_chunk_and_evcsa_repeat(small, tmp_path, monkeypatch):
    """Game i's defense randomness depends on (cell, i) only: the cell played in chunks of 3
    games equals the cell in one chunk and EVCSA.repeat over the same defense, and the 12
    games do not replay one another's keys (each play unit rebuilt the defense from the
    cell's first key, so chunks 2, 3, … replayed chunk 1's labels bit for bit)."""
    from evcsa.experiments import work
    from evcsa.experiments.seeds import with_master_key
    from evcsa.games import EVCSA

    config = attrs.evolve(small, runs=12, defenses=small.defenses[1:], adversaries=small.adversaries[1:2],
                          figures=attrs.evolve(small.figures, deltas=[0.3]))
    _chunked(monkeypatch, 3)
    _run(config, tmp_path / "chunks")
    _chunked(monkeypatch, 100)
    _run(config, tmp_path / "whole")
    chunks = _label_rows(tmp_path / "chunks", "rs", "graybox FGSM")
    whole = _label_rows(tmp_path / "whole", "rs", "graybox FGSM")
    assert chunks == whole
    assert len(set(whole)) == 12, "every game draws its own noise (5 samples × 12 games)"

    config = with_master_key(config)
    inputs = work.inputs_of(config, None)
    game = EVCSA.from_rules(work.defense_of(config, 0, inputs, work._cell_keys(config, 0, 0)),
                            inputs.samples.images, inputs.samples.labels, config.game, model=inputs.model)
    repeated = game.repeat(work.adversary_of(config, 0), 12, seed=work.cell_seed(config, 0, 0), progress=False)
    assert [tuple(s.label for s in g.transcript) for g in repeated.games] == whole


# -- a unit's key names the code that computed it ------------------------------------------------
def _plan(config):
    from evcsa.experiments.provenance import fingerprint
    from evcsa.experiments.registry import build_adversary
    from evcsa.experiments.seeds import with_master_key
    from evcsa.experiments.unit_parts import inputs_of
    from evcsa.experiments.units import plan_units

    config = with_master_key(config)
    adversaries = [build_adversary(s, base_dir=config.base_dir) for s in config.adversaries]
    units, _ = plan_units(config, fingerprint(inputs_of(config, None), "cpu"), adversaries)
    return {u.name: u.key for u in units}


def test_a_plugin_fixed_between_runs_recomputes_its_units_and_only_those(small, tmp_path):
    """A run resumed after its plugin's module changed recomputes the plugin's units (the
    broken results are not kept) and reuses the others; the resume says which."""
    import sys

    plugin = tmp_path / "fixable_plugin.py"
    plugin.write_text((HERE / "plugin_adversaries.py").read_text())
    mine = attrs.evolve(small.adversaries[0], kind="fixable_plugin:NoisyTransfer")
    config = attrs.evolve(small, runs=3, adversaries=[mine, *small.adversaries[1:]],
                          figures=attrs.evolve(small.figures, enabled=False))
    before = _plan(config)
    plugin.write_text(plugin.read_text() + "\n# fixed: a comment changes the module's code\n")
    sys.modules.pop("fixable_plugin", None)  # a new process imports the fixed module
    after = _plan(config)
    changed = {name for name in before if before[name] != after[name]}
    assert changed and all("mine" in name for name in changed), changed
    assert any(name.startswith("play") for name in changed)


def test_a_run_resumed_with_other_evcsa_code_reuses_nothing_and_says_so(small, tmp_path, monkeypatch):
    from evcsa.experiments import code

    config = attrs.evolve(small, runs=3, figures=attrs.evolve(small.figures, enabled=False))
    _run(config, tmp_path / "run")
    lines = []
    with RunStore.open(tmp_path / "run", config) as store:
        run_experiment(store.config, progress=False, store=store, log=lines.append)
    assert any(line.startswith("resuming: ") and " reused from the store, 0 computed" in line for line in lines)
    monkeypatch.setattr(code, "evcsa_source_digest", lambda: "0" * 64)  # another commit of evcsa
    lines.clear()
    with RunStore.open(tmp_path / "run", config) as store:
        result = run_experiment(store.config, progress=False, store=store, log=lines.append)
    counts = result.environment["units"]
    assert counts["reused"] == 0 and counts["computed"] == counts["units"]
    stale = [line for line in lines if line.startswith("resuming: 0 of")]
    assert stale and "computed by other code or settings not used" in stale[0], lines


TAMPERING = '''
from evcsa.defenses import Defense


class Tampering(Defense):
    """Nudges its base model's first weight at every classification (in place)."""

    def predict(self, x):
        p = next(self.base.model.module.parameters())
        p.data.view(-1)[0] += 0.01
        return self.base.predict(x)


def build(model, keys, **params):
    return Tampering(model)
'''


def test_a_defense_changing_the_shared_model_in_place_fails_its_unit_and_poisons_no_cell(small, tmp_path):
    """Units of one process share the loaded model: a defense writing to it would change the
    numbers of every later cell. The unit fails (ModelTampered, naming it), nothing of it is
    stored, and the next run loads the model afresh."""
    from evcsa.errors import ModelTampered
    from evcsa.experiments.inputs import load_inputs

    (tmp_path / "tampering_defense.py").write_text(TAMPERING)
    config = attrs.evolve(small, runs=2, defenses=[attrs.evolve(small.defenses[0], kind="tampering_defense:build")],
                          adversaries=small.adversaries[1:2], figures=attrs.evolve(small.figures, enabled=False))
    pristine = load_inputs(small).model.module.state_dict()
    pristine = {k: v.clone() for k, v in pristine.items()}
    with pytest.raises(ModelTampered, match="expected legitimate accuracy of plain to leave the model and the "
                                            "data unchanged, got them changed in place"):
        _run(config, tmp_path / "run")
    assert not any(kind == "legitimate" for kind, _, _ in stored_units(tmp_path / "run").values())
    reloaded = load_inputs(small).model.module.state_dict()
    assert all(np.array_equal(pristine[k].numpy(), reloaded[k].numpy()) for k in pristine)


def _evolve_spec(specs, i, **params):
    specs = list(specs)
    specs[i] = attrs.evolve(specs[i], params={**specs[i].params, **params})
    return specs


#: (what changes, the change, which units' results it can change — by unit name). Every unit
#: it can change must get a new key (else a resumed or shared run reuses a wrong result), and
#: every other unit must keep its key (else identical work is redone and sharing breaks).
KEY_FIELDS = [
    ("the run's name", lambda c: attrs.evolve(c, name="renamed"), lambda n: False),
    ("the executor", lambda c: attrs.evolve(c, executor="processes", jobs=2), lambda n: False),
    ("the figures' τ values", lambda c: attrs.evolve(c, figures=attrs.evolve(c.figures, taus=(0.5,))),
     lambda n: False),
    ("a defense's δ", lambda c: attrs.evolve(c, defenses=_evolve_spec(c.defenses, 1, delta=0.4)),
     lambda n: " rs " in n or n.endswith((" rs", "(rs)"))),
    ("an adversary's attack", lambda c: attrs.evolve(c, adversaries=_evolve_spec(c.adversaries, 1, attack="bim")),
     lambda n: "graybox FGSM" in n and "FGSM again" not in n),
    ("the game's ε", lambda c: attrs.evolve(c, game=attrs.evolve(c.game, epsilon=0.2)),
     lambda n: not n.startswith(("legitimate accuracy", "sweep legitimate"))),
    ("legitimate draws", lambda c: attrs.evolve(c, legitimate_draws=2),
     lambda n: n.startswith(("legitimate accuracy", "sweep "))),
    ("the re-judging draws", lambda c: attrs.evolve(c, figures=attrs.evolve(c.figures, draws=4)),
     lambda n: n.startswith(("re-judge", "sweep ")) and not n.startswith("sweep legitimate")),
    ("the master key", lambda c: attrs.evolve(c, master_key="ab" * 32), lambda n: True),
    ("the public seed", lambda c: attrs.evolve(c, seed=6), lambda n: True),
    ("the data", lambda c: attrs.evolve(c, data=attrs.evolve(c.data, samples=25)), lambda n: True),
]


@pytest.mark.parametrize("what, change, affected", KEY_FIELDS, ids=[k[0] for k in KEY_FIELDS])
def test_a_field_changes_the_key_of_every_unit_whose_result_it_changes_and_no_other(small, what, change,
                                                                                    affected):
    before = _plan(small)
    after = _plan(change(small))
    changed = {name for name in before if before[name] != after.get(name)}
    expected = {name for name in before if affected(name)}
    assert changed >= expected, f"{what}: units whose result changes keep their key: {sorted(expected - changed)}"
    if what not in ("the public seed", "the data", "the master key"):
        assert changed <= expected, f"{what}: units it cannot change get new keys: {sorted(changed - expected)}"


def test_two_cells_of_one_defense_draw_independent_randomness(small, tmp_path):
    """The cell's keys derive from (defense, adversary): two adversaries submitting the same
    crafted set to the same randomized defense see different noise (a derivation without the
    adversary would give both cells the same labels, game for game)."""
    config = attrs.evolve(small, runs=4, figures=attrs.evolve(small.figures, enabled=False))
    _run(config, tmp_path / "run")
    a = SubmittedSamples.load(tmp_path / "run", "rs", "graybox FGSM")
    b = SubmittedSamples.load(tmp_path / "run", "rs", "graybox FGSM again")
    assert np.array_equal(a.x_adv, b.x_adv), "the same samples"
    # 20 submissions under δ = 0.3: equal labels throughout would need every draw to agree
    assert not np.array_equal(a.labels, b.labels)
