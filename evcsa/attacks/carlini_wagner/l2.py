"""The Carlini–Wagner L2 attack (:mod:`evcsa.attacks.carlini_wagner`).

Source: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE
S&P 2017, § VI (binary search over c), and their reference code ``nn_robust_attacks``;
the differences from it and the fast schedule are in the package docstring.
"""

from __future__ import annotations

from typing import Any

import torch

from evcsa._validation import check_positive_int
from evcsa.attacks.carlini_wagner.optimisation import (FAST_CHECK_EVERY, Adam, Stall, active_rows, per_sample, put,
                                                       rows)
from evcsa.attacks.carlini_wagner.problem import setup
from evcsa.attacks.gradients import GradientMonitor


def cw_l2(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, binary_search_steps: int = 9, max_iterations: int = 1000,
          abort_early: bool = True, initial_const: float = 1e-3, round_to_grid: bool = False,
          schedule: str = "reference", generator: torch.Generator | None = None,
          monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L2 attack (Carlini & Wagner, S&P 2017, § VI).

    Minimises ‖x′ − x‖₂² + c·max(f(x′) + κ, 0) over tanh-space modifiers with Adam, for
    ``binary_search_steps`` values of c per sample (start ``initial_const``; ×10 until a
    first success, then bisection), and returns the adversarial point of least L2 distance
    found (success: margin ≤ −κ and the predicted class right). From the 10th binary
    search step on, the last step reruns with c at its upper bound, as the reference does.
    Early abort per sample: every ``max_iterations // 10`` iterations, a sample whose loss
    has not dropped below 0.9999× its value at the previous check stops for this c.
    ``schedule="fast"`` checks every 10 iterations instead (module docstring).

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
        schedule: "reference" (default: the reference code's schedule) or "fast" (the
            stall stop of the module docstring, a departure from the reference).
        generator: unused (deterministic); accepted for a uniform signature.
        monitor: receives the gradient health; without one, flagged samples warn.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    binary_search_steps = check_positive_int(binary_search_steps, "binary_search_steps")
    start = setup(model, x, y, target, confidence=confidence, learning_rate=learning_rate,
                  max_iterations=max_iterations, initial_const=initial_const, schedule=schedule,
                  generator=generator, monitor=monitor)
    p, fast, learning_rate = start.problem, start.fast, start.learning_rate
    max_iterations, initial_const = start.max_iterations, start.initial_const
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
    stall = Stall(b, dev) if fast else None
    fast_every = min(FAST_CHECK_EVERY, check_every)
    for search in range(binary_search_steps):
        if repeat and search == binary_search_steps - 1:
            const = upper.clone()
        modifier = torch.zeros_like(x)
        adam = Adam(x, learning_rate)
        prev = torch.full((b,), float("inf"), dtype=torch.float32, device=dev)
        active = torch.ones(b, dtype=torch.bool, device=dev)
        hit_this = torch.zeros(b, dtype=torch.bool, device=dev)
        if stall is not None:
            stall.restart(None)
        for it in range(max_iterations):
            idx, ix = active_rows(active)
            if idx.numel() == 0:
                break
            x_adv, logits, margin, grad, dxdm = p.evaluate(ix, rows(p.w_x, ix), rows(modifier, ix))
            diff = x_adv - rows(x, ix)
            l2 = diff.flatten(1).pow(2).sum(dim=1)
            c = rows(const, ix)
            loss = l2 + c * torch.clamp(margin + p.kappa, min=0.0)
            ok = p.succeeded(ix, logits, margin)
            p.track_fallback(idx, ix, x_adv, logits, l2)
            hit_this[idx[ok]] = True
            better = ok & (l2 < rows(best_l2, ix))
            if bool(better.any()):
                bi = idx[better]
                best_l2[bi] = l2[better]
                best[bi] = x_adv[better]
            keep = None
            if abort_early and stall is not None:
                if it % fast_every == 0:
                    check = torch.full_like(ok, it > 0)
                else:
                    check = torch.zeros_like(ok)
                keep = ~stall.update(idx, ix, loss, check)
            elif abort_early and it % check_every == 0:
                prev_rows = rows(prev, ix)
                keep = ~(loss > prev_rows * 0.9999)
                put(prev, ix, torch.where(keep, loss, prev_rows))
            if keep is not None and not bool(keep.all()):
                active[idx[~keep]] = False
                if not bool(keep.any()):
                    continue
                ki = idx[keep]
                grad_x = per_sample(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
                grad_m = grad_x * dxdm
                modifier[ki] = adam.step(modifier[ki], grad_m[keep], ki)
                continue
            grad_x = per_sample(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
            grad_m = grad_x * dxdm
            put(modifier, ix, adam.step(rows(modifier, ix), grad_m, ix))
        # the binary search over c, per sample (reference: 1e9 marks "no upper bound yet")
        upper = torch.where(hit_this, torch.minimum(upper, const), upper)
        lower = torch.where(hit_this, lower, torch.maximum(lower, const))
        bounded = upper < 1e9
        const = torch.where(bounded, (lower + upper) / 2.0, torch.where(hit_this, const, const * 10.0))
    return start.finish(torch.isfinite(best_l2), best, round_to_grid, "cw_l2")
