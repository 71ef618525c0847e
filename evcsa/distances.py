"""Distances between natural and adversarial images on the [0, 1] pixel scale.

Seed 002 § 2.2 (and seed 000 § 3): L0 counts modified pixels, L2 is the Euclidean
distance, L∞ the largest absolute difference. For images of several channels a pixel
counts once for L0 when any of its channels changed (Carlini & Wagner's convention);
a channel "changed" when it moved by more than ``tolerance``.
"""

from __future__ import annotations

from typing import Literal

import math
import warnings

import torch

from evcsa.errors import InvalidParameter, TrivialEpsilonWarning
from evcsa.terms import DEFAULT_TOLERANCE, NORMS

__all__ = ["NORMS", "Norm", "distance", "trivial_bound", "warn_if_trivial", "within_epsilon", "DEFAULT_TOLERANCE"]

Norm = Literal["l0", "l2", "linf"]


def distance(x: torch.Tensor, x_adv: torch.Tensor, norm: str,
             *, tolerance: float = DEFAULT_TOLERANCE) -> torch.Tensor:
    """Per-image distance d(x, x′).

    Args:
        x, x_adv: float tensors [B, C, H, W] on the same device, values in [0, 1].
        norm: "l0" (pixels changed by more than ``tolerance`` in any channel),
            "l2" or "linf".
        tolerance: the change below which an L0 pixel counts as unchanged.

    Returns:
        float64 tensor [B] (on the CPU) of distances; L0 distances are whole numbers.

    Raises:
        InvalidParameter: unknown norm or mismatched shapes.
    """
    if norm not in NORMS:
        raise InvalidParameter(f"expected norm in {NORMS}, got {norm!r}", got=norm)
    if x.shape != x_adv.shape:
        raise InvalidParameter(f"expected x and x_adv of the same shape, got {tuple(x.shape)} "
                               f"and {tuple(x_adv.shape)}")
    diff = (x_adv.to(torch.float64) - x.to(torch.float64)).flatten(2).abs()  # [B, C, HW]
    if norm == "l0":
        d = (diff > tolerance).any(dim=1).sum(dim=1).to(torch.float64)
    elif norm == "l2":
        d = diff.flatten(1).pow(2).sum(dim=1).sqrt()
    else:
        d = diff.flatten(1).amax(dim=1)
    return d.cpu()


def within_epsilon(d: torch.Tensor, epsilon: float | None, norm: str,
                   *, tolerance: float = DEFAULT_TOLERANCE) -> torch.Tensor:
    """Whether each distance satisfies d ≤ ε (+ tolerance for L2 and L∞).

    Args:
        d: distances [B] as returned by :func:`distance`.
        epsilon: the bound, or None for unbounded (seed 002): every sample passes.
        norm: the norm ``d`` was measured in; L0 compares whole pixel counts exactly.
        tolerance: the float slack on the [0, 1] scale for L2 and L∞.

    Returns:
        bool tensor [B].
    """
    if epsilon is None:
        return torch.ones_like(d, dtype=torch.bool)
    slack = 0.0 if norm == "l0" else tolerance
    return d <= float(epsilon) + slack


def trivial_bound(norm: str, image_shape: tuple[int, ...]) -> float:
    """The distance at which every [0, 1] image of ``image_shape`` (C, H, W) is within ε of
    every other: 1 for L∞, √(C·H·W) for L2, C·H·W for L0 (evcsa counts L0 in pixels, so
    H·W already suffices there; C·H·W is the bound that holds for every convention).

    Raises:
        InvalidParameter: unknown norm.
    """
    if norm not in NORMS:
        raise InvalidParameter(f"expected norm in {NORMS}, got {norm!r}", got=norm)
    size = math.prod(int(d) for d in image_shape)
    return {"linf": 1.0, "l2": math.sqrt(size), "l0": float(size)}[norm]


def warn_if_trivial(epsilon: float | None, norm: str, image_shape: tuple[int, ...], *, where: str = "",
                    stacklevel: int = 3) -> bool:
    """Warn (:class:`~evcsa.errors.TrivialEpsilonWarning`) when ε ≥ :func:`trivial_bound`;
    ε = None (unbounded on purpose) never warns. Returns whether it warned."""
    if epsilon is None:
        return False
    bound = trivial_bound(norm, image_shape)
    if float(epsilon) < bound:
        return False
    shape = "×".join(str(int(d)) for d in image_shape)
    hint = " (ε = 8 meant as 8/255? pass 8 / 255)" if norm == "linf" else ""
    message = (f"{where + ': ' if where else ''}ε = {epsilon:g} ({norm}) is at or beyond the trivial bound "
               f"{bound:g} for {shape} images in [0, 1]: every image is within ε of every other, so every "
               f"attack succeeds{hint}")
    warnings.warn(TrivialEpsilonWarning(message, epsilon=float(epsilon), norm=norm, bound=bound),
                  stacklevel=stacklevel)
    return True
