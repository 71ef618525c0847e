"""The δ sweep (seed 002 Fig. 5 and 6) and the example strip (Fig. 4): :func:`run_sweep`,
:func:`run_examples`, and their records from the units' outputs."""

from __future__ import annotations

from typing import Any, Mapping

from evcsa.config import ExperimentConfig
from evcsa.experiments.results import ExampleImages, SweepPoint

__all__ = ["example_images", "run_examples", "run_sweep", "sweep_point"]


def sweep_point(squeezer: str, delta: float, output: Any) -> SweepPoint:
    """A :class:`SweepPoint` from a ``sweep_point`` unit's output."""
    from evcsa.stats import BinomialEstimate

    r = output.record
    return SweepPoint(squeezer=squeezer, delta=float(delta),
                      legitimate_accuracy=BinomialEstimate.from_counts(*r["legitimate"]),
                      adversarial_accuracy=BinomialEstimate.from_counts(*r["adversarial"]),
                      p_hat=tuple(float(v) for v in output.arrays["p_hat"]),
                      advantage_exact=dict(r["advantage_exact"]),
                      sample_correct=tuple(int(v) for v in output.arrays["sample_correct"])
                      if "sample_correct" in output.arrays else None,
                      sample_draws=int(r["draws"]) if "draws" in r else None)


def example_images(output: Any) -> ExampleImages:
    """An :class:`ExampleImages` from an ``examples`` unit's output."""
    import numpy as np
    import torch

    r: Mapping[str, Any] = output.record
    images = {k: torch.from_numpy(np.ascontiguousarray(output.arrays[k]))
              for k in ("original", "adversarial", "randomized", "squeezed")}
    return ExampleImages(**images, labels={k: tuple(v) for k, v in r["labels"].items()},
                         defense=r["defense"], squeezer=r["squeezer"], delta=float(r["delta"]))


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
    import attrs

    from evcsa.experiments.runner import run_units

    config = attrs.evolve(config, figures=attrs.evolve(config.figures, enabled=True))
    outputs, layout = run_units(config, cache_dir=cache_dir, select=("sweep",))
    return tuple(sweep_point(s, delta, outputs[k]) for s, delta, k in layout["sweep"])


def run_examples(config: ExperimentConfig, *, cache_dir: str | None = None) -> ExampleImages | None:
    """The example strip for the first randomized squeezing defense of the configuration
    (else the first squeezing one at δ = 0): the first ``figures.examples`` samples of X_D."""
    import attrs

    from evcsa.experiments.runner import run_units

    config = attrs.evolve(config, figures=attrs.evolve(config.figures, enabled=True))
    outputs, layout = run_units(config, cache_dir=cache_dir, select=("examples",))
    return None if layout["examples"] is None else example_images(outputs[layout["examples"]])
