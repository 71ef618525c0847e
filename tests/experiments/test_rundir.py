"""The run directory's lifecycle (evcsa.experiments.rundir): open, resume, lock, interrupt,
close — the one code path of ``evcsa play`` and ``evcsa reproduce``.

Small: the 8×8 digits model, X_D of 20, N = 3, 4 games, one cell (about a second a run)."""

from __future__ import annotations

import sqlite3

import attrs
import pytest

from evcsa.config import parse_config
from evcsa.errors import InvalidParameter
from evcsa.experiments import run_experiment
from evcsa.experiments.rundir import RunDirectory, check_resumable
from evcsa.report import publish_results
from tests.experiments.tiny_runs import TINY


def _status(path) -> str:
    """The status the store recorded, read without opening (which would mark it running)."""
    with sqlite3.connect(path / "evcsa-run.sqlite") as db:
        return db.execute("SELECT value FROM meta WHERE name = 'status'").fetchone()[0]


@pytest.fixture
def config(tmp_path, digits_cache, monkeypatch):
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    monkeypatch.chdir(tmp_path)
    return parse_config(TINY)


def test_a_run_opens_runs_publishes_and_closes_complete(config, tmp_path):
    with RunDirectory("run", config) as run:
        assert (run.attempt, run.created, run.resumed, run.stored) == (1, True, False, 0)
        assert run.config.master_key == config.master_key
        result = run_experiment(run.config, progress=False, store=run.store)
        written = publish_results(result, run.path, store=run.store)
    assert run.status == "complete" and run.committed > 0 and not run.removed
    assert "results.json" in written and (tmp_path / "run" / "results.json").is_file()
    assert _status(tmp_path / "run") == "complete"


def test_a_resumed_run_reads_back_its_drawn_master_key(config):
    unkeyed = attrs.evolve(config, master_key=None)
    with RunDirectory("run", unkeyed) as first:
        drawn = first.config.master_key
        run_experiment(first.config, progress=False, store=first.store)
    assert drawn is not None and len(drawn) == 64
    with RunDirectory("run", unkeyed, must_exist=True) as again:
        assert (again.attempt, again.resumed, again.created) == (2, True, False)
        assert again.stored == first.committed
        assert again.config.master_key == drawn


def test_an_interrupted_new_run_without_units_leaves_no_directory(config, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory("run", config, discard_if_empty=True) as run:
            raise KeyboardInterrupt
    assert (run.status, run.committed, run.removed) == ("interrupted", 0, True)
    assert not (tmp_path / "run").exists()


def test_a_failed_run_keeps_its_directory_unless_asked_and_records_the_status(config, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with RunDirectory("run", config) as run:
            raise RuntimeError("boom")
    assert (run.status, run.removed) == ("failed", False)
    assert _status(tmp_path / "run") == "failed"


def test_an_interrupted_run_keeps_its_finished_units(config, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory("run", config, discard_if_empty=True) as run:
            run_experiment(run.config, progress=False, store=run.store)
            raise KeyboardInterrupt
    assert run.status == "interrupted" and run.committed > 0 and not run.removed
    assert (tmp_path / "run" / "evcsa-run.sqlite").is_file()


def test_the_lock_refuses_a_second_opening_while_the_first_is_open(config):
    with RunDirectory("run", config):
        with pytest.raises(InvalidParameter, match="in use by a run in progress"):
            RunDirectory("run", config).open()
    with RunDirectory("run", config) as again:  # released on closing
        assert again.attempt == 2


def test_resume_of_a_directory_without_a_run_is_refused(config, tmp_path):
    with pytest.raises(InvalidParameter, match="no such directory"):
        RunDirectory("nothere", config, must_exist=True).open()
    assert not (tmp_path / "nothere").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameter, match="no evcsa-run.sqlite in it"):
        check_resumable("empty")


def test_overwrite_starts_over_and_resume_false_refuses_an_existing_run(config):
    with RunDirectory("run", config) as run:
        run_experiment(run.config, progress=False, store=run.store)
    with pytest.raises(InvalidParameter, match="got an existing run"):
        RunDirectory("run", config, resume=False).open()
    with RunDirectory("run", config, overwrite=True) as fresh:
        assert (fresh.attempt, fresh.created, fresh.stored) == (1, True, 0)


def test_misuse_is_refused(config):
    closed = RunDirectory("run", config)
    with pytest.raises(InvalidParameter, match="expected an open run directory, got a closed one"):
        closed.store
    with closed:
        with pytest.raises(InvalidParameter, match="got one already open"):
            closed.open()
        with pytest.raises(InvalidParameter, match="status: expected 'complete', 'interrupted' or 'failed'"):
            closed.close("done")
    closed.close()  # closing a closed directory does nothing
    assert closed.status == "complete"
