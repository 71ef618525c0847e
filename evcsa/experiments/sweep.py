"""The δ sweep (seed 002 Fig. 5 and 6) and the example strip (Fig. 4): :func:`run_sweep`,
:func:`run_examples` (their records from the units' outputs:
:mod:`evcsa.experiments.assemble`, re-exported here)."""

from __future__ import annotations

import attrs

from evcsa.config import ExperimentConfig
from evcsa.experiments.assemble import example_images, sweep_point
from evcsa.experiments.results import ExampleImages, SweepPoint
from evcsa.experiments.runner import run_units

__all__ = ["example_images", "run_examples", "run_sweep", "sweep_point"]


def run_sweep(config: ExperimentConfig, *, progress: bool | None = None,
              cache_dir: str | None = None) -> tuple[SweepPoint, ...]:
    """Vary δ over ``figures.deltas`` for each squeezer of the configured squeezing defenses
    (δ = 0: feature squeezing; δ > 0: randomized squeezing): legitimate accuracy,
    accuracy on the sweep's adversarial samples and their p̂ (seed 002 Fig. 5 and 6, § 5.1:
    the same adversarial samples evaluated over many runs).

    Returns:
        One :class:`SweepPoint` per (squeezer, δ), squeezers outer; empty when no
        squeezing defense is configured.
    """
    config = attrs.evolve(config, figures=attrs.evolve(config.figures, enabled=True))
    run = run_units(config, cache_dir=cache_dir, select=("sweep",))
    return tuple(sweep_point(s, delta, run.outputs[k]) for s, delta, k in run.plan.sweep)


def run_examples(config: ExperimentConfig, *, cache_dir: str | None = None) -> ExampleImages | None:
    """The example strip for the first randomized squeezing defense of the configuration
    (else the first squeezing one at δ = 0): the first ``figures.examples`` samples of X_D."""
    config = attrs.evolve(config, figures=attrs.evolve(config.figures, enabled=True))
    run = run_units(config, cache_dir=cache_dir, select=("examples",))
    return None if run.plan.examples is None else example_images(run.outputs[run.plan.examples])
