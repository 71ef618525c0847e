"""BPDA: Backward Pass Differentiable Approximation with the identity.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML
2018, § 4.1: a non-differentiable preprocessing step g with g(x) ≈ x is run as is in the
forward pass and replaced by the identity in the backward pass, so that the gradient of
f(g(x)) is taken as ∇f evaluated at g(x). Rounding and medians have zero or useless
gradients; an attack that trusts autograd through them silently does nothing and the
defense looks strong (BPDA: Athalye et al., ICML 2018, § 4.1).

The forward value is exactly g(x) (bit for bit): the output is ``g(x) + (x − x.detach())``,
whose second term is exactly zero in the forward pass and has identity Jacobian.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["bpda", "straight_through"]


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` in the forward pass, with the gradient of ``x`` in the backward pass.

    Args:
        x: the input of a non-differentiable step (any shape, requires_grad or not).
        y: that step's output, same shape as ``x`` (its own graph is ignored).

    Returns:
        a tensor equal to ``y`` value for value, whose gradient w.r.t. ``x`` is the
        identity. When ``x`` needs no gradient, ``y`` detached.
    """
    y = y.detach()
    if not x.requires_grad:
        return y
    return y + (x - x.detach())


def bpda(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap ``fn`` so that its forward pass is ``fn`` and its backward pass is the identity.

    ``fn`` runs on the detached input (it may leave torch: OpenCV, numpy). Composition
    works as expected: in ``g2(bpda(g1)(x))`` the gradient of g2 is taken at g1(x), not at
    x (e.g. g1 = 1-bit squeeze, g2(u) = u², x = 0.8 → gradient 2·g1(x) = 2.0).

    Args:
        fn: maps a tensor to a tensor of the same shape.

    Returns:
        the BPDA version of ``fn``.
    """

    def approximated(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = fn(x.detach())
        return straight_through(x, y)

    approximated.__name__ = f"bpda_{getattr(fn, '__name__', type(fn).__name__)}"
    approximated.__doc__ = f"BPDA version of {fn!r}: forward through it, identity backward."
    return approximated
