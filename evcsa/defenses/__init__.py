"""Classifiers the game attacks: the model wrapper, squeezers and randomized defenses.

- :class:`ModelClassifier`: any ``torch.nn.Module`` returning logits, as a classifier.
- Squeezers (Xu et al., NDSS 2018): :class:`BitDepth`, :class:`MedianSmoothing`,
  :class:`NonLocalMeans`, :class:`Compose`; :func:`squeezer_from_spec`.
- :class:`FeatureSqueezing` (with the optional joint detector; :data:`REJECTED`).
- Randomness-based defenses (seed 000 § 4): :class:`RandomizedSqueezing`,
  :class:`CroppingRescaling` (+ :func:`random_crop_rescale` for training),
  :class:`RegionBasedClassification` (+ :func:`select_radius`).
- BPDA helpers: :func:`bpda`, :func:`straight_through`.

docs/defenses.md describes each defense, its source, parameters and known attacks.
"""

from evcsa.defenses.base import REJECTED, Classifier, Defense, LogitsWarning, ModelClassifier, undefended_model
from evcsa.defenses.params import DEFENSE_PARAMS, DefenseParams
from evcsa.defenses.bpda import bpda, straight_through
from evcsa.defenses.cropping_rescaling import CroppingRescaling, crop_size_pixels, random_crop_rescale
from evcsa.defenses.feature_squeezing import FeatureSqueezing, fit_threshold
from evcsa.defenses.randomized_squeezing import RandomizedSqueezing
from evcsa.defenses.region_based import RadiusSelection, RegionBasedClassification, select_radius
from evcsa.defenses.squeezers import (
    BitDepth,
    Compose,
    MedianSmoothing,
    NonLocalMeans,
    Squeezer,
    squeezer_from_spec,
)

__all__ = [
    "DEFENSE_PARAMS",
    "REJECTED",
    "BitDepth",
    "Classifier",
    "Compose",
    "CroppingRescaling",
    "Defense",
    "DefenseParams",
    "LogitsWarning",
    "FeatureSqueezing",
    "MedianSmoothing",
    "ModelClassifier",
    "NonLocalMeans",
    "RadiusSelection",
    "RandomizedSqueezing",
    "RegionBasedClassification",
    "Squeezer",
    "bpda",
    "crop_size_pixels",
    "fit_threshold",
    "random_crop_rescale",
    "select_radius",
    "squeezer_from_spec",
    "undefended_model",
    "straight_through",
]
