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

from typing import Any

import attrs
import numpy as np
import torch

from evcsa._validation import describe, int_at_least, is_bool, one_of
from evcsa.distances import DEFAULT_TOLERANCE, NORMS, distance, within_epsilon
from evcsa.errors import InvalidOutput, InvalidParameter

__all__ = ["GOALS", "FRESHNESS", "KNOWLEDGE_LEVELS", "REFERENCES", "REJECTED", "Rules", "check_predictions",
           "is_success", "predict_labels"]

#: The label of a rejection (a detector's answer); the same value as
#: :data:`evcsa.defenses.REJECTED`. Never a success, never a reference that rewards one.
REJECTED = -1

GOALS = ("untargeted", "targeted")
FRESHNESS = ("source", "sample")
KNOWLEDGE_LEVELS = ("blackbox", "graybox", "whitebox")
REFERENCES = ("label", "prediction")


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold (np.int64(25) → 25), else ``value``."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _check_epsilon(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0) or value == float("inf"):
        raise InvalidParameter(f"expected epsilon as a finite number ≥ 0 or None (unbounded), got {value!r}",
                               key="epsilon", got=value)


def _check_tolerance(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
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

    def is_success(self, predictions: Any, labels: Any, *, targets: Any = None,
                   reference_predictions: Any = None) -> torch.Tensor:
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

    def within_epsilon(self, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d(x, x′) float64 [B] in this record's norm, bool [B] d ≤ ε + tolerance); all True
        when ε is None. ``x`` and ``x_adv`` are float32 [B, C, H, W] on one device."""
        d = distance(x, x_adv, self.norm, tolerance=self.tolerance)
        return d, within_epsilon(d, self.epsilon, self.norm, tolerance=self.tolerance)

    @classmethod
    def seed_002(cls, n_chosen: int, **overrides: Any) -> Rules:
        """Mix'n'Squeeze's game (seed 002 Fig. 2): ε unbounded, freshness by sample,
        ŷ′ revealed, untargeted against the true label. ``overrides`` replace any field."""
        fields = dict(epsilon=None, freshness="sample", reveal=True, goal="untargeted",
                      untargeted_reference="label")
        fields.update(overrides)
        return cls(n_chosen=n_chosen, **fields)

    @classmethod
    def seed_000(cls, n_chosen: int, epsilon: float | None, norm: str = "linf",
                 goal: str = "untargeted", **overrides: Any) -> Rules:
        """Randomized Squeezing's game (seed 000 Fig. 1): ε in ``norm``, freshness by
        source, ŷ′ withheld, untargeted success iff C(x′) ≠ C(x)."""
        fields = dict(epsilon=epsilon, norm=norm, goal=goal, freshness="source", reveal=False,
                      untargeted_reference="prediction")
        fields.update(overrides)
        return cls(n_chosen=n_chosen, **fields)


def _label_tensor(value: Any, name: str) -> torch.Tensor:
    """``value`` (tensor, array, sequence) as an int64 tensor, else InvalidParameter."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidParameter(f"expected {name} as integer labels, got {type(value).__name__}",
                               key=name) from exc
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise InvalidParameter(f"expected {name} as integer labels, got dtype {t.dtype}", key=name, got=str(t.dtype))
    return t.to(torch.int64)


def is_success(predictions: Any, labels: Any, *, goal: str = "untargeted", untargeted_reference: str = "label",
               targets: Any = None, reference_predictions: Any = None) -> torch.Tensor:
    """The EV-CSA success rule (seed 002 Fig. 2 line 11, seed 000 Fig. 1 line 11), the only
    place evcsa decides whether a classification is a success.

    A pure function: it reads its arguments and nothing else. The ε check is not part of
    it (the caller combines it with :func:`evcsa.distances.within_epsilon`); this is the
    label test.

    - Targeted goal: success iff C(x′) = y_t (a REJECTED C(x′) never equals a target).
    - Untargeted, reference "label" (seed 002's f(x′)): success iff C(x′) ∉ {y, REJECTED}.
    - Untargeted, reference "prediction" (seed 000): success iff C(x′) ∉ {C(x), REJECTED}
      and C(x) ≠ REJECTED — a rejected natural sample never makes an evasion (x′ = x
      would otherwise count whenever the detector rejects x in one draw and not in the
      other).

    Args:
        predictions: C(x′), int64 [..., B] (leading dimensions, e.g. draws, broadcast),
            values in [0, K) or REJECTED (−1).
        labels: y, the true labels of the sources, int64 [B].
        goal: "untargeted" or "targeted".
        untargeted_reference: "label" or "prediction" (ignored for the targeted goal).
        targets: y_t, int64 [B] (required for the targeted goal, not allowed otherwise).
        reference_predictions: C(x) on fresh randomness, int64 [..., B] broadcastable
            with ``predictions`` (required for the untargeted goal with the prediction
            reference, ignored otherwise).

    Returns:
        torch.bool tensor of the broadcast shape of ``predictions`` (and
        ``reference_predictions``), on the device of ``predictions``.

    Raises:
        InvalidParameter: an unknown goal or reference, non-integer labels, targets
            missing (targeted) or given (untargeted), reference predictions missing, or
            a last dimension other than B.
    """
    if goal not in GOALS:
        raise InvalidParameter(f"expected goal in {GOALS}, got {goal!r}", key="goal", got=goal)
    if untargeted_reference not in REFERENCES:
        raise InvalidParameter(f"expected untargeted_reference in {REFERENCES}, got {untargeted_reference!r}",
                               key="untargeted_reference", got=untargeted_reference)
    pred = _label_tensor(predictions, "predictions")
    y = _label_tensor(labels, "labels").to(pred.device)
    if y.ndim != 1 or pred.ndim < 1 or pred.shape[-1] != y.shape[0]:
        raise InvalidParameter(f"expected predictions [..., B] and labels [B] with the same B, got shapes "
                               f"{tuple(pred.shape)} and {tuple(y.shape)}", key="predictions")
    b = y.shape[0]
    if goal == "targeted":
        if targets is None:
            raise InvalidParameter("expected targets y_t [B] for the targeted goal, got none", key="targets")
        t = _label_tensor(targets, "targets").to(pred.device)
        if tuple(t.shape) != (b,):
            raise InvalidParameter(f"expected targets of shape ({b},), got {tuple(t.shape)}", key="targets")
        return (pred == t) & (pred != REJECTED) & (t != REJECTED)
    if targets is not None:
        raise InvalidParameter("expected no targets for the untargeted goal, got some", key="targets")
    hit = (pred != y) & (pred != REJECTED)
    if untargeted_reference == "label":
        return hit
    if reference_predictions is None:
        raise InvalidParameter("expected reference_predictions C(x) [..., B] for the untargeted goal against "
                               "the prediction, got none", key="reference_predictions")
    ref = _label_tensor(reference_predictions, "reference_predictions").to(pred.device)
    if ref.ndim < 1 or ref.shape[-1] != b:
        raise InvalidParameter(f"expected reference_predictions [..., {b}], got shape {tuple(ref.shape)}",
                               key="reference_predictions")
    try:
        return (pred != ref) & (pred != REJECTED) & (ref != REJECTED)
    except RuntimeError as exc:
        raise InvalidParameter(f"expected reference_predictions broadcastable with predictions "
                               f"{tuple(pred.shape)}, got {tuple(ref.shape)}", key="reference_predictions") from exc


def check_predictions(out: Any, count: int, num_classes: int | None = None, *,
                      name: str = "classifier.predict") -> torch.Tensor:
    """A classifier's answer for ``count`` images, checked the way the game checks it:
    ``count`` integer labels [B] in [REJECTED, K) — the one check every "classify and
    count" of evcsa goes through (the oracles, :func:`evcsa.games.rejudge`, the experiment
    engine's accuracies and sweep points).

    A wrong answer would corrupt every tally made of it: [B, 1] compared with [B] labels
    broadcasts into B² comparisons, scores or labels ≥ K pass as successes.

    Args:
        out: what ``predict`` returned (a tensor, or a numpy integer array).
        count: B, the number of images it was asked about.
        num_classes: K (labels must be < K), or None for no upper bound.
        name: what answered, for the message.

    Returns:
        int64 tensor [B] on the CPU.

    Raises:
        InvalidOutput: not B integer labels, or a label outside [REJECTED, K).
    """
    if isinstance(out, np.ndarray) and np.issubdtype(out.dtype, np.integer):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (count,) or out.is_floating_point() \
            or out.is_complex() or out.dtype == torch.bool:
        raise InvalidOutput(f"expected {name} to return {count} label(s) [B], got {describe(out)}",
                            got=describe(out))
    labels = out.detach().cpu().to(torch.int64)
    if count:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < REJECTED or (num_classes is not None and hi >= num_classes):
            top = "∞" if num_classes is None else num_classes - 1
            raise InvalidOutput(f"expected {name} labels in [{REJECTED}, {top}], got values in [{lo}, {hi}]",
                                min=lo, max=hi)
    return labels


def predict_labels(classifier: Any, x: torch.Tensor, num_classes: int | None = None, *,
                   name: str = "classifier.predict") -> torch.Tensor:
    """``classifier.predict(x)`` without gradients, checked by :func:`check_predictions`.

    Args:
        classifier: anything with ``predict(x) -> labels``.
        x: float32 [B, C, H, W].
        num_classes: K, or None: the classifier's ``num_classes`` when it states an integer.

    Returns:
        int64 tensor [B] on the CPU.

    Raises:
        InvalidOutput: as :func:`check_predictions`.
    """
    with torch.no_grad():
        out = classifier.predict(x)
    if num_classes is None:
        try:
            stated = classifier.num_classes  # read after predict: a ModelClassifier learns K on its first call
        except Exception:  # none stated
            stated = None
        num_classes = stated if isinstance(stated, (int, np.integer)) and not isinstance(stated, bool) else None
    return check_predictions(out, int(x.shape[0]), None if num_classes is None else int(num_classes), name=name)
