"""What every kind of unit uses (:mod:`evcsa.experiments.work`,
:mod:`evcsa.experiments.sweep_work`): the inputs, the game, the components, a crafted set
to and from its stored arrays, and accuracy counted as the game counts it."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from evcsa.adversaries import Adversary, Candidates, SuccessEstimates
from evcsa.attacks.gradients import GradientHealth
from evcsa.config import ExperimentConfig
from evcsa.experiments.inputs import Inputs, load_inputs
from evcsa.experiments.registry import build_adversary, build_defense
from evcsa.games import EVCSA
from evcsa.games.rules import Rules, predict_labels
from evcsa.randomness import KeySource

__all__ = ["accuracy_counts", "adversary_of", "candidates_arrays", "candidates_from", "defense_of", "game_of",
           "inputs_of"]


def inputs_of(config: ExperimentConfig, cache_dir: str | None) -> Inputs:
    """The run's inputs in this process (:func:`~evcsa.experiments.inputs.load_inputs`, cached)."""
    return load_inputs(config, cache_dir=cache_dir)


def game_of(config: ExperimentConfig, classifier: Any, inputs: Inputs, rules: Rules | None = None) -> EVCSA:
    """The EV-CSA game of ``classifier`` on X_D under ``rules`` (default: the configuration's)."""
    return EVCSA.from_rules(classifier, inputs.samples.images, inputs.samples.labels, rules or config.game,
                            model=inputs.model, num_classes=inputs.model.num_classes)


def adversary_of(config: ExperimentConfig, a: int) -> Adversary:
    """The adversary of ``[[adversaries]]`` table ``a``."""
    return build_adversary(config.adversaries[a], where=f"adversaries[{a}]", base_dir=config.base_dir)


def defense_of(config: ExperimentConfig, d: int, inputs: Inputs, keys: KeySource) -> Any:
    """The defense of ``[[defenses]]`` table ``d`` around the model, drawing from ``keys``."""
    return build_defense(config.defenses[d], inputs.model, keys, where=f"defenses[{d}]", base_dir=config.base_dir)


def candidates_arrays(c: Candidates) -> dict[str, np.ndarray]:
    """The arrays of a crafted set (:class:`~evcsa.adversaries.Candidates`), to store."""
    arrays = {"sources": np.asarray(c.sources, dtype=np.int64), "x_adv": c.x_adv.detach().cpu().numpy(),
              "failed": np.asarray(c.failed, dtype=bool)}
    if c.targets is not None:
        arrays["targets"] = np.asarray(c.targets, dtype=np.int64)
    h = c.health
    for name in ("evaluations", "zero_evaluations", "nonfinite_evaluations", "missing"):
        arrays[f"health_{name}"] = np.asarray(getattr(h, name))
    if c.offline is not None:
        o = c.offline
        for name in ("successes", "draws", "low", "high"):
            arrays[f"offline_{name}"] = np.asarray(getattr(o, name))
    return arrays


def candidates_from(arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> Candidates:
    """The crafted set a ``craft`` unit stored (:func:`candidates_arrays`), back as
    :class:`~evcsa.adversaries.Candidates`."""
    health = GradientHealth(**{n: arrays[f"health_{n}"] for n in ("evaluations", "zero_evaluations",
                                                                   "nonfinite_evaluations", "missing")})
    offline = None
    if "offline_successes" in arrays:
        offline = SuccessEstimates(successes=arrays["offline_successes"], draws=arrays["offline_draws"],
                                   alpha=float(record["offline_alpha"]), mode=str(record["offline_mode"]),
                                   low=arrays["offline_low"], high=arrays["offline_high"])
    return Candidates(sources=np.asarray(arrays["sources"], dtype=np.int64),
                      x_adv=torch.from_numpy(np.ascontiguousarray(arrays["x_adv"])),
                      targets=np.asarray(arrays["targets"], dtype=np.int64) if "targets" in arrays else None,
                      failed=np.asarray(arrays["failed"], dtype=bool), health=health, offline=offline)


def accuracy_counts(classifier: Any, images: Any, labels: Any, draws: int, batch: int = 2_000, *,
                    num_classes: int | None = None) -> tuple[int, int]:
    """(correct, trials): ``draws`` classifications of every image, each answer checked as
    the game checks it (:func:`evcsa.games.rules.predict_labels`).

    Raises:
        InvalidOutput: the classifier answered anything but B labels in [REJECTED, K).
    """
    correct = 0
    for _ in range(draws):
        for x, y in zip(images.split(batch), labels.split(batch)):
            correct += int((predict_labels(classifier, x, num_classes) == y.cpu()).sum())
    return correct, int(labels.numel()) * draws
