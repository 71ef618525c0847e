"""The setup shared by the three Carlini–Wagner attacks (:mod:`evcsa.attacks.carlini_wagner`):
argument checking, the classifier and inputs, the change of variables to tanh space and
the quantities each batch's loop evaluates (x′, the margin f, its gradient, ∂x′/∂m, the
success tests and the low-confidence fallback), and the common ending.

Source: Carlini & Wagner, S&P 2017, § V (objective f₆, change of variables to tanh
space); the differences from the reference code are listed in the package docstring.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
import torch

from evcsa._validation import check_positive_int
from evcsa.attacks._common import check_generator, check_number, input_gradient, prepare_inputs, to_uint8_grid
from evcsa.attacks.carlini_wagner.optimisation import check_schedule_name, per_sample, rows, to_tanh_space
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier

def raw_margin(labels: torch.Tensor, targeted: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The C&W margin without its floor: max_{j≠t} z_j − z_t (targeted) or
    z_y − max_{j≠y} z_j (untargeted); the attack succeeds with confidence κ at ≤ −κ."""
    def fn(z: torch.Tensor) -> torch.Tensor:
        label_logit = z.gather(1, labels[:, None]).squeeze(1)
        mask = torch.nn.functional.one_hot(labels, z.shape[1]).to(torch.bool)
        other = z.masked_fill(mask, float("-inf")).amax(dim=1)
        return other - label_logit if targeted else label_logit - other
    return fn


