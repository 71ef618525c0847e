"""The rules of one EV-CSA game applied to tensors: :func:`judge_success` (the success rule),
:func:`count_judged_successes` (successes over fresh draws) and :func:`check_distortion` (the
ε check), each :mod:`evcsa.judging`'s or :mod:`evcsa.distances`' primitive with a game's
:class:`Rules`.

The record itself and the game's vocabulary are torch-free in :mod:`evcsa.terms`; they are
re-exported here, where the game's rules have always named them, with the judge's primitives
(REJECTED, :func:`is_success`, :func:`check_predictions`, :func:`predict_labels`).
"""

from __future__ import annotations

from typing import Callable

import torch

from evcsa.distances import distance, within_epsilon
from evcsa.judging import check_predictions, count_successes, is_success, predict_labels
from evcsa.terms import FRESHNESS, GOALS, KNOWLEDGE_LEVELS, REFERENCES, REJECTED, Rules

__all__ = ["FRESHNESS", "GOALS", "KNOWLEDGE_LEVELS", "REFERENCES", "REJECTED", "Rules", "check_distortion",
           "check_predictions", "count_judged_successes", "count_successes", "is_success", "judge_success",
           "predict_labels"]


def judge_success(rules: Rules, predictions: object, labels: object, *, targets: object = None,
                  reference_predictions: object = None) -> torch.Tensor:
    """A game's success rule on classifications: :func:`is_success` with
    ``rules``' ``goal`` and ``untargeted_reference`` (the ε check is separate, see
    :func:`check_distortion`).

    Args:
        predictions: C(x′), int64 [..., B] (REJECTED = −1 allowed).
        labels: true labels of the sources, int64 [B].
        targets: y_t, int64 [B], for the targeted goal (else None).
        reference_predictions: C(x), int64 [..., B], for the prediction reference.

    Returns:
        torch.bool [..., B]: REJECTED is never a success, and a REJECTED C(x) never
        makes one.

    Raises:
        InvalidParameter: as :func:`is_success`.
    """
    return is_success(predictions, labels, goal=rules.goal, untargeted_reference=rules.untargeted_reference,
                      targets=targets, reference_predictions=reference_predictions)


def count_judged_successes(rules: Rules, classify: Callable[[torch.Tensor], object], x: torch.Tensor,
                           labels: torch.Tensor, *, draws: int, targets: torch.Tensor | None = None,
                           clean_predictions: torch.Tensor | None = None, batch_size: int | None = None,
                           clean: torch.Tensor | None = None, order: str = "draw-major",
                           on_predictions: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Successes over ``draws`` fresh classifications of each image of ``x``, by a
    game's rule: :func:`evcsa.judging.count_successes` with ``rules``' ``goal`` and
    ``untargeted_reference`` (the ε check is separate, see :func:`check_distortion`).

    Returns:
        int64 tensor [B] (CPU), values in [0, draws].

    Raises:
        InvalidParameter, InvalidOutput: as :func:`evcsa.judging.count_successes`.
    """
    return count_successes(classify, x, labels, draws=draws, goal=rules.goal, targets=targets,
                           untargeted_reference=rules.untargeted_reference, clean_predictions=clean_predictions,
                           batch_size=batch_size, clean=clean, order=order, on_predictions=on_predictions)


def check_distortion(rules: Rules, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d(x, x′) float64 [B] in ``rules``' norm, bool [B] d ≤ ε + tolerance); all True
    when ε is None. ``x`` and ``x_adv`` are float32 [B, C, H, W] on one device."""
    d = distance(x, x_adv, rules.norm, tolerance=rules.tolerance)
    return d, within_epsilon(d, rules.epsilon, rules.norm, tolerance=rules.tolerance)
