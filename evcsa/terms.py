"""The terms of an EV-CSA game, torch-free: its vocabulary (goals, references, freshness,
knowledge levels, norms, the REJECTED answer, the ε check's tolerance) and its rules as a frozen
record, :class:`Rules`.

Both seed variants are configurations of the same record:

- :meth:`Rules.seed_002` — Mix'n'Squeeze Fig. 2: no distortion bound (ε = None),
  freshness by sample (no bit-identical x′ twice), the Attack oracle reveals ŷ′,
  untargeted success iff C(x′) ≠ f(x′) (the true label of the source).
- :meth:`Rules.seed_000` — Randomized Squeezing Fig. 1: a distortion bound ε in a norm,
  freshness by source (one x′ per natural sample x), ŷ′ withheld, untargeted success iff
  C(x′) ≠ C(x) (the classifier's fresh prediction on the source), targeted iff C(x′) = y_t.

The record is data: the configuration (:mod:`evcsa.config`) holds it without loading torch.
The judge applies it to tensors (:func:`evcsa.judging.is_success`,
:func:`evcsa.judging.count_successes`, :func:`evcsa.distances.within_epsilon`; with a game's
rules: :func:`evcsa.games.rules.judge_success`, :meth:`evcsa.games.Knowledge.is_success`).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from evcsa._values import epsilon, int_at_least, is_bool, one_of
from evcsa.errors import InvalidParameter

__all__ = ["DEFAULT_TOLERANCE", "FRESHNESS", "GOALS", "KNOWLEDGE_LEVELS", "NORMS", "REFERENCES", "REJECTED",
           "Rules"]

#: The label a defense answers when it rejects an input (a detector's flag): never a success.
REJECTED = -1
#: The adversary's goal: C(x′) off the reference (untargeted) or C(x′) = y_t (targeted).
GOALS = ("untargeted", "targeted")
#: What an untargeted x′ must differ from: the true label y (seed 002) or C(x) on fresh
#: randomness (seed 000).
REFERENCES = ("label", "prediction")
#: Freshness: at most one x′ per source (seed 000) or no bit-identical x′ twice (seed 002).
FRESHNESS = ("source", "sample")
#: What ⟨C⟩ the adversary gets.
KNOWLEDGE_LEVELS = ("blackbox", "graybox", "whitebox")
#: The norms ε is measured in.
NORMS: tuple[str, ...] = ("l0", "l2", "linf")
#: The game's float tolerance on the [0, 1] scale: a float32 point projected onto the
#: ε-ball may land up to a few ulps outside it (ulp(1.0) = 1.2e-7 in float32); 1e-6 accepts
#: that and rejects any real excess. robustml uses 1e-4.
DEFAULT_TOLERANCE = 1e-6


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold (np.int64(25) → 25), else ``value``."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


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
    epsilon: float | None = attrs.field(converter=_plain, default=None, validator=epsilon(optional=True))
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