class Problem:
    """The quantities shared by the three C&W attacks for one batch."""

    def __init__(self, clf: Classifier, x: torch.Tensor, labels: torch.Tensor, targeted: bool,
                 confidence: float, monitor: GradientMonitor) -> None:
        self.clf, self.x, self.labels, self.targeted = clf, x, labels, targeted
        self.kappa = confidence
        self.monitor = monitor
        self.w_x = to_tanh_space(x)
        self.tanh_w_x = torch.tanh(self.w_x)
        self.fallback = x.clone()
        self.fallback_dist = torch.full((x.shape[0],), float("inf"), dtype=torch.float32, device=x.device)

    def evaluate(self, ix: torch.Tensor | None, start_w: torch.Tensor, modifier: torch.Tensor,
                 valid: torch.Tensor | None = None):
        """x′, logits, margin, the margin's input gradient and ∂x′/∂m for the rows ``ix``
        (every row when None)."""
        x = rows(self.x, ix)
        tw = torch.tanh(start_w + modifier)
        u = x + (tw - rows(self.tanh_w_x, ix)) / 2.0
        inside = ((u >= 0.0) & (u <= 1.0)).to(x.dtype)
        x_adv = u.clamp(0.0, 1.0)
        dxdm = inside * (1.0 - tw * tw) / 2.0
        if valid is not None:
            x_adv = torch.where(valid, x_adv, x)
            dxdm = dxdm * valid.to(x.dtype)
        grad, logits, margin = input_gradient(self.clf, x_adv, raw_margin(rows(self.labels, ix), self.targeted),
                                              monitor=self.monitor, index=ix)
        return x_adv, logits, margin, grad, dxdm

    def hits(self, ix: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        """The goal reached at all: top class = t (targeted) or ≠ y (untargeted)."""
        pred = logits.argmax(dim=1)
        labels = rows(self.labels, ix)
        return pred == labels if self.targeted else pred != labels

    def succeeded(self, ix: torch.Tensor | None, logits: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        """The goal reached with confidence κ (margin ≤ −κ)."""
        return (margin + self.kappa <= 0.0) & self.hits(ix, logits)

    def track_fallback(self, idx: torch.Tensor, ix: torch.Tensor | None, x_adv: torch.Tensor,
                       logits: torch.Tensor, dist: torch.Tensor) -> None:
        """Keep, per sample, the closest iterate that reaches the goal without the
        confidence margin: returned only when no κ-confident point is ever found.
        ``idx`` are the rows' positions, ``ix`` the same as a selector (None: all)."""
        better = self.hits(ix, logits) & (dist < rows(self.fallback_dist, ix))
        if bool(better.any()):
            bi = idx[better]
            self.fallback_dist[bi] = dist[better]
            self.fallback[bi] = x_adv[better]

    def result(self, found: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """``best`` where a κ-confident point was found, else the fallback, else x."""
        use_fallback = ~found & torch.isfinite(self.fallback_dist)
        out = torch.where(per_sample(found, best), best, self.x)
        return torch.where(per_sample(use_fallback, best), self.fallback, out)

    def hinge_grad(self, margin: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂ max(margin + κ, 0) / ∂x′."""
        active = (margin + self.kappa > 0.0).to(grad.dtype).view(-1, *([1] * (grad.dim() - 1)))
        return grad * active


@attrs.frozen
class Start:
    """Where each C&W entry point starts (:func:`setup`): the batch's :class:`Problem`, the
    checked settings every attack shares, and whether the attack owns the gradient
    monitor (then it warns of flagged samples at the end, :meth:`finish`)."""

    problem: Problem
    fast: bool
    learning_rate: float
    max_iterations: int
    initial_const: float
    own_monitor: bool

    def finish(self, found: torch.Tensor, best: torch.Tensor, round_to_grid: bool, name: str) -> torch.Tensor:
        """The attack's output: ``best`` where a κ-confident point was ``found`` (bool [B]),
        else the fallback, else x (:meth:`Problem.result`); rounded to the uint8 grid when
        ``round_to_grid``; an owned monitor warns under ``name``."""
        out = self.problem.result(found, best)
        if round_to_grid:
            out = to_uint8_grid(out)
        if self.own_monitor:
            self.problem.monitor.health().warn(name)
        return out


def setup(model: Any, x: Any, y: Any, target: Any, *, confidence: float, learning_rate: float | None,
          max_iterations: int, initial_const: float, schedule: str, generator: torch.Generator | None,
          monitor: GradientMonitor | None, default_learning_rate: Callable[[bool], float] | None = None) -> Start:
    """The setup of every C&W entry point, in this order: the schedule's name, Adam's step
    (``default_learning_rate(fast)`` when ``learning_rate`` is None), the steps per
    constant, the first constant, the generator, κ, then the classifier and inputs
    (:func:`~evcsa.attacks._common.prepare_inputs`: x float32 [B, C, H, W] in [0, 1],
    labels [B]) and their tanh-space images (:class:`Problem`).

    Raises:
        InvalidParameter: a malformed parameter or input ("expected …, got …").
    """
    fast = check_schedule_name(schedule) == "fast"
    if learning_rate is None and default_learning_rate is not None:
        learning_rate = default_learning_rate(fast)
    learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, open_low=True)
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    initial_const = check_number(initial_const, "initial_const", minimum=0.0, open_low=True)
    check_generator(generator)
    confidence = check_number(confidence, "confidence", minimum=0.0)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    own = monitor is None
    used = GradientMonitor(x.shape[0]) if monitor is None else monitor
    labels = y if target is None else target
    problem = Problem(clf, x, labels, target is not None, confidence, used)
    return Start(problem, fast, learning_rate, max_iterations, initial_const, own)


def check_climb(largest_const: Any, const_factor: Any) -> tuple[float, float]:
    """Check the climb of c of the L∞ and L0 attacks (c grows by ``const_factor`` > 1
    until ``largest_const`` > 0); raises InvalidParameter."""
    return (check_number(largest_const, "largest_const", minimum=0.0, open_low=True),
            check_number(const_factor, "const_factor", minimum=1.0, open_low=True))


def l0_loss(diff: torch.Tensor, c: torch.Tensor, margin: torch.Tensor, kappa: float) -> torch.Tensor:
    """The L0 attack's per-sample objective ‖x′ − x‖₂² + c·max(f + κ, 0) (its stall test)."""
    return diff.flatten(1).pow(2).sum(dim=1) + c * torch.clamp(margin + kappa, min=0.0)
