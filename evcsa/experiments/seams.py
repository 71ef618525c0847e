"""The engine's declared seams: what the runner (:func:`~evcsa.experiments.runner.run_units`)
needs of where units run (:class:`Executor`), of where finished units are kept
(:class:`UnitStore`) and of other runs' finished units (:class:`SharedUnits`).

Like joblib's ``ParallelBackendBase`` and ``StoreBackendBase``: the engine names these
protocols in its signatures; :class:`~evcsa.experiments.executors.SerialExecutor`,
:class:`~evcsa.experiments.executors.PoolExecutor`,
:class:`~evcsa.experiments.executors.DaskExecutor` and
:class:`~evcsa.experiments.executors.ForeignExecutor` implement :class:`Executor`;
:class:`~evcsa.experiments.store.RunStore` implements :class:`UnitStore`;
:class:`~evcsa.experiments.store.FinishedUnits` implements :class:`SharedUnits`.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Protocol, runtime_checkable

from evcsa.config import ExperimentConfig
from evcsa.experiments.units import Output, Unit

__all__ = ["Executor", "SharedUnits", "Task", "UnitStore"]

#: What an executor runs (:func:`evcsa.experiments.work.execute`'s argument): the
#: configuration, the unit, the model cache, the registries' run-time entries and the
#: dependencies' outputs by role.
Task = Mapping[str, object]


@runtime_checkable
class Executor(Protocol):
    """Where units of work run.

    Attributes:
        name: what results.json records as the executor ("serial", "processes", "dask", …).
        workers: how many units it runs at once (the runner keeps twice as many submitted).
    """

    name: str
    workers: int

    def submit(self, task: Task) -> Hashable:
        """Start ``evcsa.experiments.work.execute(task)``; returns its future."""
        ...

    def wait(self, futures: Iterable[Hashable]) -> tuple[set[Hashable], set[Hashable]]:
        """(done, not done), as soon as at least one of ``futures`` is done."""
        ...

    def result(self, future: Hashable) -> Output:
        """The unit's output, or what it raised."""
        ...

    def close(self, cancel: bool = False) -> None:
        """Release the workers (``cancel``: now, dropping the running units)."""
        ...


class UnitStore(Protocol):
    """Where a run keeps its finished units, committed as they finish.

    Attributes:
        config: the run's configuration, with its master key (the store records it).
        recompute_corrupt: whether a finished unit found corrupt is computed again.
    """

    config: ExperimentConfig
    recompute_corrupt: bool

    def done(self) -> set[str]:
        """The keys of the finished units."""
        ...

    def get(self, key: str) -> Output:
        """The output of finished unit ``key`` (KeyError: none; CorruptStore: damaged)."""
        ...

    def put(self, unit: Unit, output: Output) -> None:
        """Commit a finished unit."""
        ...

    def started(self, key: str, kind: str) -> None:
        """Record that this attempt executes unit ``key``."""
        ...

    def forget(self, key: str) -> None:
        """Drop finished unit ``key``: it is computed again."""
        ...

    def log(self, line: str) -> None:
        """Append a line to the run's log."""
        ...


class SharedUnits(Protocol):
    """Finished units of other runs, by content key."""

    def get(self, key: str) -> Output | None:
        """The output of ``key``, or None."""
        ...
