"""The squeezer interface and the input checks every squeezer shares (Xu, Evans & Qi,
NDSS 2018; :mod:`evcsa.defenses.squeezers` lists the squeezers and their sources).

- :class:`Squeezer`: a deterministic ``x -> x`` on float32 NCHW batches, with
  :meth:`Squeezer.bpda` (identity backward, Athalye et al. 2018 § 4.1).
- :func:`check_batch`, :func:`check_channels`: a squeezer's input checks (defenses run
  :func:`check_channels` before the unchecked ``_squeeze``).
- :func:`squeezer_int`: the attrs validator of a squeezer's integer parameters.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs
import numpy as np
import torch

from evcsa._validation import describe
from evcsa._values import Validator
from evcsa.defenses.bpda import straight_through
from evcsa.errors import InvalidParameter

__all__ = ["Squeezer", "check_batch", "check_channels", "squeezer_int"]


def check_batch(x: Any, name: str = "x", channels: tuple[int, ...] | None = None) -> torch.Tensor:
    """A float32 NCHW tensor with finite values (range not checked: squeezers are also run
    on noisy or out-of-range intermediates), or InvalidParameter."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidParameter(f"expected {name} as floating images, got {describe(x)}")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not isinstance(x, torch.Tensor):
        raise InvalidParameter(f"expected {name} as a torch tensor or numpy array, got {describe(x)}")
    if not torch.is_floating_point(x):
        raise InvalidParameter(f"expected {name} as floating images, got {describe(x)}")
    if x.dim() != 4:
        raise InvalidParameter(f"expected {name} of shape [B, C, H, W], got {describe(x)}")
    check_channels(x, channels, name)
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    # One fast reduction; only when it is not finite (NaN/inf, or a finite overflow) the
    # exact check runs.
    if x.numel() and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise InvalidParameter(f"expected {name} with finite values, got NaN or infinite value(s)")
    return x


def check_channels(x: torch.Tensor, channels: tuple[int, ...] | None, name: str = "x") -> None:
    """InvalidParameter unless x [B, C, H, W] has a channel count in ``channels`` (None: any).
    Defenses call it on their input before squeezing with the unchecked ``_squeeze``."""
    if channels is not None and x.shape[1] not in channels:
        raise InvalidParameter(f"expected {name} with {' or '.join(map(str, channels))} channel(s), "
                               f"got {x.shape[1]}", got=int(x.shape[1]))


class Squeezer(abc.ABC):
    """A deterministic input transformation ``x -> x`` on float32 NCHW batches.

    Subclasses implement :meth:`_squeeze` (no input checks). Calling the squeezer checks
    the input (tensor or float numpy array of rank 4, finite values; the value range is
    not checked) and returns a float32 tensor of the same shape on the input's device.
    """

    #: The channel counts the squeezer accepts (None: any).
    channels: tuple[int, ...] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze a batch.

        Args:
            x: float [B, C, H, W] (torch or numpy), finite.

        Returns:
            float32 tensor [B, C, H, W] on ``x``'s device, no gradient.

        Raises:
            InvalidParameter: not a rank-4 floating tensor, NaN/inf, or an unsupported
                channel count.
        """
        x = check_batch(x, channels=self.channels)
        with torch.no_grad():
            return self._squeeze(x.detach())

    def bpda(self, x: torch.Tensor) -> torch.Tensor:
        """The squeezer with identity backward (BPDA): value ``self(x)``, gradient of x.

        Args:
            x: float32 [B, C, H, W] tensor, possibly requiring grad.

        Returns:
            a tensor equal to ``self(x)`` whose gradient w.r.t. ``x`` is the identity.

        Raises:
            InvalidParameter: as :meth:`__call__`.
        """
        if not isinstance(x, torch.Tensor):
            raise InvalidParameter(f"expected x as a torch tensor for bpda, got {describe(x)}")
        checked = check_batch(x.detach(), channels=self.channels)
        with torch.no_grad():
            y = self._squeeze(checked)
        return straight_through(x, y)

    @abc.abstractmethod
    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze a checked float32 batch (no gradient needed)."""

    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """The squeezer as a string :func:`squeezer_from_spec` reads back."""


def squeezer_int(minimum: int = 1, *, odd: bool = False, maximum: int | None = None) -> Validator:
    """An attrs validator: an integer ≥ ``minimum`` (≤ ``maximum``; odd when asked)."""
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        bad = isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum) or (odd and value % 2 == 0)
        if bad:
            what = "an odd integer" if odd else "an integer"
            bound = f"in [{minimum}, {maximum}]" if maximum is not None else f"≥ {minimum}"
            raise InvalidParameter(f"expected {attribute.name} as {what} {bound}, got {value!r}",
                                   got=value)
    return check
