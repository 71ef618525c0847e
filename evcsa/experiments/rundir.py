"""The lifecycle of one run directory: open (create, resume or overwrite), lock, run, close.

``evcsa play`` (and ``evcsa demo``) and ``evcsa reproduce`` (one run directory per
configuration of the plan, :func:`evcsa.reproduction.run_plan`) open, resume, lock,
interrupt and close a run directory through :class:`RunDirectory` only::

    from evcsa.experiments import run_experiment
    from evcsa.experiments.rundir import RunDirectory
    from evcsa.report import publish_results

    with RunDirectory(output, config, overwrite=False, discard_if_empty=True) as run:
        result = run_experiment(run.config, store=run.store)   # run.config: with the run's master key
        publish_results(result, run.path, store=run.store)
    # leaving the block closed the store: "complete", or "interrupted" (Ctrl-C, SIGTERM
    # turned into evcsa._exits.Terminated) or "failed"; the exception goes on to the caller,
    # which reads run.committed to say how many finished units were kept.

What each step does (the store's part is :meth:`~evcsa.experiments.store.RunStore.open`):

- **open**: a missing directory is created; an existing evcsa run directory of the same
  configuration is resumed (its finished units are kept, its master key is read back); with
  ``overwrite`` an evcsa run directory of any configuration is emptied and started over
  (only one carrying the marker, never the working directory, a parent of it, home or root:
  :func:`~evcsa.experiments.store.check_removable`); ``must_exist`` (``evcsa play --resume
  DIR``) refuses a directory that holds no run (:func:`check_resumable`).
- **lock**: the directory's ``evcsa-run.lock`` is held from opening to closing
  (:func:`~evcsa.experiments.store.hold_lock`: the kernel drops it when the process dies).
- **master key**: drawn once, when the run is created (:func:`~evcsa.experiments.seeds.with_master_key`,
  the one function that draws a run's key), recorded by the store, read back on resumption:
  :attr:`config` carries it.
- **interrupt and close**: leaving the ``with`` block records the status and releases the
  lock. A run directory this opening created that holds no finished unit when the run stops
  on an exception is removed again when ``discard_if_empty`` (play: nothing to resume, leave
  no directory); the reproduction keeps it (its plan owns the directory tree).

The class never swallows an exception and prints nothing: what to tell the user is the
caller's (the CLI's) part.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from types import TracebackType

from evcsa.config import ExperimentConfig
from evcsa.errors import InvalidParameter
from evcsa.experiments.store import DATABASE, RunStore

__all__ = ["RunDirectory", "check_resumable"]


def check_resumable(path: str | os.PathLike[str]) -> pathlib.Path:
    """``--resume DIR`` finishes a run: ``path`` must hold one (a missing directory is an
    error, not a new run).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        InvalidParameter: ``path`` does not exist or holds no ``evcsa-run.sqlite``.
    """
    where = pathlib.Path(path)
    if not where.exists():
        raise InvalidParameter(f"--resume: expected an evcsa run directory to finish, got {str(path)!r}: no such "
                               "directory (start a new run with -o DIR)", path=str(path))
    if not (where / DATABASE).is_file():
        raise InvalidParameter(f"--resume: expected an evcsa run directory to finish, got {str(path)!r}: no "
                               f"{DATABASE} in it", path=str(path))
    return where


class RunDirectory:
    """One run directory from opening to closing (see the module docstring): a context
    manager around :class:`~evcsa.experiments.store.RunStore`.

    Args:
        path: the run directory.
        config: the experiment to run there (its fingerprint is recorded, or compared).
        overwrite: replace the run ``path`` holds (of any configuration) by a new one.
        resume: accept an existing run of the same configuration (False: refuse it).
        must_exist: refuse a ``path`` that holds no run (:func:`check_resumable`).
        recompute_corrupt: compute again a finished unit whose stored file is corrupt.
        discard_if_empty: on an exception, remove the directory again if this opening
            created it and no unit was committed (``evcsa play``; the reproduction passes False).

    Attributes (after opening):
        path: the run directory (:class:`pathlib.Path`).
        store: the open :class:`~evcsa.experiments.store.RunStore`.
        config: ``config`` with the run's master key filled in.
        attempt: 1 for a new run, 2 for its first resumption, …
        created: whether this opening created (or emptied) the directory.
        stored: the number of finished units the directory held when opened.
        status: after closing, "complete", "interrupted" or "failed" (None while open).
        committed: after closing, the number of finished units the directory keeps.
        removed: after closing, whether the directory was removed (``discard_if_empty``).

    Raises (on opening, :meth:`open` or ``with``):
        InvalidParameter: as :meth:`RunStore.open <evcsa.experiments.store.RunStore.open>`
            (another configuration, not an evcsa run directory, locked by another process, …),
            or ``must_exist`` and no run there.
        CorruptStore: the directory's store is damaged.
    """

    def __init__(self, path: str | os.PathLike[str], config: ExperimentConfig, *, overwrite: bool = False,
                 resume: bool = True, must_exist: bool = False, recompute_corrupt: bool = False,
                 discard_if_empty: bool = False) -> None:
        self.path = pathlib.Path(path)
        self._requested = config
        self.overwrite, self.resume, self.must_exist = overwrite, resume, must_exist
        self.recompute_corrupt, self.discard_if_empty = recompute_corrupt, discard_if_empty
        self._store: RunStore | None = None
        self.attempt = 0
        self.created = False
        self.stored = 0
        self.status: str | None = None
        self.committed = 0
        self.removed = False

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> RunDirectory:
        """Open (create, resume or overwrite) and lock the directory; returns ``self``.

        Raises:
            InvalidParameter, CorruptStore: see the class.
        """
        if self._store is not None:
            raise InvalidParameter(f"{self.path}: expected a closed run directory to open, got one already open",
                                   path=str(self.path))
        if self.must_exist:
            check_resumable(self.path)
        store = RunStore.open(self.path, self._requested, overwrite=self.overwrite, resume=self.resume,
                              recompute_corrupt=self.recompute_corrupt)
        self._store = store
        self.attempt, self.created = store.attempt, store.created
        self.stored = len(store.done())
        self.status = None
        return self

    @property
    def store(self) -> RunStore:
        """The open store.

        Raises:
            InvalidParameter: the directory is not open.
        """
        if self._store is None:
            raise InvalidParameter(f"{self.path}: expected an open run directory, got a closed one",
                                   path=str(self.path))
        return self._store

    @property
    def config(self) -> ExperimentConfig:
        """The configuration with the run's master key (drawn now, or the stored one)."""
        return self.store.config

    @property
    def resumed(self) -> bool:
        """Whether this opening resumes an earlier attempt."""
        return self.attempt > 1

    # -- closing ---------------------------------------------------------------------------
    def close(self, status: str = "complete") -> None:
        """Record ``status`` ("complete", "interrupted" or "failed"), release the lock; then,
        unless complete, remove the directory if ``discard_if_empty``, this opening created it
        and it keeps no finished unit. Closing a closed directory does nothing.

        Raises:
            InvalidParameter: ``status`` is none of the three.
        """
        if status not in ("complete", "interrupted", "failed"):
            raise InvalidParameter(f"status: expected 'complete', 'interrupted' or 'failed', got {status!r}",
                                   status=status)
        store, self._store = self._store, None
        if store is None:
            return
        try:
            self.committed = len(store.done())
        finally:
            store.close(status)
        self.status = status
        if status != "complete" and self.discard_if_empty and self.created and self.committed == 0:
            shutil.rmtree(self.path, ignore_errors=True)  # nothing to resume: leave no directory
            self.removed = True

    def __enter__(self) -> RunDirectory:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close("complete")
        else:
            self.close("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
