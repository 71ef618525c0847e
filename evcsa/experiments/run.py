"""The whole run: every unit ``config`` describes, through the runner, and the results
assembled from their outputs (:func:`run_experiment`; ``evcsa play``, ``evcsa demo`` and
each configuration of ``evcsa reproduce`` call it inside a
:class:`~evcsa.experiments.rundir.RunDirectory`)."""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Callable

import attrs

from evcsa.config import ExperimentConfig
from evcsa.experiments.assemble import cell_result, example_images, sweep_point
from evcsa.experiments.checks import check_config
from evcsa.experiments.executors import as_executor, make_executor
from evcsa.experiments.inputs import load_inputs, resolve_device
from evcsa.experiments.provenance import run_environment
from evcsa.experiments.results import ExperimentResult
from evcsa.experiments.runner import run_units
from evcsa.experiments.seams import Executor, SharedUnits, UnitStore
from evcsa.experiments.seeds import with_master_key
from evcsa.stats import BinomialEstimate

__all__ = ["run_experiment"]


def run_experiment(config: ExperimentConfig, *, progress: bool | None = None,
                   executor: Executor | cf.Executor | None = None, cache_dir: str | None = None,
                   log: Callable[[str], None] | None = None, store: UnitStore | None = None,
                   shared: SharedUnits | None = None) -> ExperimentResult:
    """Run everything ``config`` describes and return the results (no results file is
    written: see :func:`evcsa.report.publish_results`).

    Args:
        config: the experiment (checked with :func:`check_config` first).
        progress: one progress bar for the whole run (None: only on a terminal).
        executor: where the units run: None — as the configuration says (``executor``,
            ``jobs``, ``dask_address``; serial by default) —, an executor of
            :mod:`evcsa.experiments.executors`, or a ``concurrent.futures.Executor``
            with the spawn or forkserver start method. The numbers are the same on each.
        cache_dir: the model cache.
        log: receives one line per finished step (e.g. ``print``).
        store: a :class:`~evcsa.experiments.seams.UnitStore` (a run directory's
            :class:`~evcsa.experiments.store.RunStore`, opened by
            :class:`~evcsa.experiments.rundir.RunDirectory`): finished units are taken from
            it and new ones committed to it as they finish (resumable); None keeps them in
            memory.
        shared: finished units of other runs to take instead of computing them
            (:class:`~evcsa.experiments.store.FinishedUnits`; see
            :func:`~evcsa.experiments.runner.run_units`).

    Raises:
        ConfigError, DataError: before any work, for a bad configuration or data.
    """
    start = time.perf_counter()
    say = log or (lambda line: None)
    check_config(config)
    if store is not None and config.master_key is None and store.config is not None:
        config = attrs.evolve(config, master_key=store.config.master_key)  # the run's own, kept on resume
    config = with_master_key(config)  # recorded with the results: a rerun reproduces every number
    inputs = load_inputs(config, cache_dir=cache_dir)
    say(f"data: X_D = {inputs.samples.name} ({len(inputs.samples)} images); legitimate set "
        f"{inputs.legitimate.name} ({len(inputs.legitimate)} images)")
    own = executor is None
    executor = (make_executor(config.executor, jobs=config.jobs, address=config.dask_address) if own
                else as_executor(executor))
    try:
        run = run_units(config, cache_dir=cache_dir, store=store, executor=executor,
                        progress=progress, log=None if progress is not False else None, shared=shared)
    finally:
        if own:
            executor.close()
    outputs, plan, counts = run.outputs, run.plan, run.counts
    if counts.get("stored"):
        line = (f"resuming: {counts['reused'] - counts['shared']} of {counts['units']} units reused from the store, "
                f"{counts['computed']} computed")
        if counts["stale"]:
            line += (f"; {counts['stale']} stored unit{'s' if counts['stale'] != 1 else ''} computed by other code "
                     "or settings not used")
        say(line)
    say(f"units: {counts['units']} ({counts['reused']} from the store, {counts['shared']} of them from other "
        f"runs, {counts['computed']} computed); "
        f"crafting: {counts['craftings']} adversarial set(s) crafted")
    legitimate = {config.defenses[d].name: BinomialEstimate.from_counts(outputs[k].record["correct"],
                                                                        outputs[k].record["trials"])
                  for d, k in plan.legitimate.items()}
    say("legitimate accuracy: " + ", ".join(f"{k} {v.value:.3f}" for k, v in legitimate.items()))
    cells = []
    for (d, a), keys in sorted(plan.cells.items()):
        chunks = [outputs[k] for k in keys]
        seconds = sum(c.seconds for c in chunks)
        rejudged = outputs[plan.rejudge[(d, a)]]
        cell = cell_result(config, d, a, chunks, rejudged=rejudged, seconds=seconds + rejudged.seconds)
        cells.append(cell)
        say(f"{cell.defense} × {cell.adversary}: success rate {cell.success_rate.value:.3f}, "
            f"Adv {next(iter(cell.advantage.values())).value:.3f}")
    sweep = tuple(sweep_point(s, delta, outputs[k]) for s, delta, k in plan.sweep)
    examples = example_images(outputs[plan.examples]) if plan.examples else None
    if sweep:
        say(f"δ sweep: {len(sweep)} points")
    data = {"samples": inputs.samples.name, "n_samples": len(inputs.samples),
            "skipped_misclassified": inputs.dropped, "legitimate": inputs.legitimate.name,
            "n_legitimate": len(inputs.legitimate), "image_shape": list(inputs.samples.image_shape)}
    environment = {**run_environment(), "device": resolve_device(config.device),
                   "executor": executor.name, "workers": int(executor.workers), "units": dict(counts)}
    return ExperimentResult(config=config, cells=tuple(cells), legitimate=legitimate, sweep=sweep,
                            examples=examples, data=data, model=dict(inputs.model_info),
                            environment=environment, seconds=time.perf_counter() - start)
