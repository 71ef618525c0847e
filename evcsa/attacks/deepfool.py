"""DeepFool: the smallest L2 step to the nearest linearised decision boundary, repeated.

Source: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to
fool deep neural networks", CVPR 2016, Algorithm 2 (multi-class, L2); seed 002 § 2.3.
Defaults are the reference code's (``overshoot`` 0.02, ``max_iter`` 50, the 10 most
likely classes as candidates), as the feature-squeezing evaluation runs it (EvadeML-Zoo
``deepfool_wrapper.py``). The feature-squeezing evaluation omits DeepFool on MNIST
(seed 002 Table 1 "-"); it is here for the other data sets.

Batched with a per-sample stop: a sample leaves the loop once its label is not y any
more, so its result does not depend on the rest of the batch. Every iterate is clipped
to [0, 1] before the model sees it (the reference code does not clip).
"""

from __future__ import annotations

from typing import Any

import torch

from evcsa._validation import check_positive_int
from evcsa.attacks._common import check_generator, check_number, prepare_inputs, to_uint8_grid
from evcsa.attacks.gradients import GradientMonitor
from evcsa.errors import InvalidParameter

__all__ = ["deepfool"]


def deepfool(model: Any, x: Any, y: Any, *, target: Any = None, overshoot: float = 0.02, max_iter: int = 50,
             candidates: int | None = 10, round_to_grid: bool = False,
             generator: torch.Generator | None = None, monitor: GradientMonitor | None = None) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al., CVPR 2016, Algorithm 2), untargeted, L2.

    While the model labels x′ as y (at most ``max_iter`` times): linearise the logits at
    x′, and for each candidate class k ≠ y compute wₖ = ∇zₖ − ∇z_y, fₖ = zₖ − z_y; take
    l = argminₖ |fₖ|/‖wₖ‖₂ and add rᵢ = (|f_l|/‖w_l‖ + 1e-4)·w_l/‖w_l‖ to the total
    perturbation r; x′ = clip(x + (1 + overshoot)·r, 0, 1). Candidates are the
    ``candidates`` classes with the highest logits on x (y excluded).

    Args:
        model: Classifier (gradients via ``surrogate_logits``) or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B]; the attack moves x until the label is no longer y.
        target: must be None (DeepFool is untargeted).
        overshoot: the final step's scale excess (default 0.02).
        max_iter: iterations per sample (default 50).
        candidates: how many of the most likely classes to consider (None: all).
        round_to_grid: round x′ to the uint8 grid.
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health (one evaluation per iteration; a sample
            whose difference gradients wₖ all vanish is recorded as a zero gradient).

    Returns:
        float32 [B, C, H, W] in [0, 1]; x for samples already not labelled y.

    Raises:
        InvalidParameter: a target is given, or malformed inputs or parameters.
    """
    if target is not None:
        raise InvalidParameter("expected target=None: DeepFool is an untargeted attack, got a target")
    check_generator(generator)
    overshoot = check_number(overshoot, "overshoot", minimum=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    if candidates is not None:
        candidates = check_positive_int(candidates, "candidates", minimum=2)
    clf, x, y, _ = prepare_inputs(model, x, y, None)
    own = monitor is None
    if monitor is None:
        monitor = GradientMonitor(x.shape[0])
    b = x.shape[0]
    dev = x.device
    with torch.no_grad():
        z0 = clf.surrogate_logits(x).detach()
    k_all = z0.shape[1]
    order = z0.clone()
    order.scatter_(1, y[:, None], float("-inf"))
    n_cand = k_all - 1 if candidates is None else min(candidates - 1, k_all - 1)
    cand = order.topk(n_cand, dim=1).indices  # [B, n_cand], y excluded
    r_tot = torch.zeros_like(x)
    x_adv = x.clone()
    active = torch.ones(b, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        idx = active.nonzero().flatten()
        if idx.numel() == 0:
            break
        xi = x_adv[idx].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            z = clf.surrogate_logits(xi)
            still = z.detach().argmax(dim=1) == y[idx]
            if not bool(still.any()):
                active[idx] = False
                break
            cls = torch.cat([y[idx, None], cand[idx]], dim=1)  # [b, 1 + n_cand]
            zc = z.gather(1, cls)
            grad_list: list[torch.Tensor] = []
            missing = not zc.requires_grad
            for k in range(cls.shape[1]):
                g = None
                if zc.requires_grad:
                    (g,) = torch.autograd.grad(zc[:, k].sum(), xi, retain_graph=k + 1 < cls.shape[1],
                                               allow_unused=True)
                missing = missing or g is None
                grad_list.append(torch.zeros_like(xi) if g is None else g)
        grads = torch.stack(grad_list, dim=1).detach()  # [b, 1 + n_cand, C, H, W]
        finite = torch.isfinite(grads)
        nonfinite = ~finite.flatten(1).all(dim=1)
        grads = torch.where(finite, grads, torch.zeros_like(grads))
        w = grads[:, 1:] - grads[:, :1]
        f = (zc[:, 1:] - zc[:, :1]).detach()
        w_norm = w.flatten(2).norm(dim=2)
        monitor.observe(w, index=idx, missing=missing, nonfinite=nonfinite)
        pert = f.abs() / w_norm.clamp(min=1e-12)
        pert = torch.where(w_norm > 0, pert, torch.full_like(pert, float("inf")))
        best = pert.argmin(dim=1)
        ar = torch.arange(idx.numel(), device=dev)
        p_best = pert[ar, best]
        w_best = w[ar, best]
        n_best = w_norm[ar, best]
        usable = torch.isfinite(p_best) & still
        scale = torch.where(usable, (p_best + 1e-4) / n_best.clamp(min=1e-12), torch.zeros_like(p_best))
        r_i = scale.view(-1, *([1] * (x.dim() - 1))) * w_best
        r_tot[idx] = r_tot[idx] + r_i
        x_adv[idx] = torch.where(still.view(-1, 1, 1, 1),
                                 (x[idx] + (1.0 + overshoot) * r_tot[idx]).clamp(0.0, 1.0), x_adv[idx])
        # samples already not labelled y, or stuck with no usable direction, stop
        active[idx[~usable]] = False
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv)
    if own:
        monitor.health().warn("deepfool")
    return x_adv
