"""Feature squeezers: bit-depth reduction, median smoothing, non-local means.

Source: Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep
Neural Networks", NDSS 2018 — § III (colour bit depth), § IV-A (median smoothing),
§ IV-B (non-local means); seed 002 § 2.5. Each squeezer equals the reference
implementation (EvadeML-Zoo ``utils/squeeze.py``) value for value:

- :class:`BitDepth` ``(b)``: ``rint(x · (2^b − 1)) / (2^b − 1)`` in float32, no clipping.
- :class:`MedianSmoothing` ``(k)``: scipy ``median_filter(size=(1, 1, k_h, k_w),
  mode="reflect")``: the window of pixel (i, j) covers rows ``i − k_h//2 … i − k_h//2 +
  k_h − 1`` (same for columns), borders repeat the edge pixel (``d c b a | a b c d``), the
  output is the element of rank ``(k_h·k_w)//2`` of the sorted window (for 2×2 the upper
  middle, no averaging). Channels and images never mix.
- :class:`NonLocalMeans` ``(a, b, c)`` ("a-b-c"): OpenCV ``fastNlMeansDenoising`` (one
  channel) or ``fastNlMeansDenoisingColored`` (three channels, passed in the tensor's
  channel order as OpenCV's B, G, R — as the reference does) with search window a,
  patch b, strength h = hColor = c on the 0…255 scale, on ``uint8 = clip(rint(255·x))``;
  the result is ``uint8 / 255`` in float32.

Every squeezer is a callable ``squeezer(x) -> x`` on float32 NCHW batches (any device;
the result is on the input's device) and has :meth:`Squeezer.bpda`, the same forward pass
with identity backward (BPDA, Athalye et al. 2018 § 4.1), for whitebox attacks.

Known attacks on feature squeezing: He, Wei, Chen, Carlini & Song, "Adversarial Example
Defense: Ensembles of Weak Defenses are not Strong", WOOT 2017 (adaptive attack on the
joint detector); BPDA through the squeezers (Athalye et al. 2018).
"""

from __future__ import annotations

import abc
import functools
import math
import re
from typing import Any, Sequence

import attrs
import numpy as np
import torch

from evcsa._validation import describe
from evcsa.defenses.bpda import straight_through
from evcsa.errors import InvalidParameter

__all__ = [
    "BitDepth",
    "Compose",
    "MedianSmoothing",
    "NonLocalMeans",
    "Squeezer",
    "squeezer_from_spec",
]

#: Images per internal chunk of the median filter (cache-friendly: chunks of 128–512 measured fastest).
_MEDIAN_CHUNK = 256
#: Images per chunk of the bit-depth reduction (cache-friendly, no large temporaries).
_BIT_DEPTH_CHUNK = 256
#: Widest strip handed to OpenCV (pixels), well inside its 16-bit-safe sizes.
_MAX_STRIP_WIDTH = 32_000


def _check_batch(x: Any, name: str = "x", channels: tuple[int, ...] | None = None) -> torch.Tensor:
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
    _check_channels(x, channels, name)
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    # One fast reduction; only when it is not finite (NaN/inf, or a finite overflow) the
    # exact check runs.
    if x.numel() and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise InvalidParameter(f"expected {name} with finite values, got NaN or infinite value(s)")
    return x


def _check_channels(x: torch.Tensor, channels: tuple[int, ...] | None, name: str = "x") -> None:
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
        x = _check_batch(x, channels=self.channels)
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
        checked = _check_batch(x.detach(), channels=self.channels)
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


def _positive_int(minimum: int = 1, *, odd: bool = False, maximum: int | None = None):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        bad = isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum) or (odd and value % 2 == 0)
        if bad:
            what = "an odd integer" if odd else "an integer"
            bound = f"in [{minimum}, {maximum}]" if maximum is not None else f"≥ {minimum}"
            raise InvalidParameter(f"expected {attribute.name} as {what} {bound}, got {value!r}",
                                   got=value)
    return check


@attrs.frozen
class BitDepth(Squeezer):
    """Colour bit-depth reduction to ``bits`` bits: ``rint(x · (2^b − 1)) / (2^b − 1)``.

    Xu et al. 2018 § III; the EvadeML-Zoo reference ``reduce_precision``: 2^b levels
    {0, 1/(2^b − 1), …, 1}, round half to even, no clipping. The multiply and the divide
    are float32 (the reference's dtype): float32 0.78571427 · 7 is exactly 5.5 and rounds
    to 6, while a float64 multiply would give 5. Guo et al.'s ``round(x · 2^b)/2^b``
    and Athalye et al.'s truncation are different defenses and not offered here.

    Args:
        bits: b, an integer in [1, 16]; b = 1 maps x ≤ 0.5 to 0 and x > 0.5 to 1.

    Raises:
        InvalidParameter: ``bits`` outside [1, 16] or not an integer.
    """

    bits: int = attrs.field(validator=_positive_int(1, maximum=16))

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        levels = float(2 ** self.bits - 1)
        if x.shape[0] <= _BIT_DEPTH_CHUNK:
            return torch.round(x * levels) / levels
        # In chunks, in place in the output: no full-size temporaries whose fresh pages
        # fault on every call (10,000 MNIST images: 14-65 ms in one piece, 9-15 ms so).
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], _BIT_DEPTH_CHUNK):
            o = out[start:start + _BIT_DEPTH_CHUNK]
            torch.mul(x[start:start + _BIT_DEPTH_CHUNK], levels, out=o)
            o.round_().div_(levels)
        return out

    @property
    def spec(self) -> str:
        return f"bit-depth-{self.bits}"


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


