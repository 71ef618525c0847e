"""Where units of work run: here (:class:`SerialExecutor`), on a local process pool
(:class:`PoolExecutor`, spawn or forkserver — never fork: a forked child of a process whose
torch threads ran can deadlock), or on a Dask cluster (:class:`DaskExecutor`, through
``dask.distributed.Client``; ``pip install 'evcsa[dask]'``).

Every executor runs the same pure function (:func:`evcsa.experiments.work.execute`) on the
same tasks, so the numbers are the same on each. An executor only runs tasks: the main
process keeps the store and commits each result as it arrives.

Interface: :class:`~evcsa.experiments.seams.Executor` — ``submit(task) -> future``,
``wait(futures) -> (done, not_done)`` (returns as soon as one is done), ``result(future)``,
``close(cancel=False)``, and the ``name`` and ``workers`` results.json records. A plain
``concurrent.futures.Executor`` is adapted by :func:`as_executor` (:class:`ForeignExecutor`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import threading
from typing import Any, Hashable, Iterable

import torch
from tqdm.std import TqdmDefaultWriteLock

from evcsa.config import ExperimentConfig
from evcsa.errors import ConfigError
from evcsa.experiments.seams import Executor, Task
from evcsa.experiments.units import Output
from evcsa.experiments.work import execute, warm

__all__ = ["DaskExecutor", "ForeignExecutor", "PoolExecutor", "SerialExecutor", "as_executor", "make_executor"]

#: The pid of the process that imported this module: a pool worker forked from this process
#: inherits the value (and so reports the parent's pid), a spawned or forkserver worker
#: imports the module afresh (:class:`ForeignExecutor`'s check).
_IMPORTED_IN = os.getpid()


class SerialExecutor:
    """Runs each task here, when submitted."""
    name = "serial"
    workers = 1

    def submit(self, task: Task) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(execute(task))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, SIGTERM: the run stops
                raise
            future.set_exception(exc)  # sys.exit in a plugin is that unit's failure, as in a pool worker
        return future

    def wait(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        futures = set(futures)
        return {f for f in futures if f.done()}, {f for f in futures if not f.done()}

    def result(self, future: Any) -> Output:
        return _output(future.result())

    def close(self, cancel: bool = False) -> None:
        pass


def _output(value: object) -> Output:
    """What a future of :func:`~evcsa.experiments.work.execute` holds, checked to be its
    :class:`~evcsa.experiments.units.Output`.

    Raises:
        ConfigError: anything else (an executor that ran something other than ``execute``).
    """
    if not isinstance(value, Output):
        raise ConfigError(f"executor: expected a unit's Output from the future, got {type(value).__name__}",
                          key="executor")
    return value


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


#: Modules the forkserver imports once, before it forks the workers: each worker then
#: starts with torch and the engine already imported (about 1-2 s of imports saved per
#: worker). Nothing has run torch ops in the forkserver, so forking it is safe.
PRELOAD = ("torch", "evcsa.experiments.work")

_BARRIER: Any = None


def _watch_parent(lifeline: Any) -> None:
    """In a worker: wait until the main process's end of ``lifeline`` closes — it exited,
    or was killed (SIGKILL included) — then exit at once, whatever this worker was doing."""
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _init_worker(threads: int, barrier: Any = None, lifeline: Any = None, pids: Any = None) -> None:
    global _BARRIER
    if pids is not None:  # the pool's owner stops its workers by pid (close(cancel=True))
        pids.put(os.getpid())
    if lifeline is not None:
        threading.Thread(target=_watch_parent, args=(lifeline,), name="evcsa-lifeline", daemon=True).start()
    # a worker draws no progress bar: tqdm's thread lock is enough. Its default inter-process
    # lock is a named semaphore that a worker stopped by close(cancel=True) would leave to the
    # resource tracker ("leaked semaphore objects" after the run's one-line error)
    if not hasattr(TqdmDefaultWriteLock, "mp_lock"):
        TqdmDefaultWriteLock.mp_lock = None
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(threads)
    _BARRIER = barrier


def _warm_worker(config: ExperimentConfig, cache_dir: str | None, timeout: float) -> int:
    """Load the inputs in this worker, then wait at the pool's barrier so that each of the
    ``jobs`` warm-up tasks holds a different worker; returns the pid."""
    pid = warm(config, cache_dir)
    if _BARRIER is not None:
        _BARRIER.wait(timeout)
    return pid


class PoolExecutor:
    """A local ``concurrent.futures.ProcessPoolExecutor`` of ``jobs`` workers (forkserver
    where available, else spawn), each with ``threads`` torch threads (default: the cores
    shared out).

    The workers die with the process that made the pool: each holds the reading end of a
    pipe whose only writing end this process keeps, and exits when it closes — so a
    ``kill -9`` of ``evcsa play --jobs N`` leaves no worker computing on."""
    name = "processes"

    def __init__(self, jobs: int, *, threads: int | None = None, start_method: str | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"jobs: expected an integer ≥ 1, got {jobs!r}", key="jobs")
        method = start_method or _start_method()
        if method == "fork":
            raise ConfigError("executor: expected the spawn or forkserver start method, got 'fork' (a forked "
                              "child of a process whose torch threads ran can deadlock)", key="executor")
        self.workers = jobs
        self.threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(list(PRELOAD))  # only takes effect before the server starts
        lifeline, self._lifeline = context.Pipe(duplex=False)  # workers read; only this process writes
        self._pids = context.SimpleQueue()  # each worker's pid, put when it starts
        self._pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                                            initargs=(self.threads, context.Barrier(jobs), lifeline, self._pids))
        self._started: set[int] = set()

    def submit(self, task: Task) -> cf.Future:
        return self._pool.submit(execute, {**task, "threads": self.threads})

    def wait(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        done, not_done = cf.wait(set(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(not_done)

    def result(self, future: Any) -> Output:
        return _output(future.result())

    def warm(self, config: ExperimentConfig, cache_dir: str | None = None, timeout: float = 300.0) -> int:
        """Start the workers and load the inputs in each (the model, X_D) before any unit;
        returns how many distinct workers answered (``jobs``: each warm-up task waits at a
        barrier of ``jobs`` parties, so no worker takes two).

        Raises:
            threading.BrokenBarrierError: not every worker started within ``timeout``
                seconds.
        """
        futures = [self._pool.submit(_warm_worker, config, cache_dir, timeout) for _ in range(self.workers)]
        return len({f.result() for f in futures})

    def close(self, cancel: bool = False) -> None:
        if cancel:  # stop now: the running units are lost (they were not committed) and rerun on resume
            self._pool.shutdown(wait=False, cancel_futures=True)
            for pid in self.worker_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            self._lifeline.close()  # and any worker not yet known exits as it starts watching
            self._pool.shutdown(wait=True)
        else:
            self._pool.shutdown(wait=True)
            self._lifeline.close()

    def worker_pids(self) -> set[int]:
        """The pids of every worker the pool has started so far."""
        while not self._pids.empty():
            self._started.add(int(self._pids.get()))
        return set(self._started)


class DaskExecutor:
    """Tasks on a Dask distributed cluster: ``address`` (a scheduler, "tcp://host:8786"),
    or a ``LocalCluster`` of ``jobs`` worker processes with one thread each when None.

    The workers must be able to import evcsa and every plugin module the configuration
    names, and to read the data and the model cache (a shared file system, or the same
    installation on each).

    Raises:
        ConfigError: dask.distributed is not installed.
    """
    name = "dask"

    def __init__(self, address: str | None = None, *, jobs: int | None = None, client: Any = None) -> None:
        try:
            from dask import distributed
        except ImportError as exc:
            raise ConfigError("executor: 'dask' needs dask.distributed (pip install 'evcsa[dask]')",
                              key="executor") from exc
        self._distributed = distributed
        self._cluster = None
        if client is not None:
            self._client, self._own = client, False
        elif address is not None:
            self._client, self._own = distributed.Client(address), True
        else:
            n = jobs or max(1, os.cpu_count() or 1)
            self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                     dashboard_address=None)
            self._client, self._own = distributed.Client(self._cluster), True
        info = self._client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))

    def submit(self, task: Task) -> Hashable:
        future: Hashable = self._client.submit(execute, {**task, "threads": 1}, pure=False)  # a dask Future
        return future

    def wait(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        done, not_done = self._distributed.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done), set(not_done)

    def result(self, future: Any) -> Output:
        return _output(future.result())

    def close(self, cancel: bool = False) -> None:
        if self._own:
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()


class ForeignExecutor:
    """A plain ``concurrent.futures.Executor`` handed in by the caller, as an
    :class:`~evcsa.experiments.seams.Executor`.

    A process pool must start its workers with spawn or forkserver, never fork (a forked
    child of a process whose torch threads ran can deadlock): the first worker is asked
    whether it was forked from this process. ``workers`` is how many units it runs at once
    (default 1: the pool's own size is not public).

    Raises:
        ConfigError: a process pool whose workers are forked from this process.
    """
    def __init__(self, executor: cf.Executor, *, workers: int = 1) -> None:
        if isinstance(executor, cf.ProcessPoolExecutor) and executor.submit(_worker_forked_from, os.getpid()).result():
            raise ConfigError("executor: expected a process pool with the spawn or forkserver start method "
                              "(ProcessPoolExecutor(mp_context=multiprocessing.get_context('spawn'))), got fork: "
                              "a forked child of a process whose torch threads ran can deadlock", key="executor")
        self._executor = executor
        self.name = type(executor).__name__
        self.workers = workers

    def submit(self, task: Task) -> cf.Future:
        return self._executor.submit(execute, task)

    def wait(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        done, not_done = cf.wait(set(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(not_done)

    def result(self, future: Any) -> Output:
        return _output(future.result())

    def close(self, cancel: bool = False) -> None:
        """Nothing: the pool is the caller's."""


def _worker_forked_from(pid: int) -> bool:
    """In a pool worker: whether it was forked from process ``pid`` (it shares that
    process's import of this module)."""
    return _IMPORTED_IN == pid and os.getpid() != pid


def as_executor(executor: Executor | cf.Executor | None) -> Executor:
    """``executor`` as an :class:`~evcsa.experiments.seams.Executor`: one of this module's
    as it is, a plain ``concurrent.futures.Executor`` through :class:`ForeignExecutor`, None
    as a :class:`SerialExecutor`.

    Raises:
        ConfigError: see :class:`ForeignExecutor`.
    """
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, cf.Executor) and not callable(getattr(executor, "wait", None)):
        return ForeignExecutor(executor)
    return executor  # type: ignore[return-value]


def make_executor(kind: str = "serial", *, jobs: int | None = None, address: str | None = None) -> Executor:
    """An executor by name: "serial", "processes" (``jobs`` workers, default one per core)
    or "dask" (``address``, default a LocalCluster of ``jobs`` workers).

    Raises:
        ConfigError: an unknown kind, bad ``jobs``, or dask missing.
    """
    if kind == "serial":
        return SerialExecutor()
    if kind == "processes":
        return PoolExecutor(jobs or max(1, os.cpu_count() or 1))
    if kind == "dask":
        return DaskExecutor(address, jobs=jobs)
    raise ConfigError(f"executor: expected one of ('serial', 'processes', 'dask'), got {kind!r}", key="executor")
