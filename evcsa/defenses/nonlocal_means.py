"""Non-local means "a-b-c" through OpenCV (Xu, Evans & Qi, NDSS 2018 § IV-B; see
:class:`NonLocalMeans`). OpenCV (``cv2``) is imported when a non-local means squeezer first
runs: it is heavy, and the other squeezers do not need it."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import numpy as np
import torch

from evcsa.defenses.squeezer import Squeezer, squeezer_int
from evcsa.errors import InvalidParameter

__all__ = ["NonLocalMeans"]

#: Widest strip handed to OpenCV (pixels), well inside its 16-bit-safe sizes.
_MAX_STRIP_WIDTH = 32_000


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

    search_window: int = attrs.field(validator=squeezer_int(1, odd=True))
    patch_size: int = attrs.field(validator=squeezer_int(1, odd=True))
    strength: float = attrs.field(converter=float)
    tiles_per_call: int = attrs.field(default=16, kw_only=True, validator=squeezer_int(1))
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
