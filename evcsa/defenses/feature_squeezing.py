"""Feature squeezing: classify the squeezed input, optionally with the joint detector.

Source: Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018 — squeezers § III–IV, joint detection § V (score = the maximum over
squeezers of the L1 distance between the model's softmax on the raw and on the squeezed
input; threshold chosen on legitimate samples for a target false-positive rate, 5 %).
Seed 002 § 2.5 and seed 000 § 2.2 use it as the deterministic classifier C that
Randomized Squeezing wraps.

Known attacks: He, Wei, Chen, Carlini & Song, "Adversarial Example Defense: Ensembles of
Weak Defenses are not Strong", WOOT 2017 — an adaptive attack that fools the squeezed
classifier and keeps the detection score under the threshold at once; BPDA through the
squeezers (Athalye, Carlini & Wagner, ICML 2018 § 4.1). Being deterministic, a sample
that succeeds once succeeds every time (seed 002 § 3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evcsa._validation import as_images, check_positive_int, check_probability
from evcsa.defenses.base import REJECTED, Classifier, Defense, is_randomized
from evcsa.defenses.bpda import straight_through
from evcsa.defenses.squeezer import check_channels
from evcsa.defenses.squeezers import Compose, Squeezer, squeezer_from_spec
from evcsa.errors import InvalidParameter
from evcsa.randomness import KeySource

__all__ = ["FeatureSqueezing", "fit_threshold"]

CLASSIFY_ON = ("squeezed", "raw")


def _as_squeezers(squeezers: Any) -> tuple[Squeezer, ...]:
    if isinstance(squeezers, (Squeezer, str)):
        squeezers = [squeezers]
    if not isinstance(squeezers, (list, tuple)) or not squeezers:
        raise InvalidParameter(f"expected one squeezer or a non-empty sequence of squeezers, got {squeezers!r}",
                               got=squeezers)
    return tuple(squeezer_from_spec(s) for s in squeezers)


def fit_threshold(scores: Any, fpr: float = 0.05) -> float:
    """The detection threshold for a target false-positive rate on legitimate scores.

    The reference rule (EvadeML-Zoo; Xu et al. § V-A): sort the n legitimate scores and
    take the one of rank ⌈n(1 − fpr)⌉ (1-based), the empirical (1 − fpr) quantile
    ("inverted CDF"). A sample is flagged iff its score is strictly greater, so at most
    ⌊n·fpr⌋ legitimate samples are flagged.

    Args:
        scores: n ≥ 1 finite legitimate scores (sequence, numpy or tensor).
        fpr: the false-positive rate in [0, 1); 0 gives the largest score.

    Returns:
        the threshold (float).

    Raises:
        InvalidParameter: no scores, non-finite scores, or fpr outside [0, 1).
    """
    fpr = check_probability(fpr, "fpr", open_high=True)
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    try:
        s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        raise InvalidParameter(f"expected legitimate scores as numbers, got {type(scores).__name__}") from None
    if s.size == 0 or not np.isfinite(s).all():
        raise InvalidParameter(f"expected at least one finite legitimate score, got {s.size} score(s)"
                               + (" with NaN/inf" if s.size else ""))
    n = s.size
    rank = n - math.floor(n * fpr + 1e-9)  # = ⌈n(1 − fpr)⌉ without float round-off
    return float(s[max(rank, 1) - 1])


class FeatureSqueezing(Defense):
    """Feature squeezing (Xu et al. 2018) around a classifier, with the optional joint detector.

    Classification: the input squeezed by all ``squeezers`` *composed in order*
    (``squeezers[-1](… squeezers[0](x))``, EvadeML-Zoo's sequential squeezers, e.g. bit
    depth 1 then median 2×2 on MNIST) goes to the wrapped classifier; with
    ``classify_on="raw"`` the raw input is classified instead and the squeezers only feed
    the detector (Xu et al.'s detection setting).

    Detection (optional, when ``threshold`` is set): each squeezer *separately* gives
    ``L1(softmax(x), softmax(squeezer(x)))``; the score is their maximum; a sample is
    flagged iff ``score > threshold`` and then gets :data:`REJECTED` (−1), which the game
    never counts as a success. Fit the threshold with :meth:`with_detector`.

    Deterministic unless the wrapped classifier is randomized.

    Args:
        model: the classifier to defend (a :class:`Classifier` or an ``nn.Module``
            returning logits); it must define ``predict_proba`` for the detector.
        squeezers: one :class:`Squeezer` (or spec string such as ``"median-2x2"``) or a
            non-empty sequence of them.
        classify_on: "squeezed" (default) or "raw".
        threshold: the detector's threshold on the L1 score (in [0, 2]), or None for no
            detector.
        batch_size: images per chunk (default 512).

    Raises:
        InvalidParameter: bad squeezers, ``classify_on``, threshold or batch size.
    """

    def __init__(self, model: Classifier | torch.nn.Module, squeezers: Any, *,
                 classify_on: str = "squeezed", threshold: float | None = None,
                 batch_size: int = 512) -> None:
        super().__init__(model)
        self.squeezers = _as_squeezers(squeezers)
        self.squeezer: Squeezer = self.squeezers[0] if len(self.squeezers) == 1 else Compose(self.squeezers)
        if classify_on not in CLASSIFY_ON:
            raise InvalidParameter(f"expected classify_on in {CLASSIFY_ON}, got {classify_on!r}",
                                   got=classify_on)
        self.classify_on = classify_on
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
                    or not math.isfinite(threshold):
                raise InvalidParameter(f"expected threshold as a finite number or None, got {threshold!r}",
                                       got=threshold)
            threshold = float(threshold)
        self.threshold = threshold
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.randomized = is_randomized(self.base)

    # -- construction ------------------------------------------------------------------
    def _replace(self, **changes: Any) -> FeatureSqueezing:
        params: dict[str, Any] = dict(squeezers=self.squeezers, classify_on=self.classify_on,
                                      threshold=self.threshold, batch_size=self.batch_size)
        base = changes.pop("base", self.base)
        params.update(changes)
        return FeatureSqueezing(base, **params)

    def with_detector(self, legitimate: Any, fpr: float = 0.05) -> FeatureSqueezing:
        """A copy with the joint detector, its threshold fitted on legitimate samples.

        Args:
            legitimate: float32 [n, C, H, W] in [0, 1], natural (non-adversarial) images.
            fpr: target false-positive rate in [0, 1) (default 0.05, Xu et al.).

        Returns:
            a new :class:`FeatureSqueezing` with ``threshold = fit_threshold(scores, fpr)``.

        Raises:
            InvalidParameter: malformed images or fpr.
        """
        fpr = check_probability(fpr, "fpr", open_high=True)
        return self._replace(threshold=fit_threshold(self.detection_scores(legitimate), fpr))

    def with_keys(self, keys: KeySource) -> FeatureSqueezing:
        """Self when deterministic; otherwise a copy whose wrapped classifier draws from ``keys``."""
        if not self.randomized:
            return self
        return self._replace(base=self.base.with_keys(keys))

    # -- classification ----------------------------------------------------------------
    @property
    def detector(self) -> bool:
        """Whether the joint detector is on."""
        return self.threshold is not None

    def squeeze(self, x: Any) -> torch.Tensor:
        """The classified input: x squeezed by the composed squeezers (float32 [B, C, H, W])."""
        x = as_images(x, device=self.device)
        return self.squeezer(x)

    def _classified_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.classify_on == "raw" else self.squeezer._squeeze(x)

    def detection_scores(self, x: Any) -> torch.Tensor:
        """Joint-detection scores: max over squeezers of ``‖softmax(x) − softmax(s(x))‖₁``.

        Args:
            x: float32 [B, C, H, W] in [0, 1].

        Returns:
            float32 [B] in [0, 2], on :attr:`device`.

        Raises:
            InvalidParameter: malformed ``x``.
        """
        x = as_images(x, device=self.device)
        check_channels(x, self.squeezer.channels)
        out = []
        for chunk in x.split(self.batch_size):
            p = self.base.predict_proba(chunk)
            score = torch.zeros(chunk.shape[0], device=p.device)
            for s in self.squeezers:
                q = self.base.predict_proba(s._squeeze(chunk))
                score = torch.maximum(score, (p - q).abs().sum(dim=1))
            out.append(score)
        return torch.cat(out)

    def predict_proba(self, x: Any) -> torch.Tensor:
        """The wrapped classifier's probabilities on the classified input, float32 [B, K].
        The detector does not enter here (see :meth:`predict`, :meth:`detection_scores`)."""
        x = as_images(x, device=self.device)
        check_channels(x, self.squeezer.channels)
        return torch.cat([self.base.predict_proba(self._classified_input(c)) for c in x.split(self.batch_size)])

    def predict(self, x: Any) -> torch.Tensor:
        """Labels int64 [B]; :data:`REJECTED` where the detector flags the input.

        Raises:
            InvalidParameter: malformed ``x``.
        """
        x = as_images(x, device=self.device)
        check_channels(x, self.squeezer.channels)
        labels = []
        for chunk in x.split(self.batch_size):
            y = self.base.predict(self._classified_input(chunk)).to(torch.int64)
            if self.threshold is not None:
                flagged = self.detection_scores(chunk) > self.threshold
                y = torch.where(flagged.to(y.device), torch.full_like(y, REJECTED), y)
            labels.append(y)
        return torch.cat(labels)

    # -- gradients ---------------------------------------------------------------------
    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] of the classification path with BPDA through the squeezers
        (forward squeezed, identity backward); the detector is not part of it (see
        :meth:`surrogate_detection_score`). No chunking: the caller sizes the batch."""
        x = x.to(self.device)
        if self.classify_on == "raw":
            return self.base.surrogate_logits(x)
        return self.base.surrogate_logits(self.squeezer.bpda(x))

    def surrogate_detection_score(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable detection score [B] (BPDA through each squeezer), for adaptive
        attacks that keep the score below the threshold (He et al. 2017)."""
        x = x.to(self.device)
        p = F.softmax(self.base.surrogate_logits(x), dim=1)
        scores = [(p - F.softmax(self.base.surrogate_logits(straight_through(x, s._squeeze(x.detach()))),
                                 dim=1)).abs().sum(dim=1) for s in self.squeezers]
        return torch.stack(scores).amax(dim=0)

    def __repr__(self) -> str:
        det = "" if self.threshold is None else f", threshold={self.threshold:.6g}"
        return (f"FeatureSqueezing({self.base!r}, [{', '.join(s.spec for s in self.squeezers)}], "
                f"classify_on={self.classify_on!r}{det})")
