"""Checking a configuration before any work: :func:`check_config`."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np
import torch

from evcsa._text import did_you_mean
from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.data import DATASETS, load_dataset
from evcsa.defenses.base import ModelClassifier
from evcsa.errors import ConfigError, EvcsaError
from evcsa.experiments.inputs import load_inputs, resolve_device
from evcsa.experiments.plugins import failure, is_plugin, load_plugin
from evcsa.experiments.registry import sweep_attack, build_adversary, build_defense, squeezers_of
from evcsa.models import ARCHITECTURES
from evcsa.randomness import DerivedKeys
from evcsa.shipped import REFERENCE_MODELS, SHIPPED

__all__ = ["check_config", "check_inputs", "estimate_sizes", "estimate_work"]


def _stand_in_model() -> Any:
    """A tiny model for checking parameters without loading the real one."""
    return ModelClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)), num_classes=10)


def check_config(config: ExperimentConfig) -> None:
    """Check everything that can be checked before any work: every defense and adversary
    builds, each adversary accepts the game's rules (its knowledge level, norm, ε), N fits
    in X_D, the data set holds ``data.samples``, the sweep's attack exists, the data file
    and weights exist, nothing the run must hold in memory at once is larger than this
    machine's memory (:func:`estimate_sizes`), and the forward passes it needs could finish
    within a year at a million images per second (:func:`estimate_work`).

    Raises:
        ConfigError: the first problem, naming the key.
    """
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
        except (Exception, SystemExit) as exc:  # a plugin's own check_rules failed
            if not is_plugin(spec.kind):
                raise
            raise ConfigError(f"adversaries[{i}].kind: plugin {spec.kind!r} failed to check the game's rules: "
                              f"{failure(exc)}", key=f"adversaries[{i}].kind") from exc
    game = config.game
    if game.freshness == "source" and game.n_chosen > config.data.samples:
        raise ConfigError(f"game.n_chosen: expected N ≤ data.samples = {config.data.samples} under freshness "
                          f"'source' (one chosen sample per natural sample), got {game.n_chosen}",
                          key="game.n_chosen")
    if config.figures.enabled:
        sweep_attack(config)
        try:
            squeezers_of(config)
        except EvcsaError as exc:  # pragma: no cover - build_defense caught it already
            raise ConfigError(f"defenses: {exc.message}") from exc
    dataset = config.data.dataset

    resolve_device(config.device)
    _check_plugins(config)
    available = None
    if is_plugin(dataset):
        if not callable(load_plugin(dataset, base_dir=config.base_dir, where="data.dataset")):
            raise ConfigError(f"data.dataset: expected {dataset!r} to name a loader function (split) -> ImageSet",
                              key="data.dataset")
    elif dataset in DATASETS:
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
        if m.reference not in REFERENCE_MODELS:
            raise ConfigError(f"model.reference: expected one of {REFERENCE_MODELS}, got "
                              f"{m.reference!r}{did_you_mean(m.reference, REFERENCE_MODELS)}", key="model.reference")
        takes = SHIPPED[m.reference].dataset
        if dataset in DATASETS and dataset != takes:
            raise ConfigError(f"model.reference: expected a model for data.dataset {dataset!r}, got "
                              f"{m.reference!r}, a model for {takes!r}", key="model.reference")
    else:
        if is_plugin(m.architecture):
            load_plugin(m.architecture, base_dir=config.base_dir, where="model.architecture")
        elif m.architecture not in ARCHITECTURES:
            raise ConfigError(f"model.architecture: expected one of {tuple(ARCHITECTURES)}, got "
                              f"{m.architecture!r}", key="model.architecture")
        if not config.resolve(m.weights).is_file():  # type: ignore[arg-type]
            raise ConfigError(f"model.weights: {config.resolve(m.weights)}: no such file",  # type: ignore[arg-type]
                              key="model.weights")
    _check_sizes(config, legitimate=available)


def _check_plugins(config: ExperimentConfig) -> None:
    """A plugin must be importable by name in a worker process: not defined in ``__main__``
    of a script that workers do not run."""
    named: list[tuple[str, object]] = [(f"defenses[{i}].kind", s.kind) for i, s in enumerate(config.defenses)]
    named += [(f"adversaries[{i}].kind", s.kind) for i, s in enumerate(config.adversaries)]
    named += [(f"adversaries[{i}].attack", s.params.get("attack")) for i, s in enumerate(config.adversaries)]
    for where, name in named:
        if is_plugin(name) and name.split(":", 1)[0] == "__main__" and config.executor != "serial":
            raise ConfigError(f"{where}: expected a plugin in an importable module for executor "
                              f"{config.executor!r}, got {name!r} (workers cannot import __main__)", key=where)


def check_inputs(config: ExperimentConfig, *, cache_dir: str | None = None) -> None:
    """Load the data and the model as the run will (:func:`~evcsa.experiments.inputs.load_inputs`)
    and check that they fit each other: the model takes the data's images (channels, size)
    and has an output for each class. ``evcsa play --check`` calls it when the model needs
    no training.

    Raises:
        ConfigError, DataError: they do not fit, or cannot be loaded.
    """
    load_inputs(config, cache_dir=cache_dir)


#: Bytes of the records one game keeps per submission (11 numbers) and per game (5).
_PER_SUBMISSION, _PER_GAME, _PER_UNIT = 74, 40, 1024


def _memory() -> int | None:
    """This machine's physical memory in bytes (None where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _image_values(config: ExperimentConfig) -> tuple[int, bool]:
    """Values per image (C·H·W) of the configuration's data, and whether that is exact
    (else 64, a lower bound: the smallest images evcsa ships)."""
    dataset = config.data.dataset
    known = {"digits": 64, "mnist": 784}
    if dataset in known:
        return known[dataset], True
    if isinstance(dataset, str) and dataset.endswith(".npz"):
        try:
            with zipfile.ZipFile(config.resolve(dataset)) as z, z.open("x.npy") as fh:
                fmt = np.lib.format
                major, _ = fmt.read_magic(fh)
                shape, _, _ = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(fh)
            if len(shape) >= 3:
                values = 1
                for n in shape[1:]:
                    values *= int(n)
                return values, True
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            pass  # load_dataset reports a bad file when the run loads it
    return 64, False


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def estimate_sizes(config: ExperimentConfig) -> list[tuple[str, int, str]]:
    """Lower bounds of what a run must hold in memory at once, from the configuration alone:
    (key, bytes, what). Each is a floor (the model's activations come on top), so a value
    beyond the machine's memory cannot run.

    - ``runs``: every game's records (each submission's source, label, outcome, …; the
      engine keeps a cell's games until it assembles the results) and the plan's units;
    - an A* adversary's ``queries_per_candidate``: one candidate's draws are classified as
      one batch of that many images;
    - ``figures.draws``: the re-judging of a submitted sample, and the δ sweep's batch of
      every X_D sample drawn that many times.
    """
    values, _ = _image_values(config)
    image = 4 * values  # float32
    cells = len(config.defenses) * len(config.adversaries)
    n = config.game.n_chosen
    runs = config.runs
    units = cells * -(-runs // 25)
    out = [("runs", cells * runs * (n * _PER_SUBMISSION + _PER_GAME) + units * _PER_UNIT,
            f"{cells} cell(s) × {runs:,} games × N = {n}: the games' records and {units:,} units of work")]
    versus_prediction = bool(getattr(config.game, "needs_reference_predictions", False))
    for i, spec in enumerate(config.adversaries):
        q = spec.params.get("queries_per_candidate")
        if spec.kind == "greedy_a_star" and isinstance(q, int) and not isinstance(q, bool):
            per = (2 if versus_prediction else 1) * q * image
            out.append((f"adversaries[{i}].queries_per_candidate", per,
                        f"one candidate's {q:,} Classify draws, classified as one batch"))
    if config.figures.enabled:
        draws = config.figures.draws
        out.append(("figures.draws", draws * image * max(1, config.data.samples),
                    f"the δ sweep's {config.data.samples:,} samples × {draws:,} draws, classified together"))
    return out


#: An optimistic speed (images through the model per second) and the longest run --check
#: accepts at it: a configuration needing more forward passes cannot finish.
_IMAGES_PER_SECOND, _LONGEST = 1e6, 365 * 24 * 3600.0


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _split_size(config: ExperimentConfig) -> int:
    """Images in the configured split (the legitimate set): exact for the data sets evcsa
    ships and .npz files, ``data.samples`` (a lower bound) otherwise."""
    dataset = config.data.dataset
    try:
        if dataset in DATASETS:
            return len(load_dataset(dataset, config.data.split).labels)
        if isinstance(dataset, str) and dataset.endswith(".npz"):
            with zipfile.ZipFile(config.resolve(dataset)) as z, z.open("y.npy") as fh:
                fmt = np.lib.format
                major, _ = fmt.read_magic(fh)
                shape, _, _ = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(fh)
                return int(shape[0]) if shape else config.data.samples
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EvcsaError):
        pass
    return config.data.samples


