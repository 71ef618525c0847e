"""JSMA: the Jacobian-based Saliency Map Attack, changing a few features at a time.

Source: Papernot, McDaniel, Jha, Fredrikson, Celik & Swami, "The Limitations of Deep
Learning in Adversarial Settings", IEEE EuroS&P 2016, § III (Algorithms 2 and 3: the
saliency map over pairs of features); seed 002 § 2.3. The pair rule and the defaults
follow cleverhans' ``SaliencyMapMethod`` as the feature-squeezing evaluation runs it
(Xu et al., NDSS 2018; EvadeML-Zoo): θ = 1 (each chosen feature is raised by θ and
clipped to [0, 1]), γ = 0.1 (at most ⌊γ·n/2⌋ iterations of two features each, n = C·H·W),
the Jacobian of the logits.

Per iteration and sample: α = ∂z_t/∂x, β = Σ_{j≠t} ∂z_j/∂x; among pairs (p, q), p ≠ q,
of features still in the search domain (not yet changed, and below 1 when θ > 0), pick
the one maximising (α_p + α_q)·|β_p + β_q| subject to α_p + α_q > 0 and β_p + β_q < 0
(signs reversed when θ < 0). A sample stops when it reaches the target, when no pair
qualifies, or when the iteration budget is spent — on its own, independent of the batch.

Untargeted use (``target=None``, not in the original paper): the same rule with the true
class's logit pushed down (α of the true class must fall, the others' rise), stopping
when the label is no longer y.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evcsa.attacks._common import check_generator, check_number, prepare_inputs, to_uint8_grid
from evcsa.attacks.gradients import GradientMonitor
from evcsa.errors import InvalidParameter

__all__ = ["jsma"]

#: Elements of one block of pair scores (float32): bounds the memory of the pair search.
_PAIR_BLOCK = 1 << 22
#: Rows p of the pair matrix scored per block.
_PAIR_ROWS = 64


def _best_pairs(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each row: argmax over p < q in the domain of (a_p + a_q)·(−(b_p + b_q)) with
    a_p + a_q > 0 and b_p + b_q < 0. Returns (p, q, found) as [n] tensors.

    The score is symmetric in (p, q), so only p < q is scored: row blocks of
    ``_PAIR_ROWS`` values of p against q ≥ the block's first p, in place in two reused
    buffers (entries that do not qualify score 0, and a best score of 0 means no pair).
    Ties go to the smallest p, then the smallest q — the first maximum of the full
    matrix in row-major order, as before."""
    n, f = a.shape
    a = torch.where(domain, a, torch.full_like(a, float("-inf")))  # a pair outside scores 0
    best_score = torch.zeros(n, device=a.device)
    best_p = torch.zeros(n, dtype=torch.int64, device=a.device)
    best_q = torch.zeros(n, dtype=torch.int64, device=a.device)
    rows = min(_PAIR_ROWS, f)
    chunk = max(1, _PAIR_BLOCK // (rows * f))
    buf_a = torch.empty(min(n, chunk) * rows * f, device=a.device)
    buf_b = torch.empty_like(buf_a)
    col = torch.arange(f, device=a.device)
    for s in range(0, n, chunk):
        ai, bi = a[s:s + chunk], b[s:s + chunk]
        m = ai.shape[0]
        for r0 in range(0, f - 1, rows):
            r1 = min(f - 1, r0 + rows)
            width = f - r0
            shape = (m, r1 - r0, width)
            size = m * (r1 - r0) * width
            sa = torch.add(ai[:, r0:r1, None], ai[:, None, r0:], out=buf_a[:size].view(shape))
            sb = torch.sub(bi[:, r0:r1, None].neg(), bi[:, None, r0:], out=buf_b[:size].view(shape))
            sa.clamp_(min=0.0)
            sb.clamp_(min=0.0)
            sa.mul_(sb)
            lower = col[r0:, None].T <= col[r0:r1, None]  # q <= p
            sa.masked_fill_(lower, 0.0)
            val, j = sa.view(m, -1).max(dim=1)
            better = val > best_score[s:s + m]
            if bool(better.any()):
                best_score[s:s + m] = torch.where(better, val, best_score[s:s + m])
                best_p[s:s + m] = torch.where(better, r0 + j // width, best_p[s:s + m])
                best_q[s:s + m] = torch.where(better, r0 + j % width, best_q[s:s + m])
    found = best_score > 0
    return best_p, best_q, found


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
    if monitor is None:
        monitor = GradientMonitor(x.shape[0])
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
