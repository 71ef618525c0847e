"""A frozen copy of evcsa.attacks.carlini_wagner and jsma before issue 11 (commit 2e8ab14),
with the input_gradient of that commit: the oracle of the bit-for-bit regression test of
the reference schedule (tests/attacks/test_cw_schedule.py). Not part of the package."""
# ruff: noqa
from __future__ import annotations


import math
from typing import Any

import torch

from evcsa.attacks._common import check_generator, check_number, prepare_inputs, to_uint8_grid
from evcsa.attacks.gradients import GradientMonitor
from evcsa.errors import InvalidParameter

__all__ = ["jsma"]

#: Elements of one block of pair scores (float32): bounds the memory of the pair search.
_PAIR_BLOCK = 1 << 23


def _best_pairs(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each row: argmax over p ≠ q in the domain of (a_p + a_q)·(−(b_p + b_q)) with
    a_p + a_q > 0 and b_p + b_q < 0. Returns (p, q, found) as [n] tensors. Scores are
    computed in blocks of at most ``_PAIR_BLOCK`` elements (several samples at once when
    n_features² fits, else row blocks of one sample)."""
    n, f = a.shape
    a = torch.where(domain, a, torch.full_like(a, float("nan")))  # NaN compares False
    eye = torch.eye(f, dtype=torch.bool, device=a.device)
    best_score = torch.full((n,), float("-inf"), device=a.device)
    best_flat = torch.zeros(n, dtype=torch.int64, device=a.device)

    def scores(ai: torch.Tensor, bi: torch.Tensor, rows: slice) -> torch.Tensor:
        sa = ai[:, rows, None] + ai[:, None, :]
        sb = bi[:, rows, None] + bi[:, None, :]
        ok = (sa > 0) & (sb < 0) & ~eye[rows]
        return torch.where(ok, sa * (-sb), torch.full_like(sa, float("-inf"))).flatten(1)

    if f * f <= _PAIR_BLOCK:
        chunk = max(1, _PAIR_BLOCK // (f * f))
        for s in range(0, n, chunk):
            sc = scores(a[s:s + chunk], b[s:s + chunk], slice(None))
            val, j = sc.max(dim=1)
            best_score[s:s + chunk], best_flat[s:s + chunk] = val, j
    else:
        rows = max(1, _PAIR_BLOCK // f)
        for i in range(n):
            for start in range(0, f, rows):
                sc = scores(a[i:i + 1], b[i:i + 1], slice(start, min(f, start + rows)))
                val, j = sc.max(dim=1)
                if val[0] > best_score[i]:
                    best_score[i] = val[0]
                    best_flat[i] = j[0] + start * f
    found = torch.isfinite(best_score) & (best_score > 0)
    return best_flat // f, best_flat % f, found


def jsma(model: Any, x: Any, y: Any, *, target: Any = None, theta: float = 1.0, gamma: float = 0.1,
         round_to_grid: bool = False, generator: torch.Generator | None = None,
         monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Jacobian-based Saliency Map Attack (Papernot et al., EuroS&P 2016), pairs of features.

    Args:
        model: Classifier (gradients via ``surrogate_logits``) or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] (the reference use: next or least likely) or None
            (the untargeted variant described in the module docstring).
        theta: the change applied to each chosen feature, θ ≠ 0 in [−1, 1] (default 1).
        gamma: the largest fraction of features changed, in (0, 1] (default 0.1), with
            ⌊γ·n/2⌋ ≥ 1 (at least one iteration).
        round_to_grid: round x′ to the uint8 grid.
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health of α (the label's logit gradient).

    Returns:
        float32 [B, C, H, W] in [0, 1]; at most ⌊γ·n/2⌋·2 features differ from x.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    check_generator(generator)
    theta = check_number(theta, "theta", minimum=-1.0, maximum=1.0)
    if theta == 0.0:
        raise InvalidParameter("expected theta ≠ 0 (the change applied to a feature), got 0")
    gamma = check_number(gamma, "gamma", minimum=0.0, maximum=1.0, open_low=True)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    own = monitor is None
    monitor = GradientMonitor(x.shape[0]) if own else monitor
    targeted = target is not None
    labels = target if targeted else y
    bsz = x.shape[0]
    n_features = x[0].numel()
    max_iters = int(math.floor(n_features * gamma / 2.0))
    if max_iters < 1:
        raise InvalidParameter(f"expected gamma · C·H·W / 2 ≥ 1 (at least one iteration), got gamma = {gamma} "
                               f"for {n_features} features", got=gamma)
    increase = theta > 0
    direction = (1.0 if increase else -1.0) * (1.0 if targeted else -1.0)
    flat = x.flatten(1).clone()
    domain = flat < 1.0 if increase else flat > 0.0
    active = torch.ones(bsz, dtype=torch.bool, device=x.device)
    for _ in range(max_iters):
        active &= domain.sum(dim=1) > 1
        idx = active.nonzero().flatten()
        if idx.numel() == 0:
            break
        xi = flat[idx].view(-1, *x.shape[1:]).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            z = clf.surrogate_logits(xi)
            pred = z.detach().argmax(dim=1)
            reached = pred == labels[idx] if targeted else pred != labels[idx]
            lab = z.gather(1, labels[idx, None]).sum()
            g_lab = g_all = None
            if z.requires_grad:
                (g_lab,) = torch.autograd.grad(lab, xi, retain_graph=True, allow_unused=True)
                (g_all,) = torch.autograd.grad(z.sum(), xi, allow_unused=True)
        missing = g_lab is None or g_all is None
        g_lab = torch.zeros_like(xi) if g_lab is None else g_lab.detach()
        g_all = torch.zeros_like(xi) if g_all is None else g_all.detach()
        finite = torch.isfinite(g_lab) & torch.isfinite(g_all)
        nonfinite = ~finite.flatten(1).all(dim=1)
        g_lab = torch.where(finite, g_lab, torch.zeros_like(g_lab))
        g_all = torch.where(finite, g_all, torch.zeros_like(g_all))
        monitor.observe(g_lab, index=idx, missing=missing, nonfinite=nonfinite)
        alpha = direction * g_lab.flatten(1)
        beta = direction * (g_all - g_lab).flatten(1)
        work = ~reached
        active[idx[reached]] = False
        if not bool(work.any()):
            continue
        wi = idx[work]
        p, q, found = _best_pairs(alpha[work], beta[work], domain[wi])
        active[wi[~found]] = False
        if not bool(found.any()):
            continue
        fi = wi[found]
        p, q = p[found], q[found]
        rows = flat[fi]
        ar = torch.arange(fi.numel(), device=x.device)
        rows[ar, p] = (rows[ar, p] + theta).clamp(0.0, 1.0)
        rows[ar, q] = (rows[ar, q] + theta).clamp(0.0, 1.0)
        flat[fi] = rows
        dom = domain[fi]
        dom[ar, p] = False
        dom[ar, q] = False
        domain[fi] = dom
    x_adv = flat.view_as(x)
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv)
    if own:
        monitor.health().warn("jsma")
    return x_adv
