"""APGD: Auto-PGD with the cross-entropy or the DLR loss, and EOT for randomized models.

Source: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020, § 3 (Algorithm 1: APGD) and § 4 (the DLR
loss). The defaults are AutoAttack's published ones (fra31/auto-attack,
``autoattack/autopgd_base.py`` and ``autoattack.py``), checked against its code:

- 100 iterations, one restart, a uniform random start in the ε-ball;
- step size η⁽⁰⁾ = 2ε (L∞ and L2), halved at a checkpoint when (1) at most ρ·k of the
  last k steps increased the loss (ρ = 0.75) or (2) the step was not halved at the
  previous checkpoint and the best loss has not improved since; after a halving the
  iterate restarts from the best point;
- checkpoints: the first after ⌊0.22·N_iter⌋ iterations, each later interval shorter by
  ⌊0.03·N_iter⌋, never under ⌊0.06·N_iter⌋ (all at least 1);
- momentum α = 0.75 (1 at the first step): x⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + α(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ −
  x⁽ᵏ⁻¹⁾)), z⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + η·s(∇)), s = sign (L∞) or ∇/‖∇‖₂ (L2);
- DLR = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12) (π sorts the logits in
  decreasing order); targeted DLR = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12);
- the randomized-defense version ("rand"): APGD-CE and APGD-DLR with 20 EOT draws per
  gradient (mean of the per-draw gradients).

The code is evcsa's own; only these facts carry over. The gradient comes through the
classifier's ``surrogate_logits`` (BPDA for squeezers, one draw of its randomness per
call), so against a defense's twin this is APGD + BPDA + EOT.

Cost: per restart, (steps + 1) × eot_draws forward + backward passes of every image.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from evcsa._validation import check_epsilon, check_positive_int
from evcsa.attacks._common import (
    check_generator,
    check_number,
    cross_entropy,
    eot_gradient,
    prepare_inputs,
    project,
    random_start as _random_start,
    to_uint8_grid,
)
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier
from evcsa.distances import warn_if_trivial
from evcsa.errors import InvalidParameter

__all__ = ["APGD_LOSSES", "apgd", "apgd_loss", "checkpoints", "dlr_loss"]

APGD_LOSSES = ("ce", "dlr")


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """The Difference of Logits Ratio loss (Croce & Hein 2020, § 4), per sample, to increase.

    Untargeted: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12). Targeted at t:
    −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12). Invariant to shifting and scaling the
    logits, so a saturated softmax does not flatten it.

    Args:
        logits: float [B, K], K ≥ 3 (K ≥ 4 when targeted).
        labels: int64 [B], the true labels.
        target: int64 [B] or None.

    Returns:
        float [B].

    Raises:
        InvalidParameter: too few classes.
    """
    k = logits.shape[1]
    if k < (4 if target is not None else 3):
        raise InvalidParameter(f"expected at least {4 if target is not None else 3} classes for the DLR loss, "
                               f"got {k}", got=k)
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    if target is not None:
        z_t = logits.gather(1, target[:, None]).squeeze(1)
        return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return -(z_y - others) / (top[:, 0] - top[:, 2] + 1e-12)


def apgd_loss(loss: str, y: torch.Tensor, target: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample loss APGD increases: CE(z, y) or −CE(z, t); DLR or targeted DLR."""
    if loss == "ce":
        if target is None:
            return lambda z: cross_entropy(z, y)
        return lambda z: -cross_entropy(z, target)
    return lambda z: dlr_loss(z, y, target)


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD checks its step size (AutoAttack's schedule): the
    first after max(⌊0.22·N⌋, 1), each later interval shorter by max(⌊0.03·N⌋, 1), never
    under max(⌊0.06·N⌋, 1); all < N."""
    first, decrease, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at, interval = [], 0, first
    while at + interval < steps:
        at += interval
        out.append(at)
        interval = max(interval - decrease, least)
    return out


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)


def _hits(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(dim=2)
    hit = pred == target[None] if target is not None else pred != y[None]
    return hit.to(torch.float32).mean(dim=0)


def _run(clf: Classifier, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, *, epsilon: float,
         norm: str, loss: str, steps: int, eot_draws: int, rho: float, step_size: float, momentum: float,
         start: torch.Tensor, monitor: GradientMonitor, index: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run from ``start``: (point, its hit fraction over the EOT draws, its loss)
    of the iterate that best meets the goal (most draws, then the highest loss)."""
    b = x.shape[0]
    shape = (b, 1, 1, 1)
    loss_fn = apgd_loss(loss, y, target)
    x_k = start
    grad, logits, f = eot_gradient(clf, x_k, loss_fn, eot_draws, monitor=monitor, index=index)
    x_best, f_best, g_best = x_k.clone(), f.clone(), grad.clone()
    ret, ret_hits, ret_loss = x_k.clone(), _hits(logits, y, target), f.clone()
    eta = torch.full((b,), float(step_size), device=x.device)
    x_prev = x_k.clone()
    marks = set(checkpoints(steps))
    last_mark, increases = 0, torch.zeros(b, device=x.device)
    reduced_before = torch.ones(b, dtype=torch.bool, device=x.device)
    f_best_at_mark = f_best.clone()
    f_prev = f.clone()
    for k in range(steps):
        with torch.no_grad():
            z = project(x_k + eta.view(shape) * _direction(grad, norm), x, epsilon, norm)
            a = 1.0 if k == 0 else momentum
            x_next = project(x_k + a * (z - x_k) + (1.0 - a) * (x_k - x_prev), x, epsilon, norm)
        x_prev, x_k = x_k, x_next
        grad, logits, f = eot_gradient(clf, x_k, loss_fn, eot_draws, monitor=monitor, index=index)
        with torch.no_grad():
            increases += (f > f_prev).to(torch.float32)
            f_prev = f.clone()
            better = f > f_best
            x_best = torch.where(better.view(shape), x_k, x_best)
            g_best = torch.where(better.view(shape), grad, g_best)
            f_best = torch.where(better, f, f_best)
            hits = _hits(logits, y, target)
            keep = (hits > ret_hits) | ((hits == ret_hits) & (f > ret_loss))
            ret = torch.where(keep.view(shape), x_k, ret)
            ret_hits, ret_loss = torch.where(keep, hits, ret_hits), torch.where(keep, f, ret_loss)
            if k + 1 in marks:
                interval = k + 1 - last_mark
                oscillating = increases <= rho * interval
                stalled = ~reduced_before & (f_best_at_mark >= f_best)
                halve = oscillating | stalled
                eta = torch.where(halve, eta / 2.0, eta)
                x_k = torch.where(halve.view(shape), x_best, x_k)
                grad = torch.where(halve.view(shape), g_best, grad)
                reduced_before = halve
                f_best_at_mark = f_best.clone()
                last_mark, increases = k + 1, torch.zeros(b, device=x.device)
    return ret, ret_hits, ret_loss


def apgd(model: Any, x: Any, y: Any, *, target: Any = None, epsilon: float, norm: str = "linf", loss: str = "ce",
         steps: int = 100, eot_draws: int = 1, restarts: int = 1, rho: float = 0.75, step_size: float | None = None,
         momentum: float = 0.75, random_start: bool = True, batch_size: int = 256, round_to_grid: bool = False,
         generator: torch.Generator | None = None, monitor: GradientMonitor | None = None) -> torch.Tensor:
    """APGD (Croce & Hein, ICML 2020) with EOT, batched; AutoAttack's defaults.

    Args:
        model: Classifier (gradients via ``surrogate_logits``: BPDA, one randomness draw
            per call) or nn.Module returning logits.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] (targeted) or None.
        epsilon: ε ≥ 0 on the [0, 1] scale (required).
        norm: "linf" (default) or "l2".
        loss: "ce" (default) or "dlr" (needs K ≥ 3; targeted K ≥ 4).
        steps: iterations N_iter ≥ 1 (default 100).
        eot_draws: gradient draws averaged per iteration (default 1; AutoAttack's
            randomized version uses 20).
        restarts: runs from independent random starts (default 1); the best is kept.
        rho: ρ of the oscillation check (default 0.75).
        step_size: η⁽⁰⁾ (default None: 2ε).
        momentum: α (default 0.75).
        random_start: start from a uniform point of the ε-ball (default True, as AutoAttack).
        batch_size: images per batch of gradient steps (default 256).
        round_to_grid: round the result to the uint8 grid within the ε-ball.
        generator: the random starts' randomness (the global generator only when None).
        monitor: receives the gradient health; without one, flagged samples warn.

    Returns:
        float32 [B, C, H, W] in [0, 1] within ε of x, on the model's device: per image,
        the iterate that met the goal in the most EOT draws (ties: the highest loss).

    Raises:
        InvalidParameter: malformed inputs or parameters; DLR with too few classes.
    """
    check_generator(generator)
    bound = check_epsilon(epsilon)
    assert bound is not None  # optional=False: a float or an error
    epsilon = bound
    if norm not in ("linf", "l2"):
        raise InvalidParameter(f"expected norm in ('linf', 'l2'), got {norm!r}", got=norm)
    if loss not in APGD_LOSSES:
        raise InvalidParameter(f"expected loss in {APGD_LOSSES}, got {loss!r}", got=loss)
    steps = check_positive_int(steps, "steps")
    eot_draws = check_positive_int(eot_draws, "eot_draws")
    restarts = check_positive_int(restarts, "restarts")
    batch_size = check_positive_int(batch_size, "batch_size")
    rho = check_number(rho, "rho", minimum=0.0, maximum=1.0)
    momentum = check_number(momentum, "momentum", minimum=0.0, maximum=1.0)
    if step_size is None:
        step_size = 2.0 * epsilon
    else:
        step_size = check_number(step_size, "step_size", minimum=0.0, open_low=True)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    warn_if_trivial(epsilon, norm, tuple(x.shape[1:]), where="apgd")
    own = monitor is None
    if monitor is None:
        monitor = GradientMonitor(x.shape[0])
    outs = []
    for lo in range(0, x.shape[0], batch_size):
        sl = slice(lo, min(x.shape[0], lo + batch_size))
        xb, yb = x[sl], y[sl]
        tb = None if target is None else target[sl]
        index = torch.arange(sl.start, sl.stop)
        best = xb.clone()
        best_hits: torch.Tensor | None = None
        best_loss: torch.Tensor | None = None
        for _ in range(restarts):
            start = _random_start(xb, epsilon, norm, generator) if random_start and epsilon > 0 else xb.clone()
            pt, hits, f = _run(clf, xb, yb, tb, epsilon=epsilon, norm=norm, loss=loss, steps=steps,
                               eot_draws=eot_draws, rho=rho, step_size=step_size, momentum=momentum, start=start,
                               monitor=monitor, index=index)
            if best_hits is None or best_loss is None:  # the first restart sets both
                best, best_hits, best_loss = pt, hits, f
            else:
                keep = (hits > best_hits) | ((hits == best_hits) & (f > best_loss))
                best = torch.where(keep.view(-1, 1, 1, 1), pt, best)
                best_hits, best_loss = torch.where(keep, hits, best_hits), torch.where(keep, f, best_loss)
        outs.append(best.detach())
    x_adv = project(torch.cat(outs), x, epsilon, norm)
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv, x, epsilon=epsilon, norm=norm)
    if own:
        monitor.health().warn("apgd")
    return x_adv
