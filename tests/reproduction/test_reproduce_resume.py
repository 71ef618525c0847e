"""``evcsa reproduce`` through the engine: killed with SIGKILL half way, the same command
finishes without recomputing a finished unit and prints what an uninterrupted run with the
same master key prints; the graybox sets are crafted once for the whole plan (on the 8×8
digits, ``--quick``; about 40 s)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
ARGS = ("reproduce", "mix-n-squeeze", "--quick", "--data", "digits")


def _cli(*args: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evcsa.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _query(db_path: pathlib.Path, sql: str) -> list[tuple]:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []


def _databases(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(root.glob("*/evcsa-run.sqlite"))


def _finished(root: pathlib.Path) -> dict[str, set[str]]:
    """Run directory name → keys of its finished units."""
    return {db.parent.name: {k for (k,) in _query(db, "SELECT key FROM units")} for db in _databases(root)}


def _numbers(root: pathlib.Path) -> dict[str, object]:
    """Every part's comparison rows and raw data (not the wall times)."""
    out = {}
    for part in ("table1", "table2", "table3", "figures"):
        doc = json.loads((root / f"{part}.json").read_text())
        out[part] = (doc["comparisons"], doc["data"])
    return out


@pytest.fixture()
def env(digits_cache) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "EVCSA_CACHE": str(digits_cache), "OMP_NUM_THREADS": "1"}


def test_sigkill_then_the_same_command_finishes_without_recomputing(tmp_path, env) -> None:
    proc = _cli(*ARGS, "-o", "repro", cwd=tmp_path, env=env)
    deadline = time.monotonic() + 240
    while (sum(map(len, _finished(tmp_path / "repro").values())) < 120 and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = _finished(tmp_path / "repro")
    assert sum(map(len, kept.values())) >= 120 and not (tmp_path / "repro" / "reproduction.json").exists()

    proc = _cli(*ARGS, "-o", "repro", cwd=tmp_path, env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming" in out and "Table 3:" in out
    for name, keys in kept.items():
        second = {k for (k,) in _query(tmp_path / "repro" / name / "evcsa-run.sqlite",
                                       "SELECT key FROM executions WHERE attempt = 2")}
        assert not second & keys, f"{name}: a finished unit was recomputed"

    # an uninterrupted run with the same master key gives the same numbers
    (tmp_path / "straight").mkdir()
    (tmp_path / "straight" / "master-key").write_text((tmp_path / "repro" / "master-key").read_text())
    proc = _cli(*ARGS, "-o", "straight", cwd=tmp_path, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _numbers(tmp_path / "repro") == _numbers(tmp_path / "straight")

    # one craft per graybox attack for Tables 1, 2 and the figures together; none in a sweep
    crafts = [row for db in _databases(tmp_path / "straight") if "table3" not in db.parent.name
              for row in _query(db, "SELECT kind FROM executions WHERE kind IN ('craft', 'sweep_craft')")]
    assert len(crafts) == 10 and {k for (k,) in crafts} == {"craft"}
    legit = [row for db in _databases(tmp_path / "straight")
             for row in _query(db, "SELECT key FROM executions WHERE kind = 'sweep_legitimate'")]
    assert len(legit) == len(set(legit)) == 3 * 2  # 3 squeezers × 2 δ, shared by the 10 attacks' sweeps


def test_overwrite_starts_over_with_a_new_key(tmp_path, env) -> None:
    proc = _cli(*ARGS, "--part", "table1", "-o", "repro", cwd=tmp_path, env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    key = (tmp_path / "repro" / "master-key").read_text()
    proc = _cli(*ARGS, "--part", "table1", "-o", "repro", "--overwrite", cwd=tmp_path, env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming" not in out and (tmp_path / "repro" / "master-key").read_text() != key
    assert [r[0] for r in _query(tmp_path / "repro" / "mix-n-squeeze-table1" / "evcsa-run.sqlite",
                                 "SELECT DISTINCT attempt FROM executions")] == [1]


def test_bad_jobs_is_one_line(tmp_path, env) -> None:
    proc = _cli(*ARGS, "--jobs", "0", "-o", "repro", cwd=tmp_path, env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--jobs: expected a positive number of workers, got 0" in err
