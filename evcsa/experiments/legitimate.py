"""Accuracy of a defense on the legitimate test images (:func:`run_legitimate`)."""

from __future__ import annotations

from evcsa.config import ExperimentConfig
from evcsa.experiments.cells import find_component
from evcsa.experiments.runner import run_units
from evcsa.stats import BinomialEstimate

__all__ = ["run_legitimate"]


def run_legitimate(config: ExperimentConfig, defense: int | str, *, cache_dir: str | None = None) -> BinomialEstimate:
    """Accuracy of one defense on the legitimate test images (the whole configured split),
    each classified ``legitimate_draws`` times (once for a deterministic defense); the
    interval pools the draws.

    Returns:
        A :class:`~evcsa.stats.BinomialEstimate` (correct / classifications).

    Raises:
        ConfigError: ``defense`` names no defense table.
    """
    _, d = find_component(config.defenses, defense, "defenses")
    run = run_units(config, cache_dir=cache_dir, select=("legitimate", d))
    record = run.outputs[run.plan.legitimate[d]].record
    return BinomialEstimate.from_counts(record["correct"], record["trials"])
