"""Randomized Squeezing (Mix'n'Squeeze): keyed uniform noise, clip, squeeze, classify once.

Source: seed 000 § 4.3 (Randomized Squeezing, Fig. 2 ``Randomizepixels``) and seed 002
§ 4.2 (Mix'n'Squeeze, Fig. 3). For each classification a fresh key k_s is drawn; every
pixel of every channel gets r ~ U[−δ, δ] from the keyed pseudo-random generator, the
result is clipped to [0, 1] (not wrapped), squeezed (feature squeezing, Xu et al. 2018),
and the deterministic classifier is invoked once.

Here the generator is AES-128-CTR (:func:`evcsa.randomness.keyed_uniform`): one key per
``predict``/``predict_proba``/``surrogate_logits`` call from the defense's
:class:`~evcsa.randomness.KeySource`, image i of the call at its own counter offset, so
the noise of an image does not depend on how the batch is chunked and no keystream is
ever reused.

Known attacks: BPDA (Athalye, Carlini & Wagner, ICML 2018 § 4.1) through the squeezer
combined with EOT (Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial
Examples", ICML 2018) over the noise; seed 000 § 5 evaluates both.
"""

from __future__ import annotations

from typing import Any

import torch

from evcsa._validation import as_images, check_delta, check_positive_int
from evcsa.defenses.base import Classifier, Defense
from evcsa.defenses.squeezer import check_channels
from evcsa.defenses.squeezers import Squeezer, squeezer_from_spec
from evcsa.errors import InvalidParameter
from evcsa.randomness import KeySource, SystemKeys, keyed_uniform

__all__ = ["RandomizedSqueezing", "check_delta", "check_keys"]


def check_keys(keys: Any) -> KeySource:
    """``keys`` if it is a :class:`KeySource`, a fresh :class:`SystemKeys` for None."""
    if keys is None:
        return SystemKeys()
    if not isinstance(keys, KeySource):
        raise InvalidParameter(f"expected keys as an evcsa.randomness.KeySource or None, got "
                               f"{type(keys).__name__}", got=type(keys).__name__)
    return keys


