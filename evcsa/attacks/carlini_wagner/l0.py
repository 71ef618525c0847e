"""The Carlini–Wagner L0 attack (:mod:`evcsa.attacks.carlini_wagner`).

Source: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE
S&P 2017, § VII (shrink the set of pixels allowed to change), and their reference code
``nn_robust_attacks``; the differences from it and the fast schedule are in the package
docstring.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evcsa.attacks.carlini_wagner.optimisation import Adam, Climb, active_rows, per_sample, put, rows, to_tanh_space
from evcsa.attacks.carlini_wagner.problem import check_climb, l0_loss, setup
from evcsa.attacks.gradients import GradientMonitor


def cw_l0(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, max_iterations: int = 1000, abort_early: bool = True,
          initial_const: float = 1e-3, largest_const: float = 2e6, const_factor: float = 2.0,
          reduce_const: bool = False, independent_channels: bool = False, round_to_grid: bool = False,
          schedule: str = "reference", generator: torch.Generator | None = None,
          monitor: GradientMonitor | None = None) -> torch.Tensor:
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
        schedule: "reference" (default: the reference code's schedule) or "fast" (stall
            stop and capped climb of c, a departure from the reference: module docstring).
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    largest_const, const_factor = check_climb(largest_const, const_factor)
    start = setup(model, x, y, target, confidence=confidence, learning_rate=learning_rate,
                  max_iterations=max_iterations, initial_const=initial_const, schedule=schedule,
                  generator=generator, monitor=monitor)
    p, fast, learning_rate = start.problem, start.fast, start.learning_rate
    max_iterations, initial_const = start.max_iterations, start.initial_const
    x = p.x
    b, ch = x.shape[0], x.shape[1]
    dev = x.device
    mask_shape = (b, ch if independent_channels else 1, *x.shape[2:])
    valid = torch.ones(mask_shape, dtype=torch.bool, device=dev)
    climb = Climb(b, dev, max_iterations, initial_const, largest_const, const_factor, fast, cap=True)
    const = climb.const
    solution = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = Adam(x, learning_rate)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    while True:
        idx, ix = active_rows(~climb.done)
        if idx.numel() == 0:
            break
        x_adv, logits, margin, grad, dxdm = p.evaluate(ix, rows(start_w, ix), rows(modifier, ix),
                                                       valid=rows(valid, ix))
        c = rows(const, ix).to(torch.float32)
        diff = x_adv - rows(x, ix)
        ok = p.succeeded(ix, logits, margin)
        p.track_fallback(idx, ix, x_adv, logits,
                         (diff.abs() > 1e-6).any(dim=1).flatten(1).sum(dim=1).to(torch.float32))
        if not abort_early:
            ok = ok & (rows(climb.step, ix) == max_iterations - 1)
        grad_x = per_sample(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
        grad_m = grad_x * dxdm
        loss = l0_loss(diff, c, margin, p.kappa) if fast else None
        any_ok = bool(ok.any())
        if any_ok:
            for j in ok.nonzero().flatten().tolist():
                i = int(idx[j])
                if not bool(valid[i].any()):
                    # nothing may change and it is adversarial already: x itself
                    solution[i] = x[i]
                    succeeded[i] = True
                    climb.done[i] = True
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
                start_w[i] = to_tanh_space(x_adv[j])
                modifier[i] = 0.0
                one = idx[j:j + 1]
                adam.reset(one)
                climb.succeeded(one)
                if reduce_const:
                    const[i] = const[i] / 2.0
                climb.done[one] = climb.finished(one)
        if not any_ok:
            put(modifier, ix, adam.step(rows(modifier, ix), grad_m, ix))
            climb.stepped(idx, ix, loss)
            continue
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            modifier[gi] = adam.step(modifier[gi], grad_m[go], gi)
            climb.stepped(gi, gi, None if loss is None else loss[go])
    return start.finish(succeeded, solution, round_to_grid, "cw_l0")
