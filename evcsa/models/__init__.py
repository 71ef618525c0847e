"""Reference models: the Carlini–Wagner MNIST CNN, a small CNN for 8×8 digits, their
shipped weights, their reproducible training, and an on-disk cache of models trained here.

- :class:`CarliniMNIST` — the MNIST model of Carlini & Wagner ("Towards Evaluating the
  Robustness of Neural Networks", S&P 2017; ``nn_robust_attacks/train_models.py``), the
  model the feature-squeezing evaluation (Xu et al., NDSS 2018) and Mix'n'Squeeze (seed
  002 § 5.1) attack: 3×3 conv 32, 32, max-pool 2, conv 64, 64, max-pool 2, dense 200,
  200, 10 logits, ReLU, dropout 0.5 before the last two dense layers in training;
  312,202 parameters for 28×28 grey images.
- :class:`DigitsCNN` — a small CNN (13,706 parameters) for scikit-learn's 8×8 digits: fast
  tests and docs.
- :func:`reference_model` — a reference model by name as a
  :class:`~evcsa.defenses.ModelClassifier`, from weights that ship with evcsa
  (:data:`SHIPPED`, ``evcsa/models_data/``; SHA-256 checked at load): "mnist" and
  "digits" (evcsa's own, trained once by their recipes and shipped, so every machine gets
  the same model) and "mnist-carlini-evademl" (the seeds' model: Carlini's CNN as
  EvadeML-Zoo published it, converted by :mod:`evcsa.keras_weights`).
- :func:`train_model` — reproducible training: a local ``torch.Generator`` drives the
  shuffling, the augmentation and the dropout masks; the global generators are never
  seeded or read (initialisation takes its own generator in the model constructors).
  float32 training on the CPU is reproducible on one machine, not across CPU instruction
  sets, which is why the reference weights ship instead of being trained on first use.
- the cache — models trained here (``evcsa train``, a :class:`TrainingConfig`), keyed by
  the configuration, the training code and the torch version (:func:`cache_key`), each
  beside a JSON file with the configuration and the measured test accuracy.
"""


from __future__ import annotations

import os

import torch

from evcsa.defenses.base import ModelClassifier
from evcsa.errors import DataError
from evcsa.models.architectures import ARCHITECTURES, CarliniMNIST, DigitsCNN, GeneratorDropout, build_model
from evcsa.models.cache import (cache_paths, check_cache_dir, config_for, file_sha256, is_cached, load_reference,
                                resolve_cache_dir, trained_here)
from evcsa.models.recipe import TRAINING_CODE, cache_key, train_reference, training_code_digest
from evcsa.models.shipped_weights import GEOMETRY, load_shipped
from evcsa.models.training import REFERENCE_CONFIGS, Augmentation, TrainingConfig, evaluate, train_model
from evcsa.shipped import MODELS_DATA, PAPER_MODEL, REFERENCE_MODELS, SHIPPED, ShippedWeights

__all__ = [
    "ARCHITECTURES",
    "Augmentation",
    "CarliniMNIST",
    "DigitsCNN",
    "MODELS_DATA",
    "PAPER_MODEL",
    "REFERENCE_CONFIGS",
    "REFERENCE_MODELS",
    "SHIPPED",
    "ShippedWeights",
    "TrainingConfig",
    "build_model",
    "cache_key",
    "check_cache_dir",
    "evaluate",
    "is_cached",
    "load_reference",
    "load_shipped",
    "reference_model",
    "resolve_cache_dir",
    "train_model",
    "train_reference",
    "training_code_digest",
]




def reference_model(name: str | TrainingConfig = "mnist", *,
                    cache_dir: str | os.PathLike[str] | None = None,
                    progress: bool | None = None, retrain: bool = False,
                    device: torch.device | str | None = None) -> ModelClassifier:
    """A reference model as a :class:`~evcsa.defenses.ModelClassifier`.

    By name (a key of :data:`SHIPPED`), the shipped weights: the same file, hence the same
    model and the same numbers, on every machine; loaded offline, its SHA-256 checked
    (:func:`load_shipped`); nothing is trained or cached.

    - "mnist": evcsa's Carlini–Wagner CNN trained by ``REFERENCE_CONFIGS["mnist"]`` on
      the 4,000 embedded training digits (98.6 % on the 1,000 embedded test digits);
    - "digits": evcsa's small CNN for the 8×8 digits (tests, docs);
    - "mnist-carlini-evademl" (:data:`PAPER_MODEL`): the seeds' model, Carlini's MNIST
      CNN as EvadeML-Zoo published it (Keras weights converted, :mod:`evcsa.keras_weights`;
      trained on [−0.5, 0.5], so it shifts evcsa's [0, 1] input by −0.5 itself).

    Trained here instead — with ``retrain=True`` (the recipe of ``name``) or a
    :class:`TrainingConfig` — the model is looked up in the cache and trained
    (reproducibly, see :func:`train_model`) and cached when missing. The cache holds
    ``<name>-<architecture>-<key>.pt`` (the state dict) and ``.json`` (the configuration,
    the training code's digest, the measured test accuracy, the weights' SHA-256), both
    written atomically (temp file + rename), the weights first; the key
    (:func:`cache_key`) covers the configuration, the training code and the torch
    version, so other code's model is never handed back.

    Args:
        name: a key of :data:`SHIPPED` ("mnist", "digits", "mnist-carlini-evademl"), or
            a :class:`TrainingConfig`.
        cache_dir: the cache of models trained here (default: ``$EVCSA_CACHE`` or
            ``~/.cache/evcsa``); unused for shipped weights.
        progress: show a training progress bar (None: only on a terminal).
        retrain: train ``name``'s recipe (:data:`REFERENCE_CONFIGS`) here, even when
            cached, and overwrite the cache ("mnist": about 1–2 minutes on 2 CPU cores).
        device: move the model there (default: CPU).

    Returns:
        :class:`~evcsa.defenses.ModelClassifier` (float32 [B, C, H, W] in [0, 1] →
        labels; logits float32 [B, K]) with ``info`` as an attribute: its provenance,
        recorded in every run's results — ``source`` ("shipped" or "trained"),
        ``weights_sha256``, ``weights_file``, and the recipe and environment of the
        training or the origin of converted weights.

    Raises:
        InvalidParameter: an unknown name; ``retrain`` for a model with no recipe; a cache
            directory that cannot be created or written, when the model must be trained
            (:func:`check_cache_dir`, before the training).
        DataError: shipped weights that are missing or fail their SHA-256 check.
        OSError: the disk refused the cache files.
    """
    if isinstance(name, TrainingConfig) or retrain:
        label, config = config_for(name)
        module, info = trained_here(label, config, resolve_cache_dir(cache_dir), retrain=retrain,
                                     progress=progress)
    else:
        module, info = load_shipped(name)
    if device is not None:
        module = module.to(device)
    # 256 images per forward pass: the conv activations (~22 MB for the MNIST CNN) stay below
    # glibc's mmap threshold and are reused, where 512 maps fresh pages on every pass
    # (10x the page faults, about 1.6x slower on 2 cores).
    head = list(module.get_submodule("classifier").children())[-1]
    if not isinstance(head, torch.nn.Linear):
        raise DataError(f"expected the reference model's classifier to end in a Linear layer, "
                         f"got {type(head).__name__}")
    classifier = ModelClassifier(module, num_classes=int(head.out_features), batch_size=256)
    classifier.info = info
    return classifier
