"""Shared pieces of the attacks: input checks, the gradient path, losses, projections,
targets and the uint8 grid.

Every attack reads gradients through :func:`input_gradient`, which calls the model's
``surrogate_logits`` (the BPDA/EOT path of a defense, the plain module for a
:class:`~evcsa.defenses.ModelClassifier`) and reports zero, non-finite or missing
gradients to a :class:`~evcsa.attacks.GradientMonitor` instead of letting them pass as
robustness (Athalye et al., ICML 2018).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from evcsa._validation import as_images, as_labels, check_number, describe
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier, ModelClassifier, is_randomized
from evcsa.distances import distance, within_epsilon
from evcsa.errors import InvalidParameter

__all__ = [
    "as_classifier",
    "check_generator",
    "check_number",
    "eot_gradient",
    "check_targets_differ",
    "cross_entropy",
    "cw_margin",
    "gradient_health",
    "input_gradient",
    "least_likely",
    "next_class",
    "prepare_inputs",
    "project",
    "random_start",
    "to_uint8_grid",
]

def as_classifier(model: Any) -> Classifier:
    """``model`` as a :class:`Classifier` (a bare ``torch.nn.Module`` is wrapped in a
    :class:`ModelClassifier`, which puts it in eval mode).

    Raises:
        InvalidParameter: ``model`` is neither.
    """
    if isinstance(model, Classifier):
        return model
    if isinstance(model, torch.nn.Module):
        return ModelClassifier(model)
    raise InvalidParameter(f"expected model as a Classifier or torch.nn.Module, got {type(model).__name__}")


def check_generator(generator: Any) -> torch.Generator | None:
    """``generator`` if it is a ``torch.Generator`` or None, else InvalidParameter."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidParameter(f"expected generator as a torch.Generator or None, got {type(generator).__name__}")
    return generator


