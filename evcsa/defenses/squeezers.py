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

import re
from typing import Any, Iterable, Sequence

import attrs
import torch

from evcsa.defenses.median import MedianSmoothing
from evcsa.defenses.nonlocal_means import NonLocalMeans
from evcsa.defenses.squeezer import Squeezer, squeezer_int
from evcsa.errors import InvalidParameter

__all__ = [
    "BitDepth",
    "Compose",
    "MedianSmoothing",
    "NonLocalMeans",
    "Squeezer",
    "squeezer_from_spec",
]

#: Images per chunk of the bit-depth reduction (cache-friendly, no large temporaries).
_BIT_DEPTH_CHUNK = 256


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

    bits: int = attrs.field(validator=squeezer_int(1, maximum=16))

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


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class Compose(Squeezer):
    """Squeezers applied one after the other: ``squeezers[-1](…squeezers[0](x))``.

    EvadeML-Zoo's sequential squeezers (e.g. bit depth 1 then median 2×2). Its
    :meth:`bpda` is the identity backward through the whole chain.

    Raises:
        InvalidParameter: an empty sequence or an item that is not a :class:`Squeezer`.
    """

    squeezers: tuple[Squeezer, ...] = attrs.field(converter=_as_tuple)

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
