"""The executor seam (evcsa.experiments.seams.Executor) and its implementations
(evcsa.experiments.executors): what each is as the runner sees it, and that a cancelled
pool leaves no worker behind."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

from evcsa.config import parse_config
from evcsa.errors import ConfigError
from evcsa.experiments.executors import ForeignExecutor, PoolExecutor, SerialExecutor, as_executor, make_executor
from evcsa.experiments.seams import Executor
from tests.experiments.tiny_runs import TINY


def test_every_executor_implements_the_seam():
    assert isinstance(SerialExecutor(), Executor)
    with cf.ThreadPoolExecutor(2) as pool:
        foreign = as_executor(pool)
        assert isinstance(foreign, ForeignExecutor) and isinstance(foreign, Executor)
        assert (foreign.name, foreign.workers) == ("ThreadPoolExecutor", 1)
    serial = as_executor(None)
    assert isinstance(serial, SerialExecutor) and as_executor(serial) is serial


def test_a_result_that_is_not_a_units_output_is_refused():
    """An executor that ran something other than execute hands back no Output."""
    future: cf.Future = cf.Future()
    future.set_result(42)
    with pytest.raises(ConfigError, match=r"^executor: expected a unit's Output from the future, got int$"):
        SerialExecutor().result(future)
    with cf.ThreadPoolExecutor(1) as pool, \
            pytest.raises(ConfigError, match=r"^executor: expected a unit's Output from the future, got int$"):
        ForeignExecutor(pool).result(future)


def test_make_executor_refuses_an_unknown_kind_and_bad_jobs():
    with pytest.raises(ConfigError, match=r"executor: expected one of \('serial', 'processes', 'dask'\), got 'gpu'"):
        make_executor("gpu")
    with pytest.raises(ConfigError, match="jobs: expected an integer ≥ 1, got 0"):
        PoolExecutor(0)
    with pytest.raises(ConfigError, match="expected the spawn or forkserver start method, got 'fork'"):
        PoolExecutor(1, start_method="fork")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cancelled_pool_stops_its_workers(tmp_path, digits_cache, monkeypatch):
    """close(cancel=True) stops every worker the pool started (by the pids they reported,
    no private attribute of the standard library's pool read)."""
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    monkeypatch.chdir(tmp_path)
    pool = PoolExecutor(1, threads=1)
    try:
        assert pool.warm(parse_config(TINY), str(digits_cache)) == 1
        pids = pool.worker_pids()
        assert len(pids) == 1 and all(_alive(p) for p in pids)
    finally:
        pool.close(cancel=True)
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a timing assertion
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "a worker outlived close(cancel=True)"
