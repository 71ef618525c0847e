"""Cropping-Rescaling: random crops rescaled to full size, softmax averaged.

Source: Guo, Rana, Cissé & van der Maaten, "Countering Adversarial Images using Input
Transformations", ICLR 2018, § 3.1 (image cropping-rescaling; the model is trained on
cropped and rescaled images, and at test time the predictions over 30 random crops are
averaged); seed 000 § 4.1. The setting Athalye et al. evaluate: 30 crops of 90/299 of the
side, bilinear back to full size, mean of softmax (as Athalye et al., ICML 2018, evaluate Guo et al. 2018).

Known attacks: Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018, § 5.2.2 (input transformations): EOT over the crop distribution
(Athalye, Engstrom, Ilyas & Kwok, ICML 2018) — cropping and bilinear rescaling are
differentiable — reduces the defense's accuracy to near zero at small ε.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from evcsa._validation import as_images, check_positive_int
from evcsa.defenses.base import Classifier, Defense
from evcsa.defenses.randomized_squeezing import check_keys
from evcsa.errors import InvalidParameter
from evcsa.randomness import INTEGER_NONCE, KeySource, keystream_words, words_to_integers

__all__ = ["CroppingRescaling", "crop_size_pixels", "random_crop_rescale"]


def crop_size_pixels(crop_size: Any, height: int, width: int) -> tuple[int, int]:
    """The crop's (height, width) in pixels for an image of ``height`` × ``width``.

    Args:
        crop_size: an int (pixels, the same for both sides) or a float in (0, 1] (a
            fraction of each side, rounded to the nearest pixel, at least 1).

    Raises:
        InvalidParameter: a crop larger than the image, ≤ 0, or of another type.
    """
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, float)):
        raise InvalidParameter(f"expected crop_size as pixels (int) or a fraction in (0, 1] (float), "
                               f"got {crop_size!r}", got=crop_size)
    if isinstance(crop_size, float):
        if not (0.0 < crop_size <= 1.0):
            raise InvalidParameter(f"expected crop_size as a fraction in (0, 1], got {crop_size}", got=crop_size)
        return max(1, round(crop_size * height)), max(1, round(crop_size * width))
    if not 1 <= crop_size <= min(height, width):
        raise InvalidParameter(f"expected crop_size in [1, {min(height, width)}] pixels for "
                               f"{height}×{width} images, got {crop_size}", got=crop_size)
    return crop_size, crop_size


def _crops(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, ch: int, cw: int) -> torch.Tensor:
    """Crops [B·n, C, H, W] rescaled bilinearly; tops/lefts int64 [B, n]. Differentiable in x."""
    b, c, h, w = x.shape
    n = tops.shape[1]
    rows = (tops.unsqueeze(-1) + torch.arange(ch, device=x.device))  # [B, n, ch]
    cols = (lefts.unsqueeze(-1) + torch.arange(cw, device=x.device))  # [B, n, cw]
    img = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    patches = x[img, :, rows.unsqueeze(-1), cols.unsqueeze(-2)]  # [B, n, ch, cw, C]
    patches = patches.permute(0, 1, 4, 2, 3).reshape(b * n, c, ch, cw)
    if (ch, cw) == (h, w):
        return patches
    return F.interpolate(patches, size=(h, w), mode="bilinear", align_corners=False)


def random_crop_rescale(x: Any, crop_size: Any, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The training augmentation of Guo et al. (§ 3.1): one random crop per image, rescaled
    bilinearly (align_corners=False) to the full size.

    Use it on training batches so the model learns the transformation the defense applies
    at test time. Crop corners are uniform over all integer positions.

    Args:
        x: float32 [B, C, H, W] in [0, 1] (any device).
        crop_size: pixels (int) or fraction of the side (float in (0, 1]).
        generator: a CPU ``torch.Generator`` for the crop positions (training randomness;
            None uses a fresh OS-seeded generator, never the global RNG).

    Returns:
        float32 [B, C, H, W] in [0, 1] on ``x``'s device.

    Raises:
        InvalidParameter: malformed ``x``, bad ``crop_size`` or ``generator``.
    """
    x = as_images(x)
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    elif not isinstance(generator, torch.Generator):
        raise InvalidParameter(f"expected generator as a torch.Generator or None, got {type(generator).__name__}")
    b, _, h, w = x.shape
    ch, cw = crop_size_pixels(crop_size, h, w)
    tops = torch.randint(0, h - ch + 1, (b, 1), generator=generator).to(x.device)
    lefts = torch.randint(0, w - cw + 1, (b, 1), generator=generator).to(x.device)
    return _crops(x, tops, lefts, ch, cw).clamp_(0.0, 1.0)


