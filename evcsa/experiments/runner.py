"""The whole run: :func:`run_experiment` calls the pieces in turn, or spreads the cells over
a ``concurrent.futures`` executor."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from evcsa.config import ExperimentConfig
from evcsa.experiments.cells import run_cell
from evcsa.experiments.checks import check_config
from evcsa.experiments.examples import run_examples
from evcsa.experiments.inputs import load_inputs
from evcsa.experiments.legitimate import run_legitimate
from evcsa.experiments.results import CellResult, ExperimentResult, SweepPoint
from evcsa.experiments.seeds import with_master_key
from evcsa.experiments.sweep import run_sweep

__all__ = ["run_experiment"]


def _environment() -> dict[str, Any]:
    import platform

    import torch

    import evcsa

    return {"evcsa": evcsa.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads()}


def _cell_job(args: tuple[ExperimentConfig, int, int, str | None]) -> CellResult:
    config, d, a, cache_dir = args
    return run_cell(config, d, a, progress=False, cache_dir=cache_dir)


def run_experiment(config: ExperimentConfig, *, progress: bool | None = None, executor: Any = None,
                   cache_dir: str | None = None,
                   log: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run everything ``config`` describes and return the results (nothing is written).

    Args:
        config: the experiment (checked with :func:`check_config` first).
        progress: progress bars (None: only on a terminal).
        executor: a ``concurrent.futures.Executor`` to run the cells on (each cell is a
            pure function of the configuration: processes or remote workers give the same
            numbers); None runs them here, in order.
        cache_dir: the model cache.
        log: receives one line per finished step (e.g. ``print``).

    Raises:
        ConfigError, DataError: before any work, for a bad configuration or data.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    say = log or (lambda line: None)
    check_config(config)
    config = with_master_key(config)  # recorded with the results: a rerun reproduces every number
    inputs = load_inputs(config, cache_dir=cache_dir)
    say(f"data: X_D = {inputs.samples.name} ({len(inputs.samples)} images); legitimate set "
        f"{inputs.legitimate.name} ({len(inputs.legitimate)} images)")
    legitimate = {}
    for i, spec in enumerate(config.defenses):
        legitimate[spec.name] = run_legitimate(config, i, cache_dir=cache_dir)
    say("legitimate accuracy: " + ", ".join(f"{k} {v.value:.3f}" for k, v in legitimate.items()))
    pairs = [(d, a) for d in range(len(config.defenses)) for a in range(len(config.adversaries))]
    cells: list[CellResult] = []
    bar = tqdm(total=len(pairs), desc="cells", unit="cell", disable=None if progress is None else not progress)
    try:
        if executor is None:
            for d, a in pairs:
                bar.set_postfix_str(f"{config.defenses[d].name} × {config.adversaries[a].name}", refresh=True)
                cell = run_cell(config, d, a, progress=progress, cache_dir=cache_dir)
                cells.append(cell)
                bar.update(1)
                say(f"{cell.defense} × {cell.adversary}: success rate {cell.success_rate.value:.3f}, "
                    f"Adv {next(iter(cell.advantage.values())).value:.3f} ({cell.seconds:.1f} s)")
        else:
            jobs = [(config, d, a, cache_dir) for d, a in pairs]
            for cell in executor.map(_cell_job, jobs):
                cells.append(cell)
                bar.update(1)
    finally:
        bar.close()
    sweep: tuple[SweepPoint, ...] = ()
    examples = None
    if config.figures.enabled:
        t = time.perf_counter()
        sweep = run_sweep(config, progress=progress, cache_dir=cache_dir)
        examples = run_examples(config, cache_dir=cache_dir)
        say(f"δ sweep: {len(sweep)} points ({time.perf_counter() - t:.1f} s)")
    data = {"samples": inputs.samples.name, "n_samples": len(inputs.samples),
            "skipped_misclassified": inputs.dropped, "legitimate": inputs.legitimate.name,
            "n_legitimate": len(inputs.legitimate), "image_shape": list(inputs.samples.image_shape)}
    return ExperimentResult(config=config, cells=tuple(cells), legitimate=legitimate, sweep=sweep,
                            examples=examples, data=data, model=dict(inputs.model_info),
                            environment=_environment(), seconds=time.perf_counter() - start)
