"""The parameters of each defense kind a configuration names, as attrs records.

A ``[[defenses]]`` table's keys other than ``kind`` and ``label`` are the fields of its
kind's record (:data:`DEFENSE_PARAMS`); the record checks what it can on its own (δ, the
radius, the choice of prediction) and :meth:`DefenseParams.build` makes the defense, whose
constructor checks the rest (squeezer specs, crop sizes, counts). Every error names the
field (``key``), so a configuration error names the TOML key.

==========================  ==========================================  ==============================
kind                        record                                      defense (source)
==========================  ==========================================  ==============================
``none``                    :class:`NoDefenseParams`                    the undefended model
``feature_squeezing``       :class:`FeatureSqueezingParams`             Xu et al., NDSS 2018
``randomized_squeezing``    :class:`RandomizedSqueezingParams`          seed 000 § 4.3, seed 002 § 4.2
``cropping_rescaling``      :class:`CroppingRescalingParams`            Guo et al., ICLR 2018
``region_based``            :class:`RegionBasedParams`                  Cao & Gong, ACSAC 2017
==========================  ==========================================  ==============================
"""

from __future__ import annotations

import abc
from typing import Sequence

import attrs
import torch

from evcsa._values import delta as delta_validator
from evcsa._values import one_of
from evcsa.defenses.base import Classifier
from evcsa.defenses.cropping_rescaling import CroppingRescaling
from evcsa.defenses.feature_squeezing import CLASSIFY_ON, FeatureSqueezing
from evcsa.defenses.randomized_squeezing import RandomizedSqueezing
from evcsa.defenses.region_based import RegionBasedClassification
from evcsa.defenses.squeezers import Squeezer
from evcsa.randomness import KeySource

__all__ = [
    "DEFENSE_PARAMS",
    "CroppingRescalingParams",
    "DefenseParams",
    "FeatureSqueezingParams",
    "NoDefenseParams",
    "RandomizedSqueezingParams",
    "RegionBasedParams",
]

#: A squeezer as a configuration gives it: a spec string ("bit-depth-1", "median-2x2", …)
#: or a :class:`~evcsa.defenses.Squeezer`.
SqueezerSpec = str | Squeezer


class DefenseParams(abc.ABC):
    """The parameters of one defense kind (an attrs record, keyword-only fields)."""

    @abc.abstractmethod
    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> Classifier | torch.nn.Module:
        """The defense around the undefended ``model``, its randomness from ``keys``.

        Raises:
            InvalidParameter: a value the defense's constructor refuses (``key`` or the
                message names the parameter).
        """


@attrs.frozen(kw_only=True)
class NoDefenseParams(DefenseParams):
    """``kind = "none"``: the undefended model; no parameters."""

    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> Classifier | torch.nn.Module:
        """``model`` itself."""
        return model


@attrs.frozen(kw_only=True)
class FeatureSqueezingParams(DefenseParams):
    """``kind = "feature_squeezing"``: :class:`~evcsa.defenses.FeatureSqueezing`
    (Xu et al., NDSS 2018); deterministic.

    Attributes:
        squeezers: one squeezer spec or a list of them.
        threshold: the joint detector's L1 threshold, or None (no detector).
        classify_on: "squeezed" (default) or "raw": which prediction a kept input gets.
    """

    squeezers: SqueezerSpec | Sequence[SqueezerSpec]
    threshold: float | None = None
    classify_on: str = attrs.field(default="squeezed", validator=one_of(CLASSIFY_ON))

    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> FeatureSqueezing:
        """``FeatureSqueezing(model, squeezers, threshold=…, classify_on=…)``."""
        return FeatureSqueezing(model, self.squeezers, threshold=self.threshold, classify_on=self.classify_on)


@attrs.frozen(kw_only=True)
class RandomizedSqueezingParams(DefenseParams):
    """``kind = "randomized_squeezing"``: :class:`~evcsa.defenses.RandomizedSqueezing`
    (seed 000 § 4.3; Mix'n'Squeeze, seed 002 § 4.2).

    Attributes:
        squeezer: the squeezer spec.
        delta: δ ∈ [0, 1], the noise magnitude on the pixel scale.
    """

    squeezer: SqueezerSpec
    delta: float = attrs.field(validator=delta_validator())

    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> RandomizedSqueezing:
        """``RandomizedSqueezing(model, squeezer, delta, keys)``."""
        return RandomizedSqueezing(model, self.squeezer, self.delta, keys)


@attrs.frozen(kw_only=True)
class CroppingRescalingParams(DefenseParams):
    """``kind = "cropping_rescaling"``: :class:`~evcsa.defenses.CroppingRescaling`
    (Guo et al., ICLR 2018).

    Attributes:
        crop_size: pixels (an int) or a fraction of the image side in (0, 1] (a float).
        n_crops: crops averaged per classification (default 30).
    """

    crop_size: int | float
    n_crops: int = 30

    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> CroppingRescaling:
        """``CroppingRescaling(model, crop_size, n_crops, keys)``."""
        return CroppingRescaling(model, self.crop_size, self.n_crops, keys)


@attrs.frozen(kw_only=True)
class RegionBasedParams(DefenseParams):
    """``kind = "region_based"``: :class:`~evcsa.defenses.RegionBasedClassification`
    (Cao & Gong, ACSAC 2017).

    Attributes:
        radius: r ∈ [0, 1], the hypercube's half-side on the pixel scale.
        n_samples: samples in the majority vote (default 10,000).
    """

    radius: float = attrs.field(validator=delta_validator())
    n_samples: int = 10_000

    def build(self, model: Classifier | torch.nn.Module, keys: KeySource | None) -> RegionBasedClassification:
        """``RegionBasedClassification(model, radius, n_samples, keys)``."""
        return RegionBasedClassification(model, self.radius, self.n_samples, keys)


#: Defense kind → its parameter record (the keys a ``[[defenses]]`` table of that kind takes).
DEFENSE_PARAMS: dict[str, type[DefenseParams]] = {
    "none": NoDefenseParams,
    "feature_squeezing": FeatureSqueezingParams,
    "randomized_squeezing": RandomizedSqueezingParams,
    "cropping_rescaling": CroppingRescalingParams,
    "region_based": RegionBasedParams,
}
