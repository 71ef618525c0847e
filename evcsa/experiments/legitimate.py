"""Accuracy of a defense on the legitimate test images (:func:`run_legitimate`)."""

from __future__ import annotations

from typing import Any

from evcsa.config import ExperimentConfig
from evcsa.experiments.cells import _find
from evcsa.experiments.inputs import load_inputs
from evcsa.experiments.registry import build_defense
from evcsa.experiments.results import Estimate
from evcsa.experiments.seeds import _keys

__all__ = ["run_legitimate"]


def _accuracy(classifier: Any, images: Any, labels: Any, draws: int, batch: int = 2_000) -> Estimate:

    correct = 0
    for _ in range(draws):
        for x, y in zip(images.split(batch), labels.split(batch)):
            correct += int((classifier.predict(x).cpu() == y).sum())
    return Estimate.from_counts(correct, int(labels.numel()) * draws)


def run_legitimate(config: ExperimentConfig, defense: int | str, *, cache_dir: str | None = None) -> Estimate:
    """Accuracy of one defense on the legitimate test images (the whole configured split),
    each classified ``legitimate_draws`` times; the interval pools the draws."""
    spec, index = _find(config.defenses, defense, "defenses")
    inputs = load_inputs(config, cache_dir=cache_dir)
    classifier = build_defense(spec, inputs.model, _keys(config, "legitimate", spec.name),
                               where=f"defenses[{index}]")
    data = inputs.legitimate
    draws = config.legitimate_draws if getattr(classifier, "randomized", True) is not False else 1
    return _accuracy(classifier, data.images, data.labels, draws)
