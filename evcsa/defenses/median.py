"""Median smoothing (Xu, Evans & Qi, NDSS 2018 § IV-A), scipy ``median_filter(size=(1, 1,
k_h, k_w), mode="reflect")`` semantics per channel, vectorized torch on any device (see
:class:`MedianSmoothing`)."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import numpy as np
import torch

from evcsa.defenses.squeezer import Squeezer
from evcsa.errors import InvalidParameter

__all__ = ["MedianSmoothing"]

#: Images per internal chunk of the median filter (cache-friendly: chunks of 128–512 measured fastest).
_MEDIAN_CHUNK = 256


def _as_window(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidParameter(f"expected size as an integer or (height, width), got {value!r}",
                                   got=value)
        h, w = value
    else:
        h = w = value
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidParameter(f"expected size as positive integers (height, width), got {value!r}",
                                   got=value)
    return int(h), int(w)


def _symmetric_pad(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """Pad ``dim`` with scipy's "reflect" (``d c b a | a b c d``, numpy's "symmetric")."""
    n = x.shape[dim]
    if before == after == 0:
        return x
    if before <= n and after <= n:
        parts = [x.narrow(dim, 0, before).flip(dim), x, x.narrow(dim, n - after, after).flip(dim)]
        return torch.cat([p for p in parts if p.shape[dim]], dim=dim)
    idx = np.arange(-before, n + after)  # repeated reflection for windows larger than the image
    idx = np.mod(idx, 2 * n)
    idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
    return x.index_select(dim, torch.as_tensor(idx, dtype=torch.long, device=x.device))


@functools.lru_cache(maxsize=64)
def _selection_network(n: int, rank: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchange steps (i, j, keep_min, keep_max) selecting the element of ``rank``
    among ``n`` wires: Batcher's odd-even merge sort on the next power of two (steps that
    touch wires ≥ n dropped: those would hold +inf and never move), then pruned backwards to
    the steps the output wire depends on. After the steps, wire ``rank`` holds the answer."""
    size = 1 << max(0, (n - 1).bit_length())
    steps: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    a, b = i + j, i + j + k
                    if (a // (2 * p)) == (b // (2 * p)) and b < n:
                        steps.append((a, b))
            k //= 2
        p *= 2
    needed = {rank}
    kept: list[tuple[int, int, bool, bool]] = []
    for a, b in reversed(steps):
        keep_min, keep_max = a in needed, b in needed
        if keep_min or keep_max:
            kept.append((a, b, keep_min, keep_max))
            needed.update((a, b))
    return tuple(reversed(kept))


def _median_generic(p: torch.Tensor, kh: int, kw: int, h: int, w: int, out: torch.Tensor) -> None:
    wires = [p[..., r:r + h, c:c + w] for r in range(kh) for c in range(kw)]
    rank = (kh * kw) // 2
    for a, b, keep_min, keep_max in _selection_network(kh * kw, rank):
        lo = torch.minimum(wires[a], wires[b]) if keep_min else None
        hi = torch.maximum(wires[a], wires[b]) if keep_max else None
        if lo is not None:
            wires[a] = lo
        if hi is not None:
            wires[b] = hi
    out.copy_(wires[rank])


def _median3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, out: torch.Tensor | None = None
             ) -> torch.Tensor:
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    return torch.maximum(lo, torch.minimum(hi, c), out=out) if out is not None \
        else torch.maximum(lo, torch.minimum(hi, c))


def _flat_result(p: torch.Tensor, kh: int, kw: int, h: int, w: int, out: torch.Tensor, fn) -> None:
    """Run ``fn(flat, row, length, res)`` on the padded chunk ``p`` seen as one flat array:
    a shift by a row is an offset of ``row`` elements, by a column an offset of 1, so every
    min/max runs on long contiguous 1-D slices (no per-row loop inside the kernels). The
    value at flat position q = image·S + i·row + j is the window with top-left (i, j);
    positions whose window straddles a row end or an image are computed and dropped."""
    row = w + kw - 1
    flat = p.reshape(-1)
    length = flat.numel() - (kh - 1) * row - (kw - 1)
    res = torch.empty(flat.numel(), dtype=p.dtype, device=p.device)
    fn(flat, row, length, res[:length])
    out.copy_(res.view(p.shape)[..., :h, :w])