def prepare_inputs(model: Any, x: Any, y: Any, target: Any
                   ) -> tuple[Classifier, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check an attack's inputs and move them to the model's device.

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: B true labels.
        target: B target labels, or None (untargeted).

    Returns:
        (classifier, x, y, target) with tensors on the classifier's device.

    Raises:
        InvalidParameter: malformed images or labels, labels out of [0, K), or a target
            equal to its true label.
    """
    clf = as_classifier(model)
    device = clf.device
    x = as_images(x, name="x", device=device)
    try:
        k = int(clf.num_classes)
    except InvalidParameter:
        k = None
    y = as_labels(y, name="y", length=x.shape[0], num_classes=k).to(device)
    if target is not None:
        target = as_labels(target, name="target", length=x.shape[0], num_classes=k).to(device)
        check_targets_differ(target, y)
    return clf, x, y, target


def check_targets_differ(target: torch.Tensor, y: torch.Tensor) -> None:
    """InvalidParameter when a target equals its true label: x itself would "reach" it, so
    such a targeted attack measures nothing (the game refuses y_t = y too)."""
    same = (target.cpu() == y.cpu()).nonzero().flatten().tolist()
    if same:
        raise InvalidParameter(f"expected targets different from the true labels, got target = y at "
                               f"position(s) {same[:10]}{' …' if len(same) > 10 else ''}", positions=same)


def next_class(y: Any, num_classes: int) -> torch.Tensor:
    """The "next" target of the feature-squeezing evaluation: (y + 1) mod K.

    Args:
        y: labels, B integers in [0, K).
        num_classes: K ≥ 2.

    Returns:
        int64 tensor [B] on y's device (CPU for sequences).

    Raises:
        InvalidParameter: K < 2 or labels out of range.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InvalidParameter(f"expected num_classes as an integer ≥ 2, got {num_classes!r}", got=num_classes)
    device = y.device if isinstance(y, torch.Tensor) else torch.device("cpu")
    labels = as_labels(y, name="y", num_classes=int(num_classes))
    return ((labels + 1) % int(num_classes)).to(device)


def least_likely(model: Any, x: Any, y: Any = None) -> torch.Tensor:
    """The "least-likely" target: the class with the lowest score of ``model`` on ``x``.

    Scores are the logits of a :class:`ModelClassifier` (same order as its softmax), the
    probabilities of any other classifier with ``predict_proba`` (one draw of its
    randomness), else its surrogate logits. With ``y`` given, the true class is excluded,
    so the target always differs from y (it equals the plain least-likely class whenever
    the model classifies x correctly).

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: optional true labels [B].

    Returns:
        int64 tensor [B] on the model's device.

    Raises:
        InvalidParameter: malformed inputs.
    """
    clf = as_classifier(model)
    x = as_images(x, name="x", device=clf.device)
    with torch.no_grad():
        if isinstance(clf, ModelClassifier):
            scores = clf.logits(x)
        else:
            try:
                scores = clf.predict_proba(x)
            except NotImplementedError:
                scores = clf.surrogate_logits(x)
    scores = scores.detach().to(torch.float32).clone()
    if y is not None:
        labels = as_labels(y, name="y", length=x.shape[0], num_classes=scores.shape[1]).to(scores.device)
        scores.scatter_(1, labels[:, None], float("inf"))
    return scores.argmin(dim=1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of logits [B, K] against labels [B] (float [B])."""
    return F.cross_entropy(logits, labels, reduction="none")


def cw_margin(logits: torch.Tensor, labels: torch.Tensor, *, confidence: float = 0.0,
              targeted: bool = False) -> torch.Tensor:
    """The Carlini–Wagner objective f (Carlini & Wagner, S&P 2017, § V, f₆), per sample.

    Untargeted (``labels`` = true class y): f = max(z_y − max_{j≠y} z_j, −κ).
    Targeted (``labels`` = target t):      f = max(max_{j≠t} z_j − z_t, −κ).
    f ≤ 0 once the sample is adversarial; f = −κ once it is so with margin κ. The other
    classes' maximum is taken with the label's entry set to −∞, never by multiplying with
    a one-hot mask (which turns negative logits into a spurious 0).

    Args:
        logits: float [B, K].
        labels: int64 [B].
        confidence: κ ≥ 0.
        targeted: which of the two forms.

    Returns:
        float [B].
    """
    label_logit = logits.gather(1, labels[:, None]).squeeze(1)
    mask = F.one_hot(labels, logits.shape[1]).to(torch.bool)
    other = logits.masked_fill(mask, float("-inf")).amax(dim=1)
    diff = other - label_logit if targeted else label_logit - other
    return torch.clamp(diff, min=-float(confidence))


def _surrogate(clf: Classifier) -> Callable[[torch.Tensor], torch.Tensor]:
    return clf.surrogate_logits


def input_gradient(clf: Classifier, x: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor], torch.Tensor], *,
                   monitor: GradientMonitor | None = None, index: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of a per-sample loss with respect to the input, through the
    classifier's differentiable surrogate.

    Calls ``clf.surrogate_logits(x)`` once (one draw of a randomized classifier's
    randomness; BPDA for squeezers), evaluates ``loss_fn(logits) -> [B]`` and
    differentiates its sum. Non-finite gradient entries are set to 0 for the step and the
    sample is flagged; an output that does not depend on x differentiably (no graph, or
    an unused input) gives a zero gradient flagged as *missing*. Nothing here is read as
    robustness: the monitor records it and the caller reports it.

    Args:
        clf: the classifier.
        x: float32 [B, C, H, W] on the classifier's device.
        loss_fn: maps logits [B, K] to a per-sample loss [B] (to be increased).
        monitor: receives the gradient's health for samples ``index`` (all when None).
        index: int64 [B] positions of these samples in the monitor's batch.

    Returns:
        (gradient [B, C, H, W], logits [B, K] detached, loss [B] detached).

    Raises:
        InvalidParameter: the classifier offers no differentiable surrogate, or its
            surrogate returns something other than [B, K] scores.
    """
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        try:
            logits = _surrogate(clf)(xg)
        except NotImplementedError as exc:
            raise InvalidParameter(f"expected a classifier with a differentiable surrogate_logits for "
                                   f"gradient attacks, got {type(clf).__name__} ({exc})") from exc
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise InvalidParameter(f"expected surrogate_logits to return scores [B, K] with B = {x.shape[0]}, "
                                   f"got {describe(logits)}")
        loss = loss_fn(logits)
        grad = None
        if loss.requires_grad:
            (grad,) = torch.autograd.grad(loss.sum(), xg, allow_unused=True)
    missing = grad is None
    if grad is None:
        grad = torch.zeros_like(x)
    grad, nonfinite, zero = gradient_health(grad)
    if monitor is not None:
        monitor.observe(grad, index=index, missing=missing, nonfinite=nonfinite, zero=zero)
    return grad.detach(), logits.detach(), loss.detach()


def gradient_health(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``grad`` with non-finite entries set to 0, and per sample whether it had any
    (nonfinite) and whether the cleaned gradient is identically zero (zero).

    One pass over the gradient (its per-sample minimum and maximum, NaN-propagating):
    finite rows need nothing else; only when a row is not finite are the entries
    replaced and that row's zero test redone on the cleaned values.

    Args:
        grad: float [B, ...].

    Returns:
        (gradient [B, ...], nonfinite bool [B], zero bool [B]).
    """
    low, high = torch.aminmax(grad.detach().flatten(1), dim=1)
    nonfinite = ~(torch.isfinite(low) & torch.isfinite(high))
    zero = (low == 0) & (high == 0)
    if bool(nonfinite.any()):
        grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))
        zero = (grad.detach().flatten(1) == 0).all(dim=1)
    return grad, nonfinite, zero


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float | None, norm: str) -> torch.Tensor:
    """Project x′ onto the ε-ball around x in ``norm`` and onto the box [0, 1].

    L∞: clamp to [max(x − ε, 0), min(x + ε, 1)] (exact projection onto the intersection).
    L2: scale δ to norm ≤ ε, then clamp to [0, 1] (clamping moves every coordinate towards
    x, so the L2 bound still holds). L0: keep the ⌊ε⌋ pixels whose change (summed over
    channels) is largest and reset the others to x. ε = None: box only.

    Args:
        x_adv, x: float32 [B, C, H, W] on the same device.
        epsilon: ε ≥ 0 on the [0, 1] scale (a pixel count for L0), or None.
        norm: "linf", "l2" or "l0".

    Returns:
        float32 [B, C, H, W].
    """
    if epsilon is None:
        return x_adv.clamp(0.0, 1.0)
    if norm == "linf":
        return torch.max(torch.min(x_adv, (x + epsilon).clamp(max=1.0)), (x - epsilon).clamp(min=0.0))
    if norm == "l2":
        delta = x_adv - x
        n = delta.flatten(1).norm(dim=1).clamp(min=1e-12)
        factor = torch.clamp(epsilon / n, max=1.0).view(-1, *([1] * (x.dim() - 1)))
        # a float32 rescale may land a few ulps outside the ball: shrink by a hair.
        factor = torch.where(factor < 1.0, factor * (1.0 - 1e-6), factor)
        return (x + delta * factor).clamp(0.0, 1.0)
    if norm == "l0":
        k = int(math.floor(epsilon))
        delta = (x_adv - x).clamp(-1.0, 1.0)
        change = delta.abs().sum(dim=1).flatten(1)  # [B, HW]
        if k >= change.shape[1]:
            return x_adv.clamp(0.0, 1.0)
        keep = torch.zeros_like(change, dtype=torch.bool)
        if k > 0:
            top = change.topk(k, dim=1).indices
            keep.scatter_(1, top, True)
        keep = keep.view(x.shape[0], 1, *x.shape[2:])
        return torch.where(keep, x_adv, x).clamp(0.0, 1.0)
    raise InvalidParameter(f"expected norm in ('l0', 'l2', 'linf'), got {norm!r}", got=norm)


def random_start(x: torch.Tensor, epsilon: float, norm: str, generator: torch.Generator | None
                 ) -> torch.Tensor:
    """A random point of the ε-ball around x, clipped to [0, 1] before any gradient.

    L∞: x + U[−ε, ε] per element. L2: x + ε·r·u with u a uniformly random direction
    (normalised Gaussian) and r ~ U[0, 1]. Draws come from ``generator`` (on its own
    device, then moved), never from the global generator when one is given.

    Returns:
        float32 [B, C, H, W] in [0, 1] within ε of x.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=gen_device, dtype=torch.float32)
        delta = (2.0 * noise - 1.0).to(x.device) * epsilon
    elif norm == "l2":
        direction = torch.randn(x.shape, generator=generator, device=gen_device, dtype=torch.float32)
        radius = torch.rand((x.shape[0],), generator=generator, device=gen_device, dtype=torch.float32)
        direction = direction / direction.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        delta = (direction * radius.view(-1, 1, 1, 1)).to(x.device) * epsilon
    else:
        raise InvalidParameter(f"expected norm 'linf' or 'l2' for a random start, got {norm!r}", got=norm)
    return project(x + delta, x, epsilon, norm)


def to_uint8_grid(x_adv: Any, x: Any = None, *, epsilon: float | None = None, norm: str = "linf"
                  ) -> torch.Tensor:
    """Round adversarial images to the uint8 grid k/255, keeping them within ε of x.

    The feature-squeezing evaluation (Xu et al., NDSS 2018; EvadeML-Zoo
    ``reduce_precision_np(x, 256)``) evaluates adversarial examples after this rounding.
    Each value becomes ``rint(255·clip(x′, 0, 1)) / 255`` (round half to even). When x and
    ε are given and the rounded image leaves the ε-ball, that image is instead rounded
    towards x (truncation of 255·(x′ − x) for x on the grid: no coordinate moves further
    from x, so no norm grows); if it is still outside (x itself off the grid), the image
    stays unrounded.

    Args:
        x_adv: float [B, C, H, W].
        x: the natural images [B, C, H, W] (needed to respect ε).
        epsilon: ε (None: no bound).
        norm: "linf", "l2" or "l0".

    Returns:
        float32 [B, C, H, W] in [0, 1] on x_adv's device.
    """
    if not isinstance(x_adv, torch.Tensor):
        x_adv = torch.as_tensor(np.asarray(x_adv, dtype=np.float32))
    x_adv = x_adv.to(torch.float32)
    rounded = torch.round(x_adv.clamp(0.0, 1.0) * 255.0) / 255.0
    if x is None or epsilon is None:
        return rounded
    x = x.to(x_adv.device, torch.float32)
    ok = within_epsilon(distance(x, rounded, norm), epsilon, norm).to(x_adv.device)
    if bool(ok.all()):
        return rounded
    grid_x = torch.round(x * 255.0)
    steps = torch.trunc((x_adv.clamp(0.0, 1.0) * 255.0 - grid_x))
    toward = ((grid_x + steps) / 255.0).clamp(0.0, 1.0)
    ok_toward = within_epsilon(distance(x, toward, norm), epsilon, norm).to(x_adv.device)
    shape = (-1,) + (1,) * (x_adv.dim() - 1)
    fallback = torch.where(ok_toward.view(shape), toward, x_adv.clamp(0.0, 1.0))
    return torch.where(ok.view(shape), rounded, fallback)


def eot_gradient(classifier: Classifier, x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                 samples: int, *, monitor: GradientMonitor | None = None, index: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Expectation over Transformation: the mean over ``samples`` draws of the input
    gradient of ``loss_fn`` through ``classifier.surrogate_logits`` (one draw of its
    randomness per call; BPDA for its squeezers).

    Args:
        classifier: the (twin) classifier.
        x: float32 [B, C, H, W] on its device.
        loss_fn: logits [B, K] → per-sample loss [B] to increase.
        samples: S ≥ 1 draws.
        monitor: receives one evaluation per call of this function: the mean gradient,
            flagged non-finite if any draw was, missing if any draw had no graph.
        index: positions of these samples in the monitor's batch.

    A deterministic classifier (:func:`evcsa.defenses.base.is_randomized` False: decided
    from its declaration, never its name) is differentiated once: its S draws are the same
    forward and backward pass, so the mean is that gradient and every draw's logits are
    that draw's (issue 25: determined work is done once).

    Returns:
        (mean gradient [B, C, H, W], logits of every draw [S, B, K], mean loss [B]).
    """
    if samples == 1 or not is_randomized(classifier):
        grad, z, loss = input_gradient(classifier, x, loss_fn, monitor=monitor, index=index)
        return grad, z[None].expand(samples, *z.shape), loss
    draws = GradientMonitor(x.shape[0])
    total = torch.zeros_like(x)
    logits, losses = [], []
    for _ in range(samples):
        grad, z, loss = input_gradient(classifier, x, loss_fn, monitor=draws)
        total += grad
        logits.append(z)
        losses.append(loss)
    mean = total / samples
    if monitor is not None:
        h = draws.health()
        monitor.observe(mean, index=index, missing=bool(h.missing.any()),
                        nonfinite=torch.from_numpy(h.nonfinite))
    return mean, torch.stack(logits), torch.stack(losses).mean(dim=0)