def _reflect101_index(n: int, border: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT_101 (``c b | a b c | b a``) indices, repeated reflection."""
    idx = np.arange(-border, n + border)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * n - 2
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """clip(rint(255·x)) as uint8, NHWC numpy (clip → round → cast, never cast first: a bare cast wraps −0.004 to 255)."""
    u8 = torch.round(x.detach().to("cpu", torch.float32) * 255.0).clamp_(0, 255).to(torch.uint8)
    return u8.permute(0, 2, 3, 1).contiguous().numpy()


@attrs.frozen
class NonLocalMeans(Squeezer):
    """Non-local means "a-b-c" through OpenCV (Xu et al. 2018 § IV-B; on uint8, as OpenCV requires).

    1-channel images go to ``cv2.fastNlMeansDenoising(u8, None, h=c,
    templateWindowSize=b, searchWindowSize=a)``, 3-channel ones to
    ``cv2.fastNlMeansDenoisingColored(u8, None, h=c, hColor=c, templateWindowSize=b,
    searchWindowSize=a)`` with the channels in the tensor's order (OpenCV reads them as
    B, G, R, exactly as the reference passes RGB arrays). ``u8 = clip(rint(255·x))``; the
    output is ``u8 / 255`` in float32, on the input's device.

    Speed: up to ``tiles_per_call`` images are laid side by side in one strip, each with its
    own left and right BORDER_REFLECT_101 border of a//2 + b//2 pixels — exactly the border
    OpenCV adds to a lone image — while OpenCV's own top and bottom border of the strip is
    the lone image's too. Every output pixel therefore sees the same neighbourhood as in a
    per-image call, and OpenCV's integer arithmetic gives an identical result, with one call
    (one fixed cost) per strip instead of one per image.

    Args:
        search_window: a, odd ≥ 1 (pixels).
        patch_size: b, odd ≥ 1 (pixels).
        strength: c = h > 0 on the 0…255 scale.
        tiles_per_call: images per OpenCV call (default 16: narrow strips keep OpenCV's
            per-row buffers in cache, strips of 256 run up to 1.5x slower; 1 = the
            per-image loop).

    Raises:
        InvalidParameter: even or non-positive window sizes, strength ≤ 0, bad tiles.
    """

    search_window: int = attrs.field(validator=_positive_int(1, odd=True))
    patch_size: int = attrs.field(validator=_positive_int(1, odd=True))
    strength: float = attrs.field(converter=float)
    tiles_per_call: int = attrs.field(default=16, kw_only=True, validator=_positive_int(1))
    channels = (1, 3)

    @strength.validator
    def _check_strength(self, attribute: attrs.Attribute, value: float) -> None:
        if not (math.isfinite(value) and value > 0):
            raise InvalidParameter(f"expected strength as a number > 0 (0…255 scale), got {value!r}",
                                   got=value)

    @classmethod
    def from_string(cls, text: str, **kwargs: Any) -> NonLocalMeans:
        """Read Xu et al.'s notation "a-b-c" (e.g. "11-3-4": search window 11, patch 3,
        strength 4).

        Raises:
            InvalidParameter: anything but three dash-separated numbers (a, b integers).
        """
        m = re.fullmatch(r"\s*(\d+)-(\d+)-(\d+(?:\.\d+)?)\s*", text) if isinstance(text, str) else None
        if m is None:
            raise InvalidParameter(f"expected non-local means as 'a-b-c' (e.g. '11-3-4'), got {text!r}",
                                   got=text)
        return cls(int(m.group(1)), int(m.group(2)), float(m.group(3)), **kwargs)

    @property
    def border(self) -> int:
        """OpenCV's own border around an image: a//2 + b//2 pixels."""
        return self.search_window // 2 + self.patch_size // 2

    def _denoise(self, img: np.ndarray) -> np.ndarray:
        import cv2

        a, b, c = self.search_window, self.patch_size, self.strength
        if img.ndim == 2 or img.shape[-1] == 1:
            return cv2.fastNlMeansDenoising(np.ascontiguousarray(img.reshape(img.shape[:2])), None,
                                            h=c, templateWindowSize=b, searchWindowSize=a)
        return cv2.fastNlMeansDenoisingColored(img, None, h=c, hColor=c, templateWindowSize=b,
                                               searchWindowSize=a)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        u8 = _to_uint8(x)  # [B, H, W, C]
        n, h, w, ch = u8.shape
        out = np.empty((n, h, w), np.uint8) if ch == 1 else np.empty_like(u8)
        if self.tiles_per_call == 1:
            for i in range(n):
                out[i] = self._denoise(u8[i])
        else:
            # One strip per OpenCV call: the images side by side, each with its own left and
            # right border; OpenCV's own top/bottom border of the strip is the lone image's.
            pad = self.border
            cols = _reflect101_index(w, pad)
            tw = w + 2 * pad
            per_strip = max(1, min(self.tiles_per_call, _MAX_STRIP_WIDTH // tw))
            for start in range(0, n, per_strip):
                tiles = u8[start:start + per_strip][:, :, cols]  # [t, h, tw, C]
                t = tiles.shape[0]
                strip = np.ascontiguousarray(tiles.transpose(1, 0, 2, 3).reshape(h, t * tw, ch))
                den = self._denoise(strip).reshape(h, t, tw, -1).transpose(1, 0, 2, 3)
                core = den[:, :, pad:pad + w]
                out[start:start + t] = core[..., 0] if ch == 1 else core
        res = torch.from_numpy(out)
        res = res.unsqueeze(1) if ch == 1 else res.permute(0, 3, 1, 2)
        return (res.to(torch.float32) / 255.0).contiguous().to(x.device)

    @property
    def spec(self) -> str:
        c = int(self.strength) if float(self.strength).is_integer() else self.strength
        return f"nlm-{self.search_window}-{self.patch_size}-{c}"


@attrs.frozen
class Compose(Squeezer):
    """Squeezers applied one after the other: ``squeezers[-1](…squeezers[0](x))``.

    EvadeML-Zoo's sequential squeezers (e.g. bit depth 1 then median 2×2). Its
    :meth:`bpda` is the identity backward through the whole chain.

    Raises:
        InvalidParameter: an empty sequence or an item that is not a :class:`Squeezer`.
    """

    squeezers: tuple[Squeezer, ...] = attrs.field(converter=tuple)

    @squeezers.validator
    def _check(self, attribute: attrs.Attribute, value: tuple) -> None:
        if not value or not all(isinstance(s, Squeezer) for s in value):
            raise InvalidParameter(f"expected a non-empty sequence of squeezers, got {value!r}", got=value)

    @property
    def channels(self) -> tuple[int, ...] | None:  # type: ignore[override]
        allowed: set[int] | None = None
        for s in self.squeezers:
            if s.channels is not None:
                allowed = set(s.channels) if allowed is None else allowed & set(s.channels)
        return None if allowed is None else tuple(sorted(allowed))

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.squeezers:
            x = s._squeeze(x)
        return x

    @property
    def spec(self) -> str:
        return "+".join(s.spec for s in self.squeezers)


_SPEC = re.compile(r"(bit-depth|median|nlm)-(.+)")


def squeezer_from_spec(spec: str | Squeezer | Sequence[Any]) -> Squeezer:
    """A squeezer from its spec string (the inverse of ``Squeezer.spec``).

    Accepted: ``"bit-depth-5"``, ``"median-2x2"`` (or ``"median-3"``),
    ``"nlm-11-3-4"``, and several joined by ``+`` (a :class:`Compose`, applied left to
    right). A :class:`Squeezer` is returned as is; a sequence becomes a :class:`Compose`.

    Raises:
        InvalidParameter: an unknown or malformed spec.
    """
    if isinstance(spec, Squeezer):
        return spec
    if isinstance(spec, (list, tuple)):
        parts = [squeezer_from_spec(s) for s in spec]
        return parts[0] if len(parts) == 1 else Compose(parts)
    if not isinstance(spec, str):
        raise InvalidParameter(f"expected a squeezer spec string, got {spec!r}", got=spec)
    if "+" in spec:
        return Compose([squeezer_from_spec(s) for s in spec.split("+")])
    m = _SPEC.fullmatch(spec.strip().lower())
    if m is None:
        raise InvalidParameter(f"expected a squeezer spec like 'bit-depth-5', 'median-2x2' or "
                               f"'nlm-11-3-4', got {spec!r}", got=spec)
    kind, arg = m.groups()
    if kind == "bit-depth" and arg.isdigit():
        return BitDepth(int(arg))
    if kind == "median":
        dims = arg.split("x")
        if all(d.isdigit() for d in dims) and len(dims) in (1, 2):
            return MedianSmoothing(tuple(int(d) for d in dims) if len(dims) == 2 else int(dims[0]))
    if kind == "nlm":
        return NonLocalMeans.from_string(arg)
    raise InvalidParameter(f"expected a squeezer spec like 'bit-depth-5', 'median-2x2' or "
                           f"'nlm-11-3-4', got {spec!r}", got=spec)