class RandomizedSqueezing(Defense):
    """Randomized Squeezing (seed 000 § 4.3; Mix'n'Squeeze, seed 002 § 4.2).

    ``predict(x)``: one fresh key from ``keys``; x̃ = clip(x + r, 0, 1) with r uniform in
    [−δ, δ] per pixel and channel (:func:`~evcsa.randomness.keyed_uniform`); ŷ =
    base(squeezer(x̃)). One model invocation per image, no ensemble.

    Args:
        model: the classifier to defend (a :class:`Classifier` or ``nn.Module`` returning
            logits), usually the undefended model.
        squeezer: a :class:`Squeezer`, a spec string (``"median-3x3"``,
            ``"bit-depth-1+median-2x2"``), a sequence (composed in order), or None for
            noise only.
        delta: δ in [0, 1], the noise magnitude on the [0, 1] pixel scale (seed 000 uses
            up to 0.5 on MNIST).
        keys: the :class:`~evcsa.randomness.KeySource` (None: :class:`SystemKeys`, OS
            entropy; :class:`~evcsa.randomness.DerivedKeys` for reproducible runs).
        batch_size: images per chunk (default 512).
        wrap: False (default: clip, the paper's defense) or True: x̃ = (x + r) mod 1,
            values wrapped around instead of clipped (seed 002 § 5.2.3's wrap-around
            variant, which it says gives about 10 % legitimate accuracy at δ = 1).

    Raises:
        InvalidParameter: bad squeezer, δ, keys, batch size or wrap.
    """

    randomized = True

    def __init__(self, model: Classifier | torch.nn.Module, squeezer: Any, delta: float,
                 keys: KeySource | None = None, *, batch_size: int = 512, wrap: bool = False) -> None:
        super().__init__(model)
        if not isinstance(wrap, bool):
            raise InvalidParameter(f"expected wrap as a bool, got {wrap!r}", got=wrap)
        self.wrap = wrap
        self.squeezer: Squeezer | None = None if squeezer is None else squeezer_from_spec(squeezer)
        self.delta = check_delta(delta)
        self.keys = check_keys(keys)
        self.batch_size = check_positive_int(batch_size, "batch_size")

    def with_keys(self, keys: KeySource) -> RandomizedSqueezing:
        """A twin with the same model, squeezer, δ and batch size, drawing from ``keys``
        (the whitebox adversary's own randomness). A randomized wrapped classifier is
        twinned too, from ``keys.derive("base")``."""
        keys = check_keys(keys)
        base = self._twin_base(keys)
        return RandomizedSqueezing(base, self.squeezer, self.delta, keys, batch_size=self.batch_size,
                                   wrap=self.wrap)

    # -- the randomized preprocessing --------------------------------------------------
    def _noisy(self, x: torch.Tensor, key: bytes, first: int) -> torch.Tensor:
        noise = keyed_uniform(key, tuple(x.shape), self.delta, first_item=first).to(x.device)
        if self.wrap:
            return torch.remainder(x + noise, 1.0)
        return (x + noise).clamp_(0.0, 1.0) if not x.requires_grad else (x + noise).clamp(0.0, 1.0)

    def _check_channels(self, x: torch.Tensor) -> None:
        if self.squeezer is not None:
            check_channels(x, self.squeezer.channels)

    def _squeezed(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.squeezer is None else self.squeezer._squeeze(x)

    def randomize_pixels(self, x: Any) -> torch.Tensor:
        """Seed 000 Fig. 2 ``Randomizepixels``: clip(x + r, 0, 1) on one fresh key (no squeeze).

        Args:
            x: float32 [B, C, H, W] in [0, 1].

        Returns:
            float32 [B, C, H, W] in [0, 1] on :attr:`device`.
        """
        x = as_images(x, device=self.device)
        key = self.keys.next_key()
        return torch.cat([self._noisy(c, key, i * self.batch_size) for i, c in enumerate(x.split(self.batch_size))])

    def preprocess(self, x: Any) -> torch.Tensor:
        """What the wrapped classifier sees for one draw: squeezer(clip(x + r, 0, 1))."""
        x = as_images(x, device=self.device)
        self._check_channels(x)
        key = self.keys.next_key()
        return torch.cat([self._squeezed(self._noisy(c, key, i * self.batch_size))
                          for i, c in enumerate(x.split(self.batch_size))])

    # -- classification ----------------------------------------------------------------
    def predict(self, x: Any) -> torch.Tensor:
        """Labels int64 [B] on one fresh key (each image its own noise).

        Raises:
            InvalidParameter: malformed ``x``.
        """
        x = as_images(x, device=self.device)
        self._check_channels(x)
        key = self.keys.next_key()
        return torch.cat([self.base.predict(self._squeezed(self._noisy(c, key, i * self.batch_size)))
                          for i, c in enumerate(x.split(self.batch_size))])

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Probabilities float32 [B, K] for one draw of the noise (one fresh key)."""
        x = as_images(x, device=self.device)
        self._check_channels(x)
        key = self.keys.next_key()
        return torch.cat([self.base.predict_proba(self._squeezed(self._noisy(c, key, i * self.batch_size)))
                          for i, c in enumerate(x.split(self.batch_size))])

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits [B, K] for ONE fresh draw of the noise (a new key).

        The noise addition and the clip are the real differentiable path (``clamp``: no
        gradient to a pixel whose noisy value left [0, 1]); the squeezer is BPDA (forward
        through it, identity backward). EOT = average the loss over several calls.
        No chunking: the caller sizes the batch.
        """
        x = x.to(self.device)
        noisy = self._noisy(x, self.keys.next_key(), 0)
        squeezed = noisy if self.squeezer is None else self.squeezer.bpda(noisy)
        return self.base.surrogate_logits(squeezed)

    def __repr__(self) -> str:
        sq = None if self.squeezer is None else self.squeezer.spec
        return f"RandomizedSqueezing({self.base!r}, {sq!r}, delta={self.delta}, keys={self.keys!r}{', wrap=True' if self.wrap else ''})"
