"""The judge's primitives: the label of a rejection, the goals and references, the success
rule, the check of a classifier's answer and "count successes over fresh draws".

The bottom of evcsa's judging (issue 24): the game (:class:`evcsa.games.Rules`,
:class:`evcsa.games.EVCSA`, :func:`evcsa.games.rejudge`), the adversaries' estimates
(A*'s p̂, the twin's offline p̂, BPDA+EOT's restart selection, DiscreteSearch), the attacks'
evaluation and the experiment engine's sweep all judge through these functions, so that
one rule decides every success (seed 002 Fig. 2 line 11, seed 000 Fig. 1 line 11). It
imports nothing of evcsa above the foundation (errors, validation helpers).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from evcsa._validation import check_positive_int, describe
from evcsa.errors import InvalidOutput, InvalidParameter
from evcsa.terms import GOALS, REFERENCES, REJECTED

__all__ = ["GOALS", "ORDERS", "REFERENCES", "REJECTED", "check_predictions", "count_successes", "is_success",
           "predict_labels"]

#: How :func:`count_successes` lays out the draws × B classifications: "draw-major" (row
#: d·B + i is draw d of image i) or "image-major" (row i·draws + d).
ORDERS = ("draw-major", "image-major")


def _label_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` (tensor, array, sequence) as an int64 tensor, else InvalidParameter."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidParameter(f"expected {name} as integer labels, got {type(value).__name__}",
                               key=name) from exc
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise InvalidParameter(f"expected {name} as integer labels, got dtype {t.dtype}", key=name, got=str(t.dtype))
    return t.to(torch.int64)


def is_success(predictions: object, labels: object, *, goal: str = "untargeted", untargeted_reference: str = "label",
               targets: object = None, reference_predictions: object = None) -> torch.Tensor:
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


def check_predictions(out: object, count: int, num_classes: int | None = None, *,
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
        if isinstance(stated, (int, np.integer)) and not isinstance(stated, bool):
            num_classes = int(stated)
    return check_predictions(out, int(x.shape[0]), num_classes, name=name)


def _classify_draws(classify: Callable[[torch.Tensor], object], x: torch.Tensor, draws: int, order: str,
                    batch_size: int | None, name: str) -> torch.Tensor:
    """``draws`` classifications of every image of ``x`` [B, ...] as int64 [draws, B] (CPU):
    the draws × B images laid out in ``order``, classified in calls of at most
    ``batch_size`` consecutive images (None: one call), each answer checked."""
    b = int(x.shape[0])
    total = draws * b
    step = total if batch_size is None else batch_size
    answers = []
    for lo in range(0, total, step):
        idx = torch.arange(lo, min(total, lo + step), device=x.device)
        rows = idx % b if order == "draw-major" else torch.div(idx, draws, rounding_mode="floor")
        answers.append(check_predictions(classify(x[rows]), int(idx.numel()), name=name))
    flat = torch.cat(answers)
    return flat.view(draws, b) if order == "draw-major" else flat.view(b, draws).T


def count_successes(classify: Callable[[torch.Tensor], object], x: torch.Tensor, labels: torch.Tensor, *,
                    draws: int, goal: str = "untargeted", targets: torch.Tensor | None = None,
                    untargeted_reference: str = "label", clean_predictions: torch.Tensor | None = None,
                    batch_size: int | None = None, clean: torch.Tensor | None = None,
                    order: str = "draw-major",
                    on_predictions: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """kᵢ: in how many of ``draws`` fresh classifications each image of ``x`` is a success
    by :func:`is_success` — the one "count successes over fresh draws" of evcsa (the
    game's :func:`~evcsa.games.rejudge`, A*'s p̂ through the Classify oracle, the twin's
    offline p̂, BPDA+EOT's restart selection, the experiment engine's δ sweep; seed 002
    § 4.3: A* "submits the same sample multiple times to Classify and counts how often it
    succeeds").

    The draws × B images (each image repeated ``draws`` times, laid out in ``order``) go to
    ``classify`` in calls of at most ``batch_size`` consecutive images (None: all in one
    call; ``batch_size`` = B with "draw-major" makes one call per draw). Each call must draw
    fresh randomness for each image it classifies (an evcsa defense does: one key per call,
    each image at its own counter). Against the prediction reference, C(x) is either given
    (``clean_predictions``) or drawn afresh in every draw from the natural images ``clean``,
    classified after ``x`` in the same layout (2 · draws · B classifications). The ε check
    is not made here (the caller combines it, see :func:`evcsa.distances.within_epsilon`).

    Args:
        classify: images [n, ...] → n labels (int64 tensor or integer numpy array [n],
            values in [REJECTED, K)); each answer is checked by :func:`check_predictions`.
        x: the images judged, a tensor [B, C, H, W] (any dtype and device ``classify``
            accepts; float32 in [0, 1] for evcsa's classifiers).
        labels: y, the true labels of their sources, int64 [B].
        draws: classifications per image, ≥ 1.
        goal: "untargeted" (default) or "targeted".
        targets: y_t, int64 [B], for the targeted goal (else None).
        untargeted_reference: "label" (default) or "prediction".
        clean_predictions: C(x) for the prediction reference, int64 [B] or [draws, B] (one
            per draw); or None (then ``clean`` is classified).
        batch_size: images per ``classify`` call, ≥ 1, or None (one call).
        clean: the natural images x [B, C, H, W] whose fresh C(x) is the prediction
            reference, or None.
        order: "draw-major" (default; image d·B + i of the layout is draw d of image i) or
            "image-major" (image i·draws + d). With keyed randomness the layout decides
            which draw each image gets, so each caller keeps its own.
        on_predictions: called once with the checked C(x′), int64 [draws, B] (CPU), before
            they are judged: for a caller that also needs the answers themselves (the δ
            sweep's accuracy on the same draws); None (default) for none.

    Returns:
        int64 tensor [B] (CPU), values in [0, draws].

    Raises:
        InvalidParameter: a bad ``draws``, ``batch_size`` or ``order``; ``x`` not a tensor
            of B images; the prediction reference with neither or both of ``clean`` and
            ``clean_predictions``; ``clean`` not of the shape of ``x``; as
            :func:`is_success` (goal, reference, labels, targets).
        InvalidOutput: ``classify`` answered anything but n integer labels ≥ REJECTED.
    """
    draws = check_positive_int(draws, "draws")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if order not in ORDERS:
        raise InvalidParameter(f"expected order in {ORDERS}, got {order!r}", key="order", got=order)
    if goal not in GOALS:
        raise InvalidParameter(f"expected goal in {GOALS}, got {goal!r}", key="goal", got=goal)
    if untargeted_reference not in REFERENCES:
        raise InvalidParameter(f"expected untargeted_reference in {REFERENCES}, got {untargeted_reference!r}",
                               key="untargeted_reference", got=untargeted_reference)
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise InvalidParameter(f"expected x as a tensor of images [B, C, H, W], got {describe(x)}", key="x")
    versus_prediction = goal == "untargeted" and untargeted_reference == "prediction"
    if versus_prediction and (clean is None) == (clean_predictions is None):
        raise InvalidParameter("expected one of clean (the natural images) or clean_predictions (C(x)) for the "
                               "untargeted goal against the prediction, got "
                               f"{'both' if clean is not None else 'neither'}", key="clean")
    if clean is not None and (not isinstance(clean, torch.Tensor) or tuple(clean.shape) != tuple(x.shape)):
        raise InvalidParameter(f"expected clean images of the shape of x {tuple(x.shape)}, got {describe(clean)}",
                               key="clean")
    b = int(x.shape[0])
    if b == 0:
        is_success(torch.zeros((draws, 0), dtype=torch.int64), labels, goal=goal,
                   untargeted_reference=untargeted_reference, targets=targets,
                   reference_predictions=torch.zeros(0, dtype=torch.int64))
        return torch.zeros(0, dtype=torch.int64)
    predictions = _classify_draws(classify, x, draws, order, batch_size, "classify")
    if on_predictions is not None:
        on_predictions(predictions)
    reference = None
    if versus_prediction:
        reference = _classify_draws(classify, clean, draws, order, batch_size, "classify") if clean is not None \
            else clean_predictions
    hit = is_success(predictions, labels, goal=goal, untargeted_reference=untargeted_reference, targets=targets,
                     reference_predictions=reference)
    return hit.sum(dim=0).to(torch.int64).cpu()
