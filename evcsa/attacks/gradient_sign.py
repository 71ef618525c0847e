"""FGSM and BIM/PGD: one or many signed-gradient steps inside an ε-ball.

Sources:

- FGSM: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
  ICLR 2015, § 4: x′ = x + ε·sign(∇ₓ L(x, y)); seed 002 § 2.3.
- BIM: Kurakin, Goodfellow & Bengio, "Adversarial Examples in the Physical World", ICLR
  Workshop 2017, § 2.2: x′ᵢ₊₁ = clip_{x,ε}(x′ᵢ + α·sign(∇ L(x′ᵢ, y))); with a random start
  this is PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
  Attacks", ICLR 2018, § 2.1).

Defaults are the MNIST settings of the feature-squeezing evaluation (Xu et al., NDSS
2018; EvadeML-Zoo ``Reproduce_FeatureSqueezing.md``): FGSM ε = 0.3; BIM ε = 0.3,
step 0.06, 10 steps (cleverhans' ``nb_iter`` default). BIM's step scales with ε: by
default α = 2ε / steps, which is the feature-squeezing 0.06 at ε = 0.3 and 10 steps and
stays a fixed fraction of ε at any other ε (a fixed 0.06 is 7× ε at ε = 8/255). An ε at
or beyond the trivial bound of its norm warns (:class:`~evcsa.errors.TrivialEpsilonWarning`). Losses are on logits
(cross-entropy, or the Carlini–Wagner margin). Every point the model is queried on lies
in [0, 1] and within ε of x, the random start included.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from evcsa._validation import check_choice, check_epsilon, check_positive_int
from evcsa.attacks._common import (
    check_generator,
    check_number,
    cross_entropy,
    cw_margin,
    input_gradient,
    prepare_inputs,
    project,
    random_start as _random_start,
    to_uint8_grid,
)
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier
from evcsa.distances import warn_if_trivial

__all__ = ["bim", "default_step_size", "fgsm"]

LOSSES = ("ce", "cw")


def default_step_size(epsilon: float, steps: int, fraction: float = 2.0) -> float:
    """The default step of an iterative attack as a fraction of ε: α = fraction · ε / steps
    (default 2ε / steps: BIM's 0.06 at ε 0.3 and 10 steps, the feature-squeezing setting;
    Madry et al. use 2.5ε / steps, AutoAttack's APGD starts at 2ε)."""
    return fraction * float(epsilon) / int(steps)


def ascent_loss(labels: torch.Tensor, targeted: bool, loss: str, confidence: float = 0.0
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample loss a gradient-ascent attack increases.

    Untargeted (labels = y): cross-entropy CE(z, y), or −f with f the C&W margin.
    Targeted (labels = t): −CE(z, t), or −f_t.
    """
    if loss == "ce":
        if targeted:
            return lambda z: -cross_entropy(z, labels)
        return lambda z: cross_entropy(z, labels)
    return lambda z: -cw_margin(z, labels, confidence=confidence, targeted=targeted)


def _step(x_adv: torch.Tensor, grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return x_adv + step_size * grad.sign()
    n = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (grad.dim() - 1)))
    return x_adv + step_size * grad / n


def fgsm(model: Any, x: Any, y: Any, *, target: Any = None, epsilon: float = 0.3, norm: str = "linf",
         loss: str = "ce", round_to_grid: bool = False, generator: torch.Generator | None = None,
         monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al., ICLR 2015): one step of size ε.

    Untargeted: x′ = clip(x + ε·sign(∇ₓ CE(z(x), y))); targeted at t: x′ = clip(x −
    ε·sign(∇ₓ CE(z(x), t))). With ``norm="l2"`` the step is ε·∇/‖∇‖₂ (fast gradient
    method). A zero gradient leaves the sample unchanged and is flagged (never read as
    robustness).

    Args:
        model: a :class:`~evcsa.defenses.Classifier` (gradients through its
            ``surrogate_logits``) or a ``torch.nn.Module`` returning logits.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] (targeted attack) or None.
        epsilon: ε ≥ 0 on the [0, 1] scale (default 0.3, the MNIST setting).
        norm: "linf" (default) or "l2".
        loss: "ce" (cross-entropy on logits, default) or "cw" (C&W margin).
        round_to_grid: round x′ to the uint8 grid k/255 within the ε-ball
            (:func:`to_uint8_grid`; the feature-squeezing evaluation does this).
        generator: unused (FGSM is deterministic); accepted for a uniform signature.
        monitor: receives the gradient health; without one, a :class:`GradientWarning`
            is issued for flagged samples.

    Returns:
        float32 [B, C, H, W] in [0, 1], within ε of x, on the model's device.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    check_generator(generator)
    bound = check_epsilon(epsilon)
    assert bound is not None  # optional=False: a float or an error
    epsilon = bound
    norm = check_choice(norm, ("linf", "l2"), "norm")
    loss = check_choice(loss, LOSSES, "loss")
    clf, x, y, target = prepare_inputs(model, x, y, target)
    warn_if_trivial(epsilon, norm, tuple(x.shape[1:]), where="fgsm")
    own = monitor is None
    if monitor is None:
        monitor = GradientMonitor(x.shape[0])
    labels = y if target is None else target
    grad, _, _ = input_gradient(clf, x, ascent_loss(labels, target is not None, loss), monitor=monitor)
    x_adv = project(_step(x, grad, epsilon, norm), x, epsilon, norm)
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv, x, epsilon=epsilon, norm=norm)
    if own:
        monitor.health().warn("fgsm")
    return x_adv


def pgd_loop(clf: Classifier, x: torch.Tensor, start: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
             *, epsilon: float, norm: str, step_size: float, steps: int,
             gradient: Callable[..., torch.Tensor] | None = None,
             monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Projected gradient ascent from ``start``: ``steps`` steps of size ``step_size``
    (signed for L∞, normalised for L2), each followed by the projection onto the ε-ball
    and [0, 1]. ``gradient(x_adv, monitor)`` replaces the single-draw input gradient
    (the EOT mean of :class:`~evcsa.adversaries.BPDAEOT`)."""
    x_adv = start
    for _ in range(steps):
        if gradient is None:
            grad, _, _ = input_gradient(clf, x_adv, loss_fn, monitor=monitor)
        else:
            grad = gradient(x_adv, monitor)
        x_adv = project(_step(x_adv, grad, step_size, norm), x, epsilon, norm)
    return x_adv


def bim(model: Any, x: Any, y: Any, *, target: Any = None, epsilon: float = 0.3, step_size: float | None = None,
        steps: int = 10, norm: str = "linf", random_start: bool = False, loss: str = "ce",
        confidence: float = 0.0, round_to_grid: bool = False, generator: torch.Generator | None = None,
        monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Basic Iterative Method (Kurakin et al., 2017); with ``random_start`` it is PGD
    (Madry et al., 2018).

    x′₀ = x (or a uniform point of the ε-ball, clipped to [0, 1] before the first
    gradient); x′ᵢ₊₁ = Π(x′ᵢ + α·sign(∇ L(x′ᵢ))) with Π the projection onto the ε-ball
    around x and onto [0, 1], applied at every step. L is the cross-entropy on logits
    (increased untargeted, decreased towards the target when targeted) or the C&W margin.
    No early stopping: every sample takes the same steps whatever the batch holds.

    Args:
        model: Classifier (gradients via ``surrogate_logits``) or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] or None.
        epsilon: ε ≥ 0 (default 0.3).
        step_size: α > 0 (default None: 2ε / steps, i.e. 0.06 at ε 0.3 and 10 steps).
        steps: number of steps ≥ 1 (default 10).
        norm: "linf" (default) or "l2" (normalised-gradient steps, L2 ball).
        random_start: start from a random point of the ε-ball (PGD).
        loss: "ce" (default) or "cw".
        confidence: κ for the C&W margin (ignored for "ce").
        round_to_grid: round the result to the uint8 grid within the ε-ball.
        generator: the random start's randomness (required for reproducibility; the
            global generator is used only when None).
        monitor: receives the gradient health; without one, flagged samples warn.

    Returns:
        float32 [B, C, H, W] in [0, 1] within ε of x, on the model's device.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    check_generator(generator)
    bound = check_epsilon(epsilon)
    assert bound is not None  # optional=False: a float or an error
    epsilon = bound
    steps = check_positive_int(steps, "steps")
    if step_size is None:
        step_size = default_step_size(epsilon, steps)
        if step_size == 0.0:  # ε = 0: nothing can move; any positive step gives x itself
            step_size = 1.0
    step_size = check_number(step_size, "step_size", minimum=0.0, open_low=True)
    norm = check_choice(norm, ("linf", "l2"), "norm")
    loss = check_choice(loss, LOSSES, "loss")
    confidence = check_number(confidence, "confidence", minimum=0.0)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    warn_if_trivial(epsilon, norm, tuple(x.shape[1:]), where="bim")
    own = monitor is None
    if monitor is None:
        monitor = GradientMonitor(x.shape[0])
    labels = y if target is None else target
    loss_fn = ascent_loss(labels, target is not None, loss, confidence)
    start = _random_start(x, epsilon, norm, generator) if random_start else x.clone()
    x_adv = pgd_loop(clf, x, start, loss_fn, epsilon=epsilon, norm=norm, step_size=step_size, steps=steps,
                     monitor=monitor)
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv, x, epsilon=epsilon, norm=norm)
    if own:
        monitor.health().warn("bim")
    return x_adv
