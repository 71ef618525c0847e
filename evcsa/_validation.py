"""Input checks shared by the game, the defenses and the attacks: tensors here, plain
values in :mod:`evcsa._values` (torch-free; re-exported here under their old names).

Images are NCHW ``float32`` tensors with values in [0, 1]. numpy arrays and other float
dtypes are converted; integer images, NaN/inf, values outside [0, 1] and wrong ranks are
rejected with an error of the caller's choosing (``InvalidParameter`` by default,
``InvalidQuery`` from the oracles).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from evcsa._values import (
    Validator,
    check_choice,
    check_delta,
    check_epsilon,
    check_number,
    check_positive_int,
    check_probability,
    check_targeting,
    delta,
    epsilon,
    int_at_least,
    is_bool,
    non_empty_str,
    one_of,
    probability,
    targeting,
)
from evcsa.errors import EvcsaError, InvalidParameter

__all__ = [
    "Validator",
    "as_images",
    "as_labels",
    "check_choice",
    "check_delta",
    "check_epsilon",
    "check_number",
    "check_positive_int",
    "check_probability",
    "check_targeting",
    "delta",
    "describe",
    "epsilon",
    "int_at_least",
    "is_bool",
    "non_empty_str",
    "one_of",
    "probability",
    "targeting",
]


def describe(x: Any) -> str:
    """A short description of ``x`` for error messages: type, dtype, shape."""
    if isinstance(x, torch.Tensor):
        return f"torch tensor of dtype {x.dtype} and shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"numpy array of dtype {x.dtype} and shape {x.shape}"
    return f"{type(x).__name__} {x!r}"[:120]


def as_images(
    x: Any,
    *,
    name: str = "x",
    shape: tuple[int, ...] | None = None,
    allow_single: bool = False,
    device: torch.device | str | None = None,
    error: type[EvcsaError] = InvalidParameter,
    atol: float = 0.0,
) -> torch.Tensor:
    """Check and convert a batch of images to an NCHW float32 tensor in [0, 1].

    Args:
        x: torch tensor or numpy array, shape [B, C, H, W] (or [C, H, W] when
            ``allow_single``), floating dtype, values in [0, 1].
        name: the argument's name, used in error messages.
        shape: the expected (C, H, W) of one image, or None for any.
        allow_single: accept one image [C, H, W] and return it as a batch of one.
        device: move the result there (None: keep the input's device; numpy → CPU).
        error: the exception class raised on bad input.
        atol: values within ``atol`` outside [0, 1] are accepted (not clipped).

    Returns:
        float32 tensor [B, C, H, W]; the input itself when nothing needed converting.

    Raises:
        error: wrong type or rank, integer or complex dtype, a tensor without data ('meta'
            device), empty batch, NaN/inf, values outside [0, 1], or an image shape other
            than ``shape``.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise error(f"expected {name} as floating images in [0, 1], got {describe(x)}",
                        got=str(x.dtype))
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    elif not isinstance(x, torch.Tensor):
        raise error(f"expected {name} as a torch tensor or numpy array, got {describe(x)}",
                    got=type(x).__name__)
    _check_has_data(x, name, error)
    if not torch.is_floating_point(x):
        raise error(f"expected {name} as floating images in [0, 1], got {describe(x)}",
                    got=str(x.dtype))
    if x.dim() == 3 and allow_single:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        want = "[B, C, H, W] or [C, H, W]" if allow_single else "[B, C, H, W]"
        raise error(f"expected {name} of shape {want}, got {describe(x)}", got=tuple(x.shape))
    if x.shape[0] == 0:
        raise error(f"expected {name} with at least one image, got an empty batch",
                    got=tuple(x.shape))
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise error(f"expected {name} images of shape {tuple(shape)}, got {tuple(x.shape[1:])}",
                    expected=tuple(shape), got=tuple(x.shape[1:]))
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    if device is not None:
        x = x.to(device)
    x = x.detach()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise error(f"expected {name} with finite values, got {bad} NaN or infinite value(s)",
                    non_finite=bad)
    lo, hi = float(x.min()), float(x.max())
    if lo < -atol or hi > 1.0 + atol:
        raise error(f"expected {name} values in [0, 1], got values in [{lo:.6g}, {hi:.6g}]",
                    min=lo, max=hi)
    return x


def as_labels(
    y: Any,
    *,
    name: str = "labels",
    length: int | None = None,
    num_classes: int | None = None,
    error: type[EvcsaError] = InvalidParameter,
) -> torch.Tensor:
    """Check and convert labels to a 1-D int64 tensor (on the CPU).

    Args:
        y: integer sequence, numpy array or tensor of class indices.
        name: the argument's name, used in error messages.
        length: the expected number of labels, or None.
        num_classes: labels must lie in [0, num_classes), or None for any non-negative.
        error: the exception class raised on bad input.

    Raises:
        error: not integers, not 1-D, wrong length, a label out of range, or a tensor
            without data ('meta' device).
    """
    if isinstance(y, torch.Tensor):
        _check_has_data(y, name, error)
        t = y.detach().cpu()
    else:
        arr = np.asarray(y)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise error(f"expected {name} as integer class indices, got {describe(arr)}")
        t = torch.from_numpy(arr.astype(np.int64))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise error(f"expected {name} as integer class indices, got {describe(t)}")
    t = t.to(torch.int64)
    if t.dim() != 1:
        raise error(f"expected {name} as a 1-D sequence, got {describe(t)}")
    if length is not None and t.numel() != length:
        raise error(f"expected {length} {name}, got {t.numel()}", expected=length, got=t.numel())
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        upper = f"{num_classes - 1}" if num_classes is not None else "∞"
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            raise error(f"expected {name} in [0, {upper}], got values in [{lo}, {hi}]",
                        min=lo, max=hi)
    return t


def _check_has_data(x: torch.Tensor, name: str, error: type[EvcsaError]) -> None:
    """Raise ``error`` for a tensor without values (torch's 'meta' device: shape only)."""
    if x.device.type == "meta":
        raise error(f"expected {name} with data, got a tensor on the 'meta' device (shape only)",
                    got="meta")