def estimate_work(config: ExperimentConfig, *, legitimate: int | None = None) -> list[tuple[str, float, str]]:
    """Lower bounds of the forward passes (images through the model) a run needs, from the
    configuration alone: (key, images, what). A defense classifies each image through
    ``n_samples`` (region-based) or ``n_crops`` (cropping-rescaling) of them.

    Args:
        legitimate: the size of the legitimate set, when known (else read or bounded below).
    """
    def cost(spec: ComponentSpec) -> int:
        if spec.kind == "region_based":
            return _int(spec.params.get("n_samples"), 10_000)
        if spec.kind == "cropping_rescaling":
            return _int(spec.params.get("n_crops"), 30)
        return 1

    if legitimate is None:
        legitimate = _split_size(config)
    out = []
    for d, spec in enumerate(config.defenses):
        out.append((f"defenses[{d}]", float(config.legitimate_draws) * legitimate * cost(spec),
                    f"{spec.name}: legitimate_draws = {config.legitimate_draws:,} × {legitimate:,} images × "
                    f"{cost(spec):,} per classification"))
        for a, a_spec in enumerate(config.adversaries):
            q = _int(a_spec.params.get("queries_per_candidate"), 0) if a_spec.kind == "greedy_a_star" else 0
            per_game = config.game.n_chosen + q * _int(a_spec.params.get("n_candidates"), config.game.n_chosen)
            out.append((f"adversaries[{a}]", float(config.runs) * per_game * cost(spec),
                        f"{spec.name} × {a_spec.name}: runs = {config.runs:,} games × {per_game:,} classifications "
                        f"× {cost(spec):,} per classification"))
    return out


def _check_sizes(config: ExperimentConfig, *, legitimate: int | None = None) -> None:
    memory = _memory()
    if memory is not None:
        for key, need, what in estimate_sizes(config):
            if need > memory:
                raise ConfigError(f"{key}: expected a size that fits in this machine's memory ({_gb(memory)}), got "
                                  f"{what} — at least {_gb(need)}", key=key, estimate=need, memory=memory)
    for key, images, what in estimate_work(config, legitimate=legitimate):
        seconds = images / _IMAGES_PER_SECOND
        if seconds > _LONGEST:
            raise ConfigError(f"{key}: expected a run that can finish, got {what} — at least {images:.2g} forward "
                              f"passes, {seconds / (365 * 24 * 3600):,.0f} years even at "
                              f"{_IMAGES_PER_SECOND:.0e} images/s", key=key, estimate=images)