class CroppingRescaling(Defense):
    """Cropping-Rescaling (Guo et al. 2018 § 3.1; seed 000 § 4.1).

    ``predict_proba(x)``: one fresh key; for each image ``n_crops`` crops of ``crop_size``
    at integer positions uniform over the image (from AES-CTR, multiply-shift mapping,
    :func:`evcsa.randomness.words_to_integers`; image i at its own counter offset), each
    rescaled bilinearly (``align_corners=False``) to full size; the wrapped classifier's
    softmax averaged over the crops. ``predict`` = argmax (ties to the lowest label).

    One surrogate draw (:meth:`surrogate_logits`) is ``surrogate_crops`` fresh crops per
    image (default 1): the log of their mean softmax. An EOT attacker averages over many
    such draws; ``surrogate_crops = n_crops`` reproduces the full defense per draw.

    Args:
        model: the classifier (usually trained with :func:`random_crop_rescale`).
        crop_size: pixels (int) or a fraction of the side (float in (0, 1]); Athalye et
            al. use 90/299.
        n_crops: crops per classification (default 30).
        keys: the :class:`~evcsa.randomness.KeySource` (None: OS entropy).
        surrogate_crops: crops per surrogate draw (default 1).
        batch_size: crops per forward pass (default 512).

    Raises:
        InvalidParameter: bad crop size (checked against the first batch's images), counts
            or keys.
    """

    randomized = True

    def __init__(self, model: Classifier | torch.nn.Module, crop_size: int | float, n_crops: int = 30,
                 keys: KeySource | None = None, *, surrogate_crops: int = 1, batch_size: int = 512) -> None:
        super().__init__(model)
        crop_size_pixels(crop_size, 10**9, 10**9)  # type and sign now; the bound per batch
        self.crop_size = crop_size
        self.n_crops = check_positive_int(n_crops, "n_crops")
        self.keys = check_keys(keys)
        self.surrogate_crops = check_positive_int(surrogate_crops, "surrogate_crops")
        self.batch_size = check_positive_int(batch_size, "batch_size")

    def with_keys(self, keys: KeySource) -> CroppingRescaling:
        """A twin with the same parameters drawing from ``keys``."""
        keys = check_keys(keys)
        base = self._twin_base(keys)
        return CroppingRescaling(base, self.crop_size, self.n_crops, keys,
                                 surrogate_crops=self.surrogate_crops, batch_size=self.batch_size)

    def _positions(self, key: bytes, first: int, b: int, n: int, h: int, w: int
                   ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        ch, cw = crop_size_pixels(self.crop_size, h, w)
        words = keystream_words(key, b, 2 * n, nonce=INTEGER_NONCE, first_item=first).reshape(b, n, 2)
        tops = words_to_integers(words[..., 0].copy(), h - ch + 1)
        lefts = words_to_integers(words[..., 1].copy(), w - cw + 1)
        return tops, lefts, ch, cw

    def crops(self, x: Any) -> torch.Tensor:
        """The rescaled crops of one draw (one fresh key), float32 [B, n_crops, C, H, W]."""
        x = as_images(x, device=self.device)
        key = self.keys.next_key()
        tops, lefts, ch, cw = self._positions(key, 0, x.shape[0], self.n_crops, *x.shape[2:])
        out = _crops(x, tops.to(x.device), lefts.to(x.device), ch, cw)
        return out.view(x.shape[0], self.n_crops, *x.shape[1:])

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Mean softmax over the crops, float32 [B, K], one fresh key per call.

        Raises:
            InvalidParameter: malformed ``x`` or a crop larger than the images.
        """
        x = as_images(x, device=self.device)
        key = self.keys.next_key()
        per_chunk = max(1, self.batch_size // self.n_crops)
        out = []
        for start in range(0, x.shape[0], per_chunk):
            chunk = x[start:start + per_chunk]
            tops, lefts, ch, cw = self._positions(key, start, chunk.shape[0], self.n_crops, *x.shape[2:])
            crops = _crops(chunk, tops.to(x.device), lefts.to(x.device), ch, cw)
            probs = self.base.predict_proba(crops.clamp_(0.0, 1.0))
            out.append(probs.view(chunk.shape[0], self.n_crops, -1).mean(dim=1))
        return torch.cat(out)

    def predict(self, x: Any) -> torch.Tensor:
        """argmax of :meth:`predict_proba`, int64 [B] (ties to the lowest label)."""
        return self.predict_proba(x).argmax(dim=1)

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """One draw: log of the mean softmax over ``surrogate_crops`` fresh crops per image,
        float32 [B, K]; differentiable through cropping and bilinear rescaling. The values
        are log-probabilities (valid logits: their softmax is the mean softmax)."""
        x = x.to(self.device)
        b, _, h, w = x.shape
        tops, lefts, ch, cw = self._positions(self.keys.next_key(), 0, b, self.surrogate_crops, h, w)
        crops = _crops(x, tops.to(x.device), lefts.to(x.device), ch, cw).clamp(0.0, 1.0)
        logp = F.log_softmax(self.base.surrogate_logits(crops), dim=1).view(b, self.surrogate_crops, -1)
        return torch.logsumexp(logp, dim=1) - math.log(self.surrogate_crops)

    def __repr__(self) -> str:
        return (f"CroppingRescaling({self.base!r}, crop_size={self.crop_size}, n_crops={self.n_crops}, "
                f"keys={self.keys!r})")
