"""Running a reproduction plan: :func:`run_plan` runs every part of a
:class:`~evcsa.reproduction.plans.Plan` through the experiment engine's public entry points
(``run_experiment`` for the tables, Table 3's repetitions and Figures 5–7's sweep) and turns
the results into :class:`~evcsa.reproduction.compare.Comparison` rows beside the papers'
numbers.

The pieces live by job: :mod:`~evcsa.reproduction.directory` (the reproduction directory:
marker, lock, master key), :mod:`~evcsa.reproduction.engine` (one configuration in its run
directory), :mod:`~evcsa.reproduction.parts` (the parts), :mod:`~evcsa.reproduction.records`
(the stored records), :mod:`~evcsa.reproduction.estimates` (a cell's estimate) and
:mod:`~evcsa.reproduction.estimate` (the predicted run time); their public names are
re-exported here as before.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from typing import Callable, Sequence

from evcsa.errors import InvalidParameter
from evcsa.experiments.store import hold_lock, release_lock
from evcsa.reproduction.directory import LOCK, MARKER, MARKER_RUN, is_reproduction_directory, write_marker
from evcsa.reproduction.engine import Executor, PlanEngine, model_provenance, run_environment
from evcsa.reproduction.estimate import WorkEstimate, estimate_plan, format_estimate
from evcsa.reproduction.estimates import sample_interval
from evcsa.reproduction.parts import PART_RUNNERS
from evcsa.reproduction.plans import Plan
from evcsa.reproduction.records import PartResult, ReproductionResult, format_result, load_result, part_to_dict, \
    save_result, write_json

__all__ = ["LOCK", "MARKER", "MARKER_RUN", "PartResult", "ReproductionResult", "WorkEstimate", "estimate_plan",
           "format_estimate", "format_result", "is_reproduction_directory", "load_result", "run_plan",
           "sample_interval", "save_result"]


def run_plan(plan: Plan, *, output: str | pathlib.Path | None = None, cache_dir: str | None = None,
             parts: Sequence[str] | None = None, log: Callable[[str], None] | None = None,
             executor: Executor | None = None, overwrite: bool = False,
             recompute_corrupt: bool = False) -> ReproductionResult:
    """Run ``plan`` (or only the parts named in ``parts``), part after part, through the
    experiment engine.

    Every configuration runs in its own run directory under ``output`` (its store, its
    results files), and a rerun of the same command on the same directory resumes: finished
    units are kept, only the missing ones run. Units shared by several configurations (a
    graybox set, a sweep's legitimate accuracy) run once for the whole plan.

    Args:
        plan: from :func:`~evcsa.reproduction.plans.build_plan`.
        output: the reproduction's directory: ``master-key`` (the plan's secret, kept for
            resumption), one run directory per configuration, ``<part>.json`` with the raw
            numbers, ``reproduction.json`` and ``reproduction.txt`` with the printed tables;
            None runs in a temporary directory that is removed afterwards (no resumption).
        cache_dir: the model cache.
        parts: part ids to run (default: all).
        log: receives one line per finished step.
        executor: where the units run (an executor of :mod:`evcsa.experiments.executors`,
            e.g. ``make_executor("processes", jobs=2)``); None runs them in this process.
        overwrite: discard what ``output`` holds and start over (only in a reproduction
            directory, never while another reproduction runs there: it holds the
            directory's lock, ``evcsa-reproduction.lock``).
        recompute_corrupt: compute again a finished unit whose stored file is corrupt.

    Raises:
        ConfigError, DataError, InvalidParameter: from the engine, before a part's work
        (e.g. ``output`` holds a run of other settings and ``overwrite`` is false).
    """
    say = log or (lambda line: None)
    temporary = tempfile.TemporaryDirectory(prefix="evcsa-reproduce-") if output is None else None
    out = pathlib.Path(temporary.name if temporary is not None else output)  # type: ignore[arg-type]
    lock = None
    try:
        if out.exists() and not out.is_dir():
            raise InvalidParameter(f"{out}: expected a reproduction directory, got an existing file", path=str(out))
        out.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(out / LOCK, what="a reproduction")  # before anything is discarded or written
        engine = PlanEngine(out, executor=executor, cache_dir=cache_dir, overwrite=overwrite, log=say,
                            recompute_corrupt=recompute_corrupt)
        write_marker(out)
        environment = run_environment(executor)  # the commit that runs: read before any work
        start = time.perf_counter()
        chosen = [plan.part(p) for p in parts] if parts is not None else list(plan.parts)
        results = []
        for part in chosen:
            say(f"  {part.id}: {len(part.configs)} configuration(s)")
            res = PART_RUNNERS[part.run](plan, part, engine=engine)
            say(f"  {part.id}: done in {res.seconds:.1f} s")
            results.append(res)
            if temporary is None:
                write_json(out / f"{part.id}.json", part_to_dict(res))
        environment["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result = ReproductionResult(plan=plan, parts=tuple(results), seconds=time.perf_counter() - start,
                                    environment=environment, model=model_provenance(plan, cache_dir))
        if temporary is None:
            save_result(result, out)
        return result
    finally:
        if lock is not None:
            release_lock(lock)
        if temporary is not None:
            temporary.cleanup()
