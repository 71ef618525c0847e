"""A frozen copy of evcsa.attacks.carlini_wagner and jsma before issue 11 (commit 2e8ab14),
with the input_gradient of that commit: the oracle of the bit-for-bit regression test of
the reference schedule (tests/attacks/test_cw_schedule.py). Not part of the package."""
# ruff: noqa
from __future__ import annotations


import math
from typing import Any

import torch

from evcsa._validation import check_positive_int
from evcsa.attacks._common import check_generator, check_number, prepare_inputs, to_uint8_grid, _surrogate, describe
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier
from evcsa.errors import InvalidParameter

__all__ = ["cw_l0", "cw_l2", "cw_linf"]


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
    if missing:
        grad = torch.zeros_like(x)
    finite = torch.isfinite(grad)
    nonfinite = ~finite.flatten(1).all(dim=1)
    if bool(nonfinite.any()):
        grad = torch.where(finite, grad, torch.zeros_like(grad))
    if monitor is not None:
        monitor.observe(grad, index=index, missing=missing, nonfinite=nonfinite)
    return grad.detach(), logits.detach(), loss.detach()




_TANH_SCALE = 1.0 - 1e-6


def _to_tanh_space(v: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2.0 * v - 1.0) * _TANH_SCALE)


class _Adam:
    """Adam (Kingma & Ba, 2015; TensorFlow 1's update rule) with a step count per sample,
    so samples that restart their optimisation at different times stay independent."""

    def __init__(self, like: torch.Tensor, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(like.shape[0], dtype=torch.int64, device=like.device)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def reset(self, idx: torch.Tensor) -> None:
        self.m[idx] = 0.0
        self.v[idx] = 0.0
        self.t[idx] = 0

    def step(self, param: torch.Tensor, grad: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The updated ``param`` (the rows ``idx`` of the optimised tensor) after one step."""
        t = self.t[idx] + 1
        self.t[idx] = t
        m = self.beta1 * self.m[idx] + (1.0 - self.beta1) * grad
        v = self.beta2 * self.v[idx] + (1.0 - self.beta2) * grad * grad
        self.m[idx] = m
        self.v[idx] = v
        tf = t.to(param.dtype)
        lr_t = self.lr * torch.sqrt(1.0 - self.beta2 ** tf) / (1.0 - self.beta1 ** tf)
        lr_t = lr_t.view(-1, *([1] * (param.dim() - 1)))
        return param - lr_t * m / (torch.sqrt(v) + self.eps)


def _raw_margin(labels: torch.Tensor, targeted: bool):
    """The C&W margin without its floor: max_{j≠t} z_j − z_t (targeted) or
    z_y − max_{j≠y} z_j (untargeted); the attack succeeds with confidence κ at ≤ −κ."""
    def fn(z: torch.Tensor) -> torch.Tensor:
        label_logit = z.gather(1, labels[:, None]).squeeze(1)
        mask = torch.nn.functional.one_hot(labels, z.shape[1]).to(torch.bool)
        other = z.masked_fill(mask, float("-inf")).amax(dim=1)
        return other - label_logit if targeted else label_logit - other
    return fn


class _Problem:
    """The quantities shared by the three C&W attacks for one batch."""

    def __init__(self, clf: Classifier, x: torch.Tensor, labels: torch.Tensor, targeted: bool,
                 confidence: float, monitor: GradientMonitor) -> None:
        self.clf, self.x, self.labels, self.targeted = clf, x, labels, targeted
        self.kappa = confidence
        self.monitor = monitor
        self.w_x = _to_tanh_space(x)
        self.fallback = x.clone()
        self.fallback_dist = torch.full((x.shape[0],), float("inf"), dtype=torch.float32, device=x.device)

    def evaluate(self, idx: torch.Tensor, start_w: torch.Tensor, modifier: torch.Tensor,
                 valid: torch.Tensor | None = None):
        """x′, logits, margin, the margin's input gradient and ∂x′/∂m for samples idx."""
        x = self.x[idx]
        tw = torch.tanh(start_w + modifier)
        u = x + (tw - torch.tanh(self.w_x[idx])) / 2.0
        inside = ((u >= 0.0) & (u <= 1.0)).to(x.dtype)
        x_adv = u.clamp(0.0, 1.0)
        dxdm = inside * (1.0 - tw * tw) / 2.0
        if valid is not None:
            x_adv = torch.where(valid, x_adv, x)
            dxdm = dxdm * valid.to(x.dtype)
        grad, logits, margin = input_gradient(self.clf, x_adv, _raw_margin(self.labels[idx], self.targeted),
                                              monitor=self.monitor, index=idx)
        return x_adv, logits, margin, grad, dxdm

    def hits(self, idx: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The goal reached at all: top class = t (targeted) or ≠ y (untargeted)."""
        pred = logits.argmax(dim=1)
        return pred == self.labels[idx] if self.targeted else pred != self.labels[idx]

    def succeeded(self, idx: torch.Tensor, logits: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        """The goal reached with confidence κ (margin ≤ −κ)."""
        return (margin + self.kappa <= 0.0) & self.hits(idx, logits)

    def track_fallback(self, idx: torch.Tensor, x_adv: torch.Tensor, logits: torch.Tensor,
                       dist: torch.Tensor) -> None:
        """Keep, per sample, the closest iterate that reaches the goal without the
        confidence margin: returned only when no κ-confident point is ever found."""
        better = self.hits(idx, logits) & (dist < self.fallback_dist[idx])
        if bool(better.any()):
            bi = idx[better]
            self.fallback_dist[bi] = dist[better]
            self.fallback[bi] = x_adv[better]

    def result(self, found: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """``best`` where a κ-confident point was found, else the fallback, else x."""
        use_fallback = ~found & torch.isfinite(self.fallback_dist)
        out = torch.where(_view(found, best), best, self.x)
        return torch.where(_view(use_fallback, best), self.fallback, out)

    def hinge_grad(self, margin: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂ max(margin + κ, 0) / ∂x′."""
        active = (margin + self.kappa > 0.0).to(grad.dtype).view(-1, *([1] * (grad.dim() - 1)))
        return grad * active


def _setup(model: Any, x: Any, y: Any, target: Any, confidence: float, generator: Any,
           monitor: GradientMonitor | None) -> tuple[_Problem, bool]:
    check_generator(generator)
    confidence = check_number(confidence, "confidence", minimum=0.0)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    own = monitor is None
    monitor = GradientMonitor(x.shape[0]) if own else monitor
    labels = y if target is None else target
    return _Problem(clf, x, labels, target is not None, confidence, monitor), own


def _check_schedule(learning_rate: Any, max_iterations: Any, initial_const: Any, largest_const: Any,
                    const_factor: Any) -> tuple[float, int, float, float, float]:
    """Check the Adam step and the c schedule of the L∞ and L0 attacks (c grows by
    ``const_factor`` from ``initial_const`` until ``largest_const``); raises InvalidParameter."""
    return (check_number(learning_rate, "learning_rate", minimum=0.0, open_low=True),
            check_positive_int(max_iterations, "max_iterations"),
            check_number(initial_const, "initial_const", minimum=0.0, open_low=True),
            check_number(largest_const, "largest_const", minimum=0.0, open_low=True),
            check_number(const_factor, "const_factor", minimum=1.0, open_low=True))


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def cw_l2(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, binary_search_steps: int = 9, max_iterations: int = 1000,
          abort_early: bool = True, initial_const: float = 1e-3, round_to_grid: bool = False,
          generator: torch.Generator | None = None, monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L2 attack (Carlini & Wagner, S&P 2017, § VI).

    Minimises ‖x′ − x‖₂² + c·max(f(x′) + κ, 0) over tanh-space modifiers with Adam, for
    ``binary_search_steps`` values of c per sample (start ``initial_const``; ×10 until a
    first success, then bisection), and returns the adversarial point of least L2 distance
    found (success: margin ≤ −κ and the predicted class right). From the 10th binary
    search step on, the last step reruns with c at its upper bound, as the reference does.
    Early abort per sample: every ``max_iterations // 10`` iterations, a sample whose loss
    has not dropped below 0.9999× its value at the previous check stops for this c.

    Args:
        model: Classifier (gradients via ``surrogate_logits``) or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] (the reference setting is targeted: next or least
            likely) or None (untargeted: any class but y).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default 1e-2).
        binary_search_steps: values of c tried (default 9).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: stop a sample's optimisation when it stalls (default True).
        initial_const: the first c (default 1e-3).
        round_to_grid: round x′ to the uint8 grid (no ε here: the attack is unbounded).
        generator: unused (deterministic); accepted for a uniform signature.
        monitor: receives the gradient health; without one, flagged samples warn.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, open_low=True)
    binary_search_steps = check_positive_int(binary_search_steps, "binary_search_steps")
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    initial_const = check_number(initial_const, "initial_const", minimum=0.0, open_low=True)
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b = x.shape[0]
    dev = x.device
    const = torch.full((b,), initial_const, dtype=torch.float32, device=dev)
    lower = torch.zeros(b, dtype=torch.float32, device=dev)
    upper = torch.full((b,), 1e10, dtype=torch.float32, device=dev)
    best_l2 = torch.full((b,), float("inf"), dtype=torch.float32, device=dev)
    best = x.clone()
    repeat = binary_search_steps >= 10
    check_every = max(1, max_iterations // 10)
    for search in range(binary_search_steps):
        if repeat and search == binary_search_steps - 1:
            const = upper.clone()
        modifier = torch.zeros_like(x)
        adam = _Adam(x, learning_rate)
        prev = torch.full((b,), float("inf"), dtype=torch.float32, device=dev)
        active = torch.ones(b, dtype=torch.bool, device=dev)
        hit_this = torch.zeros(b, dtype=torch.bool, device=dev)
        for it in range(max_iterations):
            idx = active.nonzero().flatten()
            if idx.numel() == 0:
                break
            x_adv, logits, margin, grad, dxdm = p.evaluate(idx, p.w_x[idx], modifier[idx])
            l2 = (x_adv - x[idx]).flatten(1).pow(2).sum(dim=1)
            c = const[idx]
            loss = l2 + c * torch.clamp(margin + p.kappa, min=0.0)
            ok = p.succeeded(idx, logits, margin)
            p.track_fallback(idx, x_adv, logits, l2)
            hit_this[idx[ok]] = True
            better = ok & (l2 < best_l2[idx])
            if bool(better.any()):
                bi = idx[better]
                best_l2[bi] = l2[better]
                best[bi] = x_adv[better]
            keep = torch.ones_like(ok)
            if abort_early and it % check_every == 0:
                keep = ~(loss > prev[idx] * 0.9999)
                prev[idx] = torch.where(keep, loss, prev[idx])
                active[idx[~keep]] = False
            if not bool(keep.any()):
                continue
            grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + 2.0 * (x_adv - x[idx])
            grad_m = grad_x * dxdm
            ki = idx[keep]
            modifier[ki] = adam.step(modifier[ki], grad_m[keep], ki)
        # the binary search over c, per sample (reference: 1e9 marks "no upper bound yet")
        upper = torch.where(hit_this, torch.minimum(upper, const), upper)
        lower = torch.where(hit_this, lower, torch.maximum(lower, const))
        bounded = upper < 1e9
        const = torch.where(bounded, (lower + upper) / 2.0, torch.where(hit_this, const, const * 10.0))
    best = p.result(torch.isfinite(best_l2), best)
    if round_to_grid:
        best = to_uint8_grid(best)
    if own:
        p.monitor.health().warn("cw_l2")
    return best


def cw_linf(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
            learning_rate: float = 5e-3, max_iterations: int = 1000, abort_early: bool = True,
            initial_const: float = 1e-5, largest_const: float = 20.0, const_factor: float = 2.0,
            decrease_factor: float = 0.9, reduce_const: bool = False, round_to_grid: bool = False,
            generator: torch.Generator | None = None, monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L∞ attack (Carlini & Wagner, S&P 2017, § VIII).

    For a threshold τ (start 1), minimise c·max(f(x′) + κ, 0) + Σᵢ max(|x′ᵢ − xᵢ| − τ, 0)
    with Adam from the last solution; an optimisation succeeds when the loss falls below
    1e-4·c with the class right. On success τ ← min(τ, ‖x′ − x‖∞)·``decrease_factor`` and
    the search goes on from x′; after ``max_iterations`` steps without success c doubles
    (``const_factor``) and the optimisation continues; once c reaches ``largest_const``
    (or τ falls below 1/256) the sample stops and its last success is returned. Each
    sample runs this loop on its own.

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] or None (untargeted).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default 5e-3).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: accept the first successful iterate (default True; False runs all
            ``max_iterations`` steps of each c as the reference's ``step == CONST-1``
            test effectively does).
        initial_const, largest_const, const_factor: c starts at 1e-5, doubles, gives up
            at 20 (the reference values).
        decrease_factor: τ's shrink factor in (0, 1) (default 0.9).
        reduce_const: halve c after each success (default False).
        round_to_grid: round x′ to the uint8 grid.
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    learning_rate, max_iterations, initial_const, largest_const, const_factor = _check_schedule(
        learning_rate, max_iterations, initial_const, largest_const, const_factor)
    decrease_factor = check_number(decrease_factor, "decrease_factor", minimum=0.0, maximum=1.0, open_low=True)
    if decrease_factor == 1.0:
        raise InvalidParameter("expected decrease_factor < 1 (τ must shrink after each success), got 1.0")
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b = x.shape[0]
    dev = x.device
    tau = torch.ones(b, dtype=torch.float32, device=dev)
    const = torch.full((b,), initial_const, dtype=torch.float64, device=dev)
    prev = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = _Adam(x, learning_rate)
    step = torch.zeros(b, dtype=torch.int64, device=dev)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    done = const >= largest_const
    while True:
        idx = (~done).nonzero().flatten()
        if idx.numel() == 0:
            break
        x_adv, logits, margin, grad, dxdm = p.evaluate(idx, start_w[idx], modifier[idx])
        c = const[idx].to(torch.float32)
        diff = x_adv - x[idx]
        excess = diff.abs() - _view(tau[idx], diff)
        loss = c * torch.clamp(margin + p.kappa, min=0.0) + excess.clamp(min=0.0).flatten(1).sum(dim=1)
        p.track_fallback(idx, x_adv, logits, diff.abs().flatten(1).amax(dim=1))
        ok = p.succeeded(idx, logits, margin) & (loss < 1e-4 * c)
        if not abort_early:
            ok = ok & (step[idx] == max_iterations - 1)
        if bool(ok.any()):
            oi = idx[ok]
            found = x_adv[ok]
            prev[oi] = found
            succeeded[oi] = True
            actual = (found - x[oi]).abs().flatten(1).amax(dim=1)
            tau[oi] = torch.minimum(tau[oi], actual) * decrease_factor
            if reduce_const:
                const[oi] = const[oi] / 2.0
            start_w[oi] = _to_tanh_space(found)
            modifier[oi] = 0.0
            adam.reset(oi)
            step[oi] = 0
            done[oi] = (tau[oi] <= 1.0 / 256.0) | (const[oi] >= largest_const)
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + diff.sign() * (excess > 0).to(diff.dtype)
            grad_m = (grad_x * dxdm)[go]
            modifier[gi] = adam.step(modifier[gi], grad_m, gi)
            step[gi] += 1
            over = step[gi] >= max_iterations
            if bool(over.any()):
                oi = gi[over]
                const[oi] = const[oi] * const_factor
                step[oi] = 0
                done[oi] = const[oi] >= largest_const
    prev = p.result(succeeded, prev)
    if round_to_grid:
        prev = to_uint8_grid(prev)
    if own:
        p.monitor.health().warn("cw_linf")
    return prev


def cw_l0(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, max_iterations: int = 1000, abort_early: bool = True,
          initial_const: float = 1e-3, largest_const: float = 2e6, const_factor: float = 2.0,
          reduce_const: bool = False, independent_channels: bool = False, round_to_grid: bool = False,
          generator: torch.Generator | None = None, monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L0 attack (Carlini & Wagner, S&P 2017, § VII).

    Repeatedly solve the L2 problem ‖x′ − x‖₂² + c·max(f(x′) + κ, 0) restricted to a set
    of pixels allowed to change (start: all), warm-started from the last solution; after
    each success, freeze the pixels with the least total change |Σ_c δ|·Σ_c|∂loss/∂m|:
    in increasing order, up to ⌈0.3·√(changed pixels)⌉ of them, stopping after the first
    whose total change exceeds 0.01. When an optimisation fails (c reached
    ``largest_const`` by doubling after every ``max_iterations`` steps), the last
    solution is returned. A pixel's channels change together unless
    ``independent_channels``.

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] or None (untargeted).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default 1e-2).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: accept the first successful iterate (default True).
        initial_const, largest_const, const_factor: c starts at 1e-3, doubles, gives up
            at 2e6 (the reference values).
        reduce_const: halve c after each success (default False).
        independent_channels: freeze channels rather than pixels.
        round_to_grid: round x′ to the uint8 grid.
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    learning_rate, max_iterations, initial_const, largest_const, const_factor = _check_schedule(
        learning_rate, max_iterations, initial_const, largest_const, const_factor)
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b, ch = x.shape[0], x.shape[1]
    dev = x.device
    mask_shape = (b, ch if independent_channels else 1, *x.shape[2:])
    valid = torch.ones(mask_shape, dtype=torch.bool, device=dev)
    const = torch.full((b,), initial_const, dtype=torch.float64, device=dev)
    solution = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = _Adam(x, learning_rate)
    step = torch.zeros(b, dtype=torch.int64, device=dev)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    done = const >= largest_const
    while True:
        idx = (~done).nonzero().flatten()
        if idx.numel() == 0:
            break
        vmask = valid[idx]
        x_adv, logits, margin, grad, dxdm = p.evaluate(idx, start_w[idx], modifier[idx], valid=vmask)
        c = const[idx].to(torch.float32)
        diff = x_adv - x[idx]
        ok = p.succeeded(idx, logits, margin)
        p.track_fallback(idx, x_adv, logits, (diff.abs() > 1e-6).any(dim=1).flatten(1).sum(dim=1).to(torch.float32))
        if not abort_early:
            ok = ok & (step[idx] == max_iterations - 1)
        grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
        grad_m = grad_x * dxdm
        if bool(ok.any()):
            for j in ok.nonzero().flatten().tolist():
                i = int(idx[j])
                if not bool(valid[i].any()):
                    # nothing may change and it is adversarial already: x itself
                    solution[i] = x[i]
                    succeeded[i] = True
                    done[i] = True
                    continue
                delta = diff[j]
                changed = int(((delta.abs() >= 1e-4).any(dim=0)).sum())
                if independent_channels:
                    total = (delta.abs() * grad_m[j].abs()).flatten()
                else:
                    total = (delta.sum(dim=0).abs() * grad_m[j].abs().sum(dim=0)).flatten()
                v = valid[i].flatten()
                order = torch.argsort(total, stable=True)
                cand = order[v[order]]
                limit = max(1, math.ceil(0.3 * math.sqrt(changed)))
                big = (total[cand] > 0.01).nonzero().flatten()
                count = min(limit, int(big[0]) + 1 if big.numel() else cand.numel(), cand.numel())
                v[cand[:count]] = False
                valid[i] = v.view(valid[i].shape)
                solution[i] = x_adv[j]
                succeeded[i] = True
                start_w[i] = _to_tanh_space(x_adv[j])
                modifier[i] = 0.0
                adam.reset(idx[j:j + 1])
                step[i] = 0
                if reduce_const:
                    const[i] = const[i] / 2.0
                done[i] = bool(const[i] >= largest_const)
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            modifier[gi] = adam.step(modifier[gi], grad_m[go], gi)
            step[gi] += 1
            over = step[gi] >= max_iterations
            if bool(over.any()):
                oi = gi[over]
                const[oi] = const[oi] * const_factor
                step[oi] = 0
                done[oi] = const[oi] >= largest_const
    solution = p.result(succeeded, solution)
    if round_to_grid:
        solution = to_uint8_grid(solution)
    if own:
        p.monitor.health().warn("cw_l0")
    return solution
