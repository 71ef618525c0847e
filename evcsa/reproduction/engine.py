"""Running one configuration of a plan through the experiment engine, in its own run
directory under the reproduction's directory (:class:`PlanEngine`), and the facts the
reproduction records about where it ran (:func:`run_environment`, :func:`model_provenance`)."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import time
from typing import Any, Callable

import attrs
from evcsa.config import ExperimentConfig
from evcsa.experiments import ExperimentResult, run_experiment
from evcsa.experiments.provenance import run_environment as engine_environment
from evcsa.experiments.rundir import RunDirectory
from evcsa.experiments.seams import Executor
from evcsa.experiments.store import DATABASE, FinishedUnits
from evcsa.models import reference_model
from evcsa.report import publish_results
from evcsa.reproduction.directory import derived_key, discard_runs, plan_key
from evcsa.reproduction.plans import Plan

__all__ = ["Executor", "PlanEngine", "model_provenance", "run_environment"]


def run_environment(executor: Executor | None) -> dict[str, Any]:
    """Where the reproduction runs: evcsa, torch, numpy, Python and the platform (as the
    engine's results record them, :func:`evcsa.experiments.provenance.run_environment`,
    without the threads), the git commit of the checkout it
    runs from (``+changes`` when tracked files differ; None outside one), the CPU, its
    cores, the executor and its workers, and when it finished (UTC, now)."""
    env: dict[str, Any] = dict(engine_environment())
    env.pop("threads", None)
    try:
        here = pathlib.Path(__file__).resolve().parent
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        env["commit"] = (commit + ("+changes" if dirty else "")) if commit else None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env.update(cpu=cpu or "unknown", cores=os.cpu_count() or 1,
               executor=getattr(executor, "name", "serial") if executor is not None else "serial",
               workers=int(getattr(executor, "workers", 1)) if executor is not None else 1,
               finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    return env


def model_provenance(plan: Plan, cache_dir: str | None) -> dict[str, Any]:
    """The plan's model ``info`` (:func:`evcsa.models.reference_model`): what every run
    directory's results.json records as its model, once for the reproduction."""
    info: dict[str, Any] = json.loads(json.dumps(reference_model(plan.model, cache_dir=cache_dir).info))
    return info


class PlanEngine:
    """Runs a plan's configurations through the experiment engine: one run directory (a
    :class:`~evcsa.experiments.store.RunStore`) per configuration under ``root``, so a
    killed reproduction resumes where it stopped; one executor for the whole plan; and the
    finished units of the plan's other run directories shared (the same content key is the
    same work: Table 1, Table 2 and Figures 5–7 evaluate one adversarial set per attack).

    Every configuration gets the plan's master key (``master-key`` in ``root``, drawn from OS
    entropy once and kept for resumption: :func:`~evcsa.reproduction.directory.plan_key`),
    or for a repetition a key derived from it, so units that share a key were computed
    under the same keys."""

    def __init__(self, root: pathlib.Path, *, executor: Executor | None, cache_dir: str | None, overwrite: bool,
                 log: Callable[[str], None], recompute_corrupt: bool = False) -> None:
        self.root, self.executor, self.cache_dir, self.overwrite, self.log = root, executor, cache_dir, overwrite, log
        self.recompute_corrupt = recompute_corrupt
        if overwrite:
            discard_runs(root)
        self.master_key = plan_key(root)
        self.reused = self.computed = 0

    def key_for(self, label: str | None) -> str:
        """The plan's master key (``label`` None) or the key derived from it for ``label``
        (:func:`~evcsa.reproduction.directory.derived_key`)."""
        return derived_key(self.master_key, label)

    def run(self, config: ExperimentConfig, directory: str, *, key_label: str | None = None) -> ExperimentResult:
        """``run_experiment`` on ``config`` in ``root/directory`` (resumed when it holds an
        unfinished run of the same configuration), its results files published there; the
        directory opened, locked and closed ("complete", "interrupted" or "failed") through
        :class:`~evcsa.experiments.rundir.RunDirectory`, and kept when the run stops."""
        config = attrs.evolve(config, master_key=self.key_for(key_label))
        path = self.root / directory
        others = sorted(p.parent for p in self.root.glob(f"*/{DATABASE}") if p.parent != path)
        with RunDirectory(path, config, overwrite=self.overwrite, recompute_corrupt=self.recompute_corrupt) as run:
            if run.resumed:
                self.log(f"    {directory}: resuming ({run.stored} units stored)")
            lines: list[str] = []
            result = run_experiment(run.config, progress=False, executor=self.executor, cache_dir=self.cache_dir,
                                    log=lines.append, store=run.store, shared=FinishedUnits(others))
            counts = result.environment["units"]
            self.reused += counts["reused"]
            self.computed += counts["computed"]
            self.log(f"    {directory}: {counts['units']} units ({counts['reused']} finished before or shared, "
                     f"{counts['computed']} computed) in {result.seconds:.0f} s")
            publish_results(result, path, figures=False, store=run.store)
        return result
