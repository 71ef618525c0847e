"""Training a recipe (:class:`~evcsa.models.TrainingConfig`) into a reference model, and
the digest of the code that does it (:mod:`evcsa.models`): part of the cache key, so a
cache never hands back a model that other code trained.
"""

from __future__ import annotations

import hashlib
import inspect
import pathlib
import platform
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from evcsa.data import DATA_CODE, load_dataset
from evcsa.models.architectures import ARCHITECTURE_CODE, build_model
from evcsa.models.training import TRAINING_LOOP_CODE, TrainingConfig, evaluate, train_model


def _known_as(obj: Any) -> str:
    """The module ``obj`` was defined in before evcsa.models and evcsa.data became packages
    ("evcsa.models", "evcsa.data"): the name the digest hashes, so that the move changed no
    cache key."""
    return ".".join(obj.__module__.split(".")[:2])


def training_code_digest() -> str:
    """SHA-256 over the source of the code that turns a :class:`TrainingConfig` into
    weights — the architectures, their initialisation, the dropout, the augmentation,
    :func:`train_model`, :func:`train_reference`, :func:`build_model` and the embedded
    data's loading and split — and the torch version. Part of the cache key: a cache
    never hands back a model that other code trained under the same name and
    configuration (an edit of any of these, even of a docstring, retrains once).

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256(f"torch {torch.__version__}\n".encode())
    for obj in TRAINING_CODE:
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):  # no source (a frozen install): the bytecode instead
            code = getattr(obj, "__code__", None)
            text = f"{_known_as(obj)}.{obj.__qualname__}:" + (code.co_code.hex() if code is not None else "?")
        digest.update(f"{_known_as(obj)}.{obj.__qualname__}\n".encode())
        digest.update(text.encode())
    return digest.hexdigest()


def cache_key(config: TrainingConfig) -> str:
    """The cache key of a model trained here: the first 16 hex digits of SHA-256 over the
    configuration's :meth:`TrainingConfig.digest` and :func:`training_code_digest`."""
    return hashlib.sha256(f"{config.digest()}:{training_code_digest()}".encode()).hexdigest()[:16]


def train_reference(config: TrainingConfig, *, progress: bool | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Train a model from ``config`` on its data set's fixed training split.

    Returns:
        (module in eval mode on the CPU, info) where info holds the configuration and its
        digest, the training code's digest (:func:`training_code_digest`), the test
        accuracy on the fixed test split, the training time in seconds, the number of
        parameters, and the torch version, thread count, CPU and Python used.
    """
    train = load_dataset(config.dataset, "train")
    test = load_dataset(config.dataset, "test")
    init_seed, train_seed = np.random.SeedSequence(config.seed).generate_state(2)
    module = build_model(config.architecture, train.image_shape, train.num_classes,
                         seed=int(init_seed))
    start = time.perf_counter()
    train_model(module, train, epochs=config.epochs, batch_size=config.batch_size,
                learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                augment=config.augment, seed=int(train_seed), progress=progress)
    seconds = time.perf_counter() - start
    accuracy = evaluate(module, test)
    info = {
        "name": config.dataset,
        "source": "trained",
        "architecture": config.architecture,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "digest": config.digest(),
        "training_code_sha256": training_code_digest(),
        "cache_key": cache_key(config),
        "test_accuracy": accuracy,
        "test_set": f"{test.name}: {len(test)} images",
        "train_set": f"{train.name}: {len(train)} images",
        "parameters": sum(p.numel() for p in module.parameters()),
        "train_seconds": round(seconds, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
    }
    return module, info


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else :func:`platform.processor`."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()



#: What makes the weights besides the configuration: the code that builds, initialises and
#: trains a model and loads and splits its data (:func:`training_code_digest` hashes it).
TRAINING_CODE: tuple[Any, ...] = (*ARCHITECTURE_CODE, *TRAINING_LOOP_CODE, train_reference, *DATA_CODE)
