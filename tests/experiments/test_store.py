"""The run store's durability (evcsa.experiments.store): a unit counts as finished only once its
arrays are complete on disk, and a unit whose arrays went missing is computed again.

Small: the 8×8 digits model, X_D of 20, N = 3, 4 games, one cell (about a second a run)."""

from __future__ import annotations

import sqlite3

import pytest

from evcsa.config import parse_config
from evcsa.errors import CorruptStore
from evcsa.experiments import run_experiment
from evcsa.experiments import store as store_module
from evcsa.experiments.store import RunStore
from tests.experiments.tiny_runs import TINY

@pytest.fixture
def config(tmp_path, digits_cache, monkeypatch):
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    monkeypatch.chdir(tmp_path)
    return parse_config(TINY)


def _rows(path) -> set[str]:
    """The keys committed in the store on disk, read through a connection of its own."""
    with sqlite3.connect(path / "evcsa-run.sqlite") as db:
        return {k for (k,) in db.execute("SELECT key FROM units")}


def test_a_unit_is_finished_only_once_its_arrays_are_complete_on_disk(config, tmp_path, monkeypatch):
    """A failure between writing a unit's ``.npz`` and committing its row (here: the rename
    of the complete file fails) leaves the unit unfinished, in the open store and on disk,
    with no temporary file; the next run computes it and finishes with the same numbers."""
    reference = run_experiment(config, progress=False)
    real_replace = store_module.os.replace
    seen: dict[str, set[str]] = {}

    def failing_replace(src, dst):
        if not str(dst).endswith(".npz"):  # the marker, written atomically too
            return real_replace(src, dst)
        key = store_module.pathlib.Path(dst).stem
        seen[key] = _rows(tmp_path / "run")  # what is committed when the arrays land
        raise OSError("disk gone")

    monkeypatch.setattr(store_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        with RunStore.open("run", config) as store:
            try:
                run_experiment(config, progress=False, store=store)
            finally:
                (key, committed), = seen.items()
                assert key not in committed, "the row was committed before its arrays were on disk"
                assert key not in store.done(), "a unit without arrays counts as finished"
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    assert key not in _rows(tmp_path / "run")
    assert not list((tmp_path / "run" / "units").glob("*.tmp")), "no half-written file stays"
    with RunStore.open("run", config) as store:
        again = run_experiment(config, progress=False, store=store)
        assert key in {k for _, k, _ in store.executions(store.attempt)}
    assert [c.successes for c in again.cells] == [c.successes for c in reference.cells]


def test_a_unit_whose_arrays_went_missing_is_computed_again(config, tmp_path):
    """A committed row whose ``.npz`` is gone (a disk that lost it) is not a finished unit: the
    resumed run computes that unit, and only it, and gives the uninterrupted numbers."""
    with RunStore.open("run", config) as store:
        first = run_experiment(config, progress=False, store=store)
    with sqlite3.connect(tmp_path / "run" / "evcsa-run.sqlite") as db:
        key = db.execute("SELECT key FROM units WHERE kind = 'play' AND arrays = 1").fetchone()[0]
    (tmp_path / "run" / "units" / f"{key}.npz").unlink()
    with RunStore.open("run", config) as store:
        assert key not in store.done()
        again = run_experiment(config, progress=False, store=store)
        assert [k for _, k, _ in store.executions(store.attempt)] == [key], "that unit alone"
    assert [c.successes for c in again.cells] == [c.successes for c in first.cells]


@pytest.mark.parametrize("rows", [[], [("config", 7)]], ids=["missing", "not text"])
def test_config_text_refuses_a_store_without_its_configuration_as_text(tmp_path, rows):
    run = tmp_path / "run"
    run.mkdir()
    with sqlite3.connect(run / "evcsa-run.sqlite") as db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value)")
        db.executemany("INSERT INTO meta VALUES (?, ?)", rows)
    db.close()
    with pytest.raises(CorruptStore, match=r"expected an evcsa run store, got a store without its configuration"):
        RunStore.config_text(run)
