"""The Carlini–Wagner L∞ attack (:mod:`evcsa.attacks.carlini_wagner`).

Source: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE
S&P 2017, § VIII (shrink the threshold τ), and their reference code ``nn_robust_attacks``;
the differences from it and the fast schedule are in the package docstring.
"""

from __future__ import annotations

from typing import Any

import torch

from evcsa.attacks._common import check_number
from evcsa.attacks.carlini_wagner.optimisation import (ADAM_EPS, FAST_ADAM_EPS, FAST_LINF_LEARNING_RATE,
                                                       LINF_LEARNING_RATE, Adam, Climb, active_rows, per_sample,
                                                       put, rows, to_tanh_space)
from evcsa.attacks.carlini_wagner.problem import check_climb, setup
from evcsa.attacks.gradients import GradientMonitor
from evcsa.errors import InvalidParameter


def _default_learning_rate(fast: bool) -> float:
    """Adam's step of the L∞ attack when none is given: 1e-2 fast, 5e-3 (the reference's)."""
    return FAST_LINF_LEARNING_RATE if fast else LINF_LEARNING_RATE


def cw_linf(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
            learning_rate: float | None = None, max_iterations: int = 1000, abort_early: bool = True,
            initial_const: float = 1e-5, largest_const: float = 20.0, const_factor: float = 2.0,
            decrease_factor: float = 0.9, reduce_const: bool = False, round_to_grid: bool = False,
            schedule: str = "reference", generator: torch.Generator | None = None,
            monitor: GradientMonitor | None = None) -> torch.Tensor:
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
        learning_rate: Adam's step (default: 5e-3, the reference's; 1e-2 under the fast
            schedule).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: accept the first successful iterate (default True; False runs all
            ``max_iterations`` steps of each c as the reference's ``step == CONST-1``
            test effectively does).
        initial_const, largest_const, const_factor: c starts at 1e-5, doubles, gives up
            at 20 (the reference values).
        decrease_factor: τ's shrink factor in (0, 1) (default 0.9).
        reduce_const: halve c after each success (default False).
        round_to_grid: round x′ to the uint8 grid.
        schedule: "reference" (default: the reference code's schedule) or "fast" (stall
            stop, Adam's ε 1e-14 and step 1e-2; a departure from the reference: module
            docstring).
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    largest_const, const_factor = check_climb(largest_const, const_factor)
    decrease_factor = check_number(decrease_factor, "decrease_factor", minimum=0.0, maximum=1.0, open_low=True)
    if decrease_factor == 1.0:
        raise InvalidParameter("expected decrease_factor < 1 (τ must shrink after each success), got 1.0")
    start = setup(model, x, y, target, confidence=confidence, learning_rate=learning_rate,
                  max_iterations=max_iterations, initial_const=initial_const, schedule=schedule,
                  generator=generator, monitor=monitor, default_learning_rate=_default_learning_rate)
    p, fast, learning_rate = start.problem, start.fast, start.learning_rate
    max_iterations, initial_const = start.max_iterations, start.initial_const
    x = p.x
    b = x.shape[0]
    dev = x.device
    tau = torch.ones(b, dtype=torch.float32, device=dev)
    climb = Climb(b, dev, max_iterations, initial_const, largest_const, const_factor, fast, cap=False)
    const = climb.const
    prev = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = Adam(x, learning_rate, eps=FAST_ADAM_EPS if fast else ADAM_EPS)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    while True:
        idx, ix = active_rows(~climb.done)
        if idx.numel() == 0:
            break
        x_adv, logits, margin, grad, dxdm = p.evaluate(ix, rows(start_w, ix), rows(modifier, ix))
        c = rows(const, ix).to(torch.float32)
        diff = x_adv - rows(x, ix)
        adiff = diff.abs()
        excess = adiff - per_sample(rows(tau, ix), diff)
        loss = c * torch.clamp(margin + p.kappa, min=0.0) + excess.clamp(min=0.0).flatten(1).sum(dim=1)
        p.track_fallback(idx, ix, x_adv, logits, adiff.flatten(1).amax(dim=1))
        ok = p.succeeded(ix, logits, margin) & (loss < 1e-4 * c)
        if not abort_early:
            ok = ok & (rows(climb.step, ix) == max_iterations - 1)
        any_ok = bool(ok.any())
        if any_ok:
            oi = idx[ok]
            found = x_adv[ok]
            prev[oi] = found
            succeeded[oi] = True
            actual = (found - x[oi]).abs().flatten(1).amax(dim=1)
            tau[oi] = torch.minimum(tau[oi], actual) * decrease_factor
            climb.succeeded(oi)
            if reduce_const:
                const[oi] = const[oi] / 2.0
            start_w[oi] = to_tanh_space(found)
            modifier[oi] = 0.0
            adam.reset(oi)
            climb.done[oi] = (tau[oi] <= 1.0 / 256.0) | climb.finished(oi)
        grad_x = per_sample(c, grad) * p.hinge_grad(margin, grad) + diff.sign() * (excess > 0).to(diff.dtype)
        grad_m = grad_x * dxdm
        if not any_ok:
            put(modifier, ix, adam.step(rows(modifier, ix), grad_m, ix))
            climb.stepped(idx, ix, loss)
            continue
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            modifier[gi] = adam.step(modifier[gi], grad_m[go], gi)
            climb.stepped(gi, gi, loss[go])
    return start.finish(succeeded, prev, round_to_grid, "cw_linf")
