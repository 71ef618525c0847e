"""The randomness of a run, derived from the master seed and the labels of what runs: a
generator seed (:func:`_seed`) and the defense's key source (:func:`_keys`)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from evcsa.config import ExperimentConfig


def _seed(config: ExperimentConfig, *labels: str) -> int:
    """A 63-bit seed from the master seed and ``labels`` (SHA-256 → SeedSequence)."""
    words = [int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") for label in labels]
    state = np.random.SeedSequence(config.seed, spawn_key=tuple(words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _keys(config: ExperimentConfig, *labels: str) -> Any:
    from evcsa.randomness import DerivedKeys, SystemKeys

    if not config.reproducible:
        return SystemKeys()
    return DerivedKeys.from_seed(config.seed, label="/".join(labels))
