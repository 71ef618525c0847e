"""The rules of one EV-CSA game, as a frozen record.

Both seed variants are configurations of the same record:

- :meth:`Rules.seed_002` — Mix'n'Squeeze Fig. 2: no distortion bound (ε = None),
  freshness by sample (no bit-identical x′ twice), the Attack oracle reveals ŷ′,
  untargeted success iff C(x′) ≠ f(x′) (the true label of the source).
- :meth:`Rules.seed_000` — Randomized Squeezing Fig. 1: a distortion bound ε in a norm,
  freshness by source (one x′ per natural sample x), ŷ′ withheld, untargeted success iff
  C(x′) ≠ C(x) (the classifier's fresh prediction on the source), targeted iff C(x′) = y_t.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
import numpy as np
import torch

from evcsa._validation import int_at_least, is_bool, one_of
from evcsa.distances import DEFAULT_TOLERANCE, NORMS, distance, within_epsilon
from evcsa.errors import InvalidParameter
from evcsa.judging import GOALS, REFERENCES, REJECTED, check_predictions, count_successes, is_success, predict_labels

__all__ = ["GOALS", "FRESHNESS", "KNOWLEDGE_LEVELS", "REFERENCES", "REJECTED", "Rules", "check_predictions",
           "count_successes", "is_success", "predict_labels"]

# REJECTED, GOALS, REFERENCES, is_success, check_predictions and predict_labels are the
# judge's (evcsa.judging), re-exported here where the game's rules have always named them.
FRESHNESS = ("source", "sample")
KNOWLEDGE_LEVELS = ("blackbox", "graybox", "whitebox")


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold (np.int64(25) → 25), else ``value``."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _check_epsilon(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0) or value == float("inf"):
        raise InvalidParameter(f"expected epsilon as a finite number ≥ 0 or None (unbounded), got {value!r}",
                               key="epsilon", got=value)


def _check_tolerance(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1e-3):
        raise InvalidParameter(f"expected tolerance in [0, 1e-3] on the [0, 1] scale, got {value!r}",
                               key="tolerance", got=value)


@attrs.frozen(kw_only=True)
class Rules:
    """Parameters of one EV-CSA game (seed 000 Fig. 1, seed 002 Fig. 2).

    Attributes:
        n_chosen: N ≥ 1, the number of chosen samples the adversary submits.
        epsilon: the distortion bound ε on the [0, 1] pixel scale (a pixel count for L0),
            or None for unbounded (seed 002).
        norm: "l0", "l2" or "linf" (default), the norm ε is measured in.
        goal: "untargeted" (default) or "targeted" (Attack needs a target y_t ≠ y).
        freshness: "source" (default; seed 000: at most one x′ per source) or "sample"
            (seed 002: no bit-identical x′ twice).
        reveal: whether Attack returns ŷ′ = C(x′) to the adversary (seed 002) or withholds
            it (seed 000; the default).
        untargeted_reference: "label" (default; success iff C(x′) ≠ y, seed 002's f(x′))
            or "prediction" (success iff C(x′) ≠ C(x) on fresh randomness, seed 000).
        knowledge: "blackbox", "graybox" or "whitebox" (default), what ⟨C⟩ the adversary gets.
        classify_budget: an optional bound on Classify queries (each image one query).
        tolerance: float slack for the ε check on the [0, 1] scale (default 1e-6).

    Raises:
        InvalidParameter: any value out of range (``key`` names the field).
    """

    n_chosen: int = attrs.field(converter=_plain, validator=int_at_least(1))
    epsilon: float | None = attrs.field(converter=_plain, default=None, validator=_check_epsilon)
    norm: str = attrs.field(default="linf", validator=one_of(NORMS))
    goal: str = attrs.field(default="untargeted", validator=one_of(GOALS))
    freshness: str = attrs.field(default="source", validator=one_of(FRESHNESS))
    reveal: bool = attrs.field(converter=_plain, default=False, validator=is_bool)
    untargeted_reference: str = attrs.field(default="label", validator=one_of(REFERENCES))
    knowledge: str = attrs.field(default="whitebox", validator=one_of(KNOWLEDGE_LEVELS))
    classify_budget: int | None = attrs.field(converter=_plain, default=None, validator=int_at_least(0, optional=True))
    tolerance: float = attrs.field(converter=_plain, default=DEFAULT_TOLERANCE, validator=_check_tolerance)

    @property
    def needs_reference_predictions(self) -> bool:
        """Whether :meth:`is_success` needs C(x) (untargeted goal against the prediction):
        then one judgement costs two classifications."""
        return self.goal == "untargeted" and self.untargeted_reference == "prediction"

    def is_success(self, predictions: object, labels: object, *, targets: object = None,
                   reference_predictions: object = None) -> torch.Tensor:
        """This game's success rule on classifications: :func:`is_success` with this
        record's ``goal`` and ``untargeted_reference`` (the ε check is separate, see
        :meth:`within_epsilon`).

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
        return is_success(predictions, labels, goal=self.goal, untargeted_reference=self.untargeted_reference,
                          targets=targets, reference_predictions=reference_predictions)

    def count_successes(self, classify: Callable[[torch.Tensor], object], x: torch.Tensor,
                        labels: torch.Tensor, *, draws: int, targets: torch.Tensor | None = None,
                        clean_predictions: torch.Tensor | None = None, batch_size: int | None = None,
                        clean: torch.Tensor | None = None, order: str = "draw-major",
                        on_predictions: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """Successes over ``draws`` fresh classifications of each image of ``x``, by this
        game's rule: :func:`evcsa.judging.count_successes` with this record's ``goal`` and
        ``untargeted_reference`` (the ε check is separate, see :meth:`within_epsilon`).

        Returns:
            int64 tensor [B] (CPU), values in [0, draws].

        Raises:
            InvalidParameter, InvalidOutput: as :func:`evcsa.judging.count_successes`.
        """
        return count_successes(classify, x, labels, draws=draws, goal=self.goal, targets=targets,
                               untargeted_reference=self.untargeted_reference, clean_predictions=clean_predictions,
                               batch_size=batch_size, clean=clean, order=order, on_predictions=on_predictions)

    def within_epsilon(self, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d(x, x′) float64 [B] in this record's norm, bool [B] d ≤ ε + tolerance); all True
        when ε is None. ``x`` and ``x_adv`` are float32 [B, C, H, W] on one device."""
        d = distance(x, x_adv, self.norm, tolerance=self.tolerance)
        return d, within_epsilon(d, self.epsilon, self.norm, tolerance=self.tolerance)

    @classmethod
    def seed_002(cls, n_chosen: int, **overrides: Any) -> Rules:
        """Mix'n'Squeeze's game (seed 002 Fig. 2): ε unbounded, freshness by sample,
        ŷ′ revealed, untargeted against the true label. ``overrides`` replace any field."""
        fields: dict[str, Any] = dict(epsilon=None, freshness="sample", reveal=True, goal="untargeted",
                      untargeted_reference="label")
        fields.update(overrides)
        return cls(n_chosen=n_chosen, **fields)

    @classmethod
    def seed_000(cls, n_chosen: int, epsilon: float | None, norm: str = "linf",
                 goal: str = "untargeted", **overrides: Any) -> Rules:
        """Randomized Squeezing's game (seed 000 Fig. 1): ε in ``norm``, freshness by
        source, ŷ′ withheld, untargeted success iff C(x′) ≠ C(x)."""
        fields: dict[str, Any] = dict(epsilon=epsilon, norm=norm, goal=goal, freshness="source", reveal=False,
                      untargeted_reference="prediction")
        fields.update(overrides)
        return cls(n_chosen=n_chosen, **fields)
