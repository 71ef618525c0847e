"""Tiny models and a registry of every classifier, for tests/defenses."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from evcsa.defenses import (
    BitDepth,
    Classifier,
    CroppingRescaling,
    FeatureSqueezing,
    MedianSmoothing,
    ModelClassifier,
    NonLocalMeans,
    RandomizedSqueezing,
    RegionBasedClassification,
)
from evcsa.randomness import DerivedKeys

SHAPE = (1, 8, 8)
NUM_CLASSES = 4


def tiny_net(channels: int = 1, size: int = 8, seed: int = 0) -> nn.Module:
    """A fixed random linear classifier on channels×size×size images (K = 4)."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(channels * size * size, NUM_CLASSES)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.1)
    return nn.Sequential(nn.Flatten(), lin)


def images(n: int, shape: tuple[int, ...] = SHAPE, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def master_keys(label: str = "defense") -> DerivedKeys:
    return DerivedKeys(b"evcsa-test-key-0", label)


#: name → factory(model, keys) of every classifier kind, small settings.
REGISTRY: dict[str, Callable[[nn.Module, DerivedKeys], Classifier]] = {
    "model": lambda m, k: ModelClassifier(m, num_classes=NUM_CLASSES, batch_size=3),
    "fs-bitdepth-median": lambda m, k: FeatureSqueezing(m, [BitDepth(1), MedianSmoothing(2)], batch_size=3),
    "fs-nlm": lambda m, k: FeatureSqueezing(m, NonLocalMeans(5, 3, 4), batch_size=3),
    "fs-detector": lambda m, k: FeatureSqueezing(m, [BitDepth(2), MedianSmoothing(2)], threshold=0.3,
                                                 batch_size=3),
    "randomized-squeezing": lambda m, k: RandomizedSqueezing(m, MedianSmoothing(3), 0.3, keys=k, batch_size=3),
    "randomized-squeezing-nlm": lambda m, k: RandomizedSqueezing(m, "nlm-5-3-4", 0.2, keys=k, batch_size=3),
    "cropping-rescaling": lambda m, k: CroppingRescaling(m, 5, n_crops=6, keys=k, surrogate_crops=2,
                                                         batch_size=7),
    "region-based": lambda m, k: RegionBasedClassification(m, 0.3, n_samples=50, keys=k,
                                                           surrogate_samples=3, batch_size=16),
}


@pytest.fixture(params=sorted(REGISTRY))
def classifier_kind(request) -> str:
    return request.param