def _median_2x2_flat(f: torch.Tensor, row: int, length: int, res: torch.Tensor) -> None:
    # Rank 2 of 4 (the upper middle) = the second largest: with each vertical pair sorted,
    # max(min of the highs, max of the lows).
    m = length + 1
    r0, r1 = f[0:m], f[row:row + m]
    lo, hi = torch.minimum(r0, r1), torch.maximum(r0, r1)
    n = length
    torch.maximum(torch.minimum(hi[0:n], hi[1:n + 1]), torch.maximum(lo[0:n], lo[1:n + 1]), out=res)


def _median_3x3(p: torch.Tensor, h: int, w: int, out: torch.Tensor) -> None:
    # Sort each vertical triple once (shared by the three windows that contain it), then
    # median = med3(max of the lows, med3 of the middles, min of the highs): exact for 3×3.
    # (The flat form of _flat_result measured slower here: its temporaries are larger.)
    r0, r1, r2 = p[..., 0:h, :], p[..., 1:h + 1, :], p[..., 2:h + 2, :]
    lo01, hi01 = torch.minimum(r0, r1), torch.maximum(r0, r1)
    lo = torch.minimum(lo01, r2)
    hi = torch.maximum(hi01, r2)
    mid = torch.maximum(lo01, torch.minimum(hi01, r2))
    cols = [slice(0, w), slice(1, w + 1), slice(2, w + 2)]
    max_lo = torch.maximum(torch.maximum(lo[..., cols[0]], lo[..., cols[1]]), lo[..., cols[2]])
    min_hi = torch.minimum(torch.minimum(hi[..., cols[0]], hi[..., cols[1]]), hi[..., cols[2]])
    med_mid = _median3(mid[..., cols[0]], mid[..., cols[1]], mid[..., cols[2]])
    _median3(max_lo, med_mid, min_hi, out=out)


def _median_2x2(p: torch.Tensor, h: int, w: int, out: torch.Tensor) -> None:
    _flat_result(p, 2, 2, h, w, out, _median_2x2_flat)


@attrs.frozen
class MedianSmoothing(Squeezer):
    """Median smoothing with a ``size`` window, scipy ``median_filter(mode="reflect")``
    semantics per channel (Xu et al. 2018 § IV-A).

    Vectorized torch on any device: the input is padded by index (scipy's "reflect"
    repeats the edge pixel; torch's own "reflect" does not and is not used), then a
    min/max selection network runs on shifted views (dedicated networks for 2×2 and 3×3,
    a pruned Batcher network for other sizes), in chunks of 256 images.

    Args:
        size: k (a k×k window) or (k_h, k_w); positive integers. Xu et al. use 2×2 and 3×3.

    Raises:
        InvalidParameter: a size that is not one or two positive integers.
    """

    size: tuple[int, int] = attrs.field(converter=_as_window)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.size
        if kh == kw == 1:
            return x.clone()
        b, c, h, w = x.shape
        x = x.contiguous()
        out = torch.empty_like(x)
        for start in range(0, b, _MEDIAN_CHUNK):
            chunk = x[start:start + _MEDIAN_CHUNK]
            p = _symmetric_pad(_symmetric_pad(chunk, 2, kh // 2, kh - 1 - kh // 2),
                               3, kw // 2, kw - 1 - kw // 2)
            target = out[start:start + _MEDIAN_CHUNK]
            if (kh, kw) == (3, 3):
                _median_3x3(p, h, w, target)
            elif (kh, kw) == (2, 2):
                _median_2x2(p, h, w, target)
            else:
                _median_generic(p, kh, kw, h, w, target)
        return out

    @property
    def spec(self) -> str:
        return f"median-{self.size[0]}x{self.size[1]}"
