"""The randomness of a run: generator seeds from the public ``seed`` and the labels of what
runs (:func:`generator_seed`; the adversaries' coins), and the defenses' key sources from the
256-bit master key and the same labels (:func:`key_source`). The two never meet: knowing the
seed (or brute-forcing it from an adversary's generator) tells nothing about a key."""

from __future__ import annotations

import hashlib
import threading

import attrs
import numpy as np

from evcsa.config import ExperimentConfig
from evcsa.randomness import DerivedKeys, KeySource, MasterKey, SystemKeys

__all__ = ["draw_master_key", "generator_seed", "key_source", "master_key", "with_master_key"]


def generator_seed(config: ExperimentConfig, *labels: str) -> int:
    """A 63-bit seed from the master seed and ``labels`` (SHA-256 → SeedSequence)."""
    words = [int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") for label in labels]
    state = np.random.SeedSequence(config.seed, spawn_key=tuple(words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


_GENERATED: dict[int, MasterKey] = {}
_LOCK = threading.Lock()


def draw_master_key() -> MasterKey:
    """A new 256-bit master key from OS entropy: the one place evcsa draws the key a run, a
    reproduction plan or an evaluation derives every defense key from (:func:`master_key`,
    :func:`evcsa.reproduction.directory.plan_key`, :func:`evcsa.evaluate`). Whoever draws it
    records it (the run's store, the plan's ``master-key`` file, the evaluation's results)."""
    return MasterKey.generate()


def master_key(config: ExperimentConfig) -> MasterKey:
    """The run's :class:`~evcsa.randomness.MasterKey`: ``config.master_key``, else one drawn
    from OS entropy on first use (one per seed in this process; :func:`with_master_key`
    writes it into the configuration so that the results record it). The one place a
    run's master key is drawn: :class:`~evcsa.experiments.store.RunStore` records it when
    it creates a run directory (through :func:`with_master_key`)."""
    if config.master_key is not None:
        return MasterKey.from_hex(config.master_key)
    with _LOCK:
        if config.seed not in _GENERATED:
            _GENERATED[config.seed] = draw_master_key()
        return _GENERATED[config.seed]


def with_master_key(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with its master key filled in (reproducible runs without one), so that
    every cell, in any process, derives its keys from the same recorded key."""
    if not config.reproducible or config.master_key is not None:
        return config
    return attrs.evolve(config, master_key=master_key(config).hex())


def key_source(config: ExperimentConfig, *labels: str) -> KeySource:
    """The defense's key source for the unit of work named by ``labels``: OS entropy, or
    (reproducible, or a master key given) DerivedKeys of the master key along the label path (length-prefixed,
    so labels containing "/" never collide)."""
    if not config.reproducible and config.master_key is None:
        return SystemKeys()
    keys = DerivedKeys(master_key(config), "experiment")
    for label in labels:
        keys = keys.derive(label)
    return keys

