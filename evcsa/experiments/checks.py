"""Checking a configuration before any work: :func:`check_config`."""

from __future__ import annotations

from typing import Any

from evcsa.config import ExperimentConfig
from evcsa.errors import ConfigError, EvcsaError
from evcsa.experiments.registry import _sweep_attack, build_adversary, build_defense, squeezers_of

__all__ = ["check_config"]


def _stand_in_model() -> Any:
    """A tiny model for checking parameters without loading the real one."""
    import torch

    from evcsa.defenses.base import ModelClassifier

    return ModelClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)), num_classes=10)


def check_config(config: ExperimentConfig) -> None:
    """Check everything that can be checked before any work: every defense and adversary
    builds, each adversary accepts the game's rules (its knowledge level, norm, ε), N fits
    in X_D, the data set holds ``data.samples``, the sweep's attack exists, the data file
    and weights exist.

    Raises:
        ConfigError: the first problem, naming the key.
    """
    from evcsa.randomness import DerivedKeys

    stand_in = _stand_in_model()
    keys = DerivedKeys.from_seed(0)
    for i, spec in enumerate(config.defenses):
        build_defense(spec, stand_in, keys, where=f"defenses[{i}]", base_dir=config.base_dir)
    for i, spec in enumerate(config.adversaries):
        adversary = build_adversary(spec, where=f"adversaries[{i}]", base_dir=config.base_dir)
        try:
            adversary.check_rules(config.game)
        except EvcsaError as exc:
            raise ConfigError(f"adversaries[{i}] ({spec.name}) in this [game]: {exc.message}",
                              key=f"adversaries[{i}]") from exc
    game = config.game
    if game.freshness == "source" and game.n_chosen > config.data.samples:
        raise ConfigError(f"game.n_chosen: expected N ≤ data.samples = {config.data.samples} under freshness "
                          f"'source' (one chosen sample per natural sample), got {game.n_chosen}",
                          key="game.n_chosen")
    if config.figures.enabled:
        _sweep_attack(config)
        try:
            squeezers_of(config)
        except EvcsaError as exc:  # pragma: no cover - build_defense caught it already
            raise ConfigError(f"defenses: {exc.message}") from exc
    dataset = config.data.dataset
    from evcsa.data import DATASETS
    from evcsa.experiments.plugins import is_plugin, load_plugin
    from evcsa.experiments.runner import resolve_device

    resolve_device(config.device)
    _check_plugins(config)
    if is_plugin(dataset):
        if not callable(load_plugin(dataset, base_dir=config.base_dir, where="data.dataset")):
            raise ConfigError(f"data.dataset: expected {dataset!r} to name a loader function (split) -> ImageSet",
                              key="data.dataset")
    elif dataset in DATASETS:
        from evcsa.data import load_dataset

        available = len(load_dataset(dataset, config.data.split).labels)
        if config.data.samples > available:
            raise ConfigError(f"data.samples: expected at most {available} (the size of {dataset}[{config.data.split}]"
                              f"{', before filtering' if config.data.correctly_classified else ''}), got "
                              f"{config.data.samples}", key="data.samples")
    else:
        if not dataset.endswith(".npz"):
            raise ConfigError(f"data.dataset: expected one of {DATASETS} or a path to a .npz file, "
                              f"got {dataset!r}", key="data.dataset")
        if not config.resolve(dataset).is_file():
            raise ConfigError(f"data.dataset: {config.resolve(dataset)}: no such file", key="data.dataset")
        if config.data.split != "all":
            raise ConfigError(f"data.split: expected 'all' for a file, got {config.data.split!r}",
                              key="data.split")
    m = config.model
    if m.reference is not None:
        from evcsa.shipped import REFERENCE_MODELS, SHIPPED

        if m.reference not in REFERENCE_MODELS:
            from evcsa._text import did_you_mean

            raise ConfigError(f"model.reference: expected one of {REFERENCE_MODELS}, got "
                              f"{m.reference!r}{did_you_mean(m.reference, REFERENCE_MODELS)}", key="model.reference")
        takes = SHIPPED[m.reference].dataset
        if dataset in DATASETS and dataset != takes:
            raise ConfigError(f"model.reference: expected a model for data.dataset {dataset!r}, got "
                              f"{m.reference!r}, a model for {takes!r}", key="model.reference")
    else:
        from evcsa.models import ARCHITECTURES

        if is_plugin(m.architecture):
            load_plugin(m.architecture, base_dir=config.base_dir, where="model.architecture")
        elif m.architecture not in ARCHITECTURES:
            raise ConfigError(f"model.architecture: expected one of {tuple(ARCHITECTURES)}, got "
                              f"{m.architecture!r}", key="model.architecture")
        if not config.resolve(m.weights).is_file():  # type: ignore[arg-type]
            raise ConfigError(f"model.weights: {config.resolve(m.weights)}: no such file",  # type: ignore[arg-type]
                              key="model.weights")


def _check_plugins(config: ExperimentConfig) -> None:
    """A plugin must be importable by name in a worker process: not defined in ``__main__``
    of a script that workers do not run."""
    from evcsa.experiments.plugins import is_plugin

    named = [(f"defenses[{i}].kind", s.kind) for i, s in enumerate(config.defenses)]
    named += [(f"adversaries[{i}].kind", s.kind) for i, s in enumerate(config.adversaries)]
    named += [(f"adversaries[{i}].attack", s.params.get("attack")) for i, s in enumerate(config.adversaries)]
    for where, name in named:
        if is_plugin(name) and name.split(":", 1)[0] == "__main__" and config.executor != "serial":
            raise ConfigError(f"{where}: expected a plugin in an importable module for executor "
                              f"{config.executor!r}, got {name!r} (workers cannot import __main__)", key=where)
