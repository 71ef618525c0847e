"""The on-disk cache of models trained here (:mod:`evcsa.models`): its directory, its
files (``<name>-<architecture>-<key>.pt`` and ``.json``, written atomically), lookup and
training on a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from typing import Any, NoReturn

import torch
from torch import nn

from evcsa._files import atomic_write
from evcsa.errors import InvalidParameter
from evcsa.models.architectures import build_model
from evcsa.models.recipe import cache_key, train_reference
from evcsa.models.shipped_weights import GEOMETRY
from evcsa.models.training import REFERENCE_CONFIGS, TrainingConfig
from evcsa.shipped import SHIPPED


def resolve_cache_dir(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The model cache directory: ``path``, else ``$EVCSA_CACHE``, else ``~/.cache/evcsa``."""
    if path is not None:
        return pathlib.Path(path).expanduser()
    env = os.environ.get("EVCSA_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "evcsa"


def check_cache_dir(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The model cache directory (:func:`resolve_cache_dir`), checked to be one evcsa can
    create and write files in — without creating it: a probe directory is made and removed
    in it, or in its nearest existing parent.

    Returns:
        The directory.

    Raises:
        InvalidParameter: "expected a writable cache directory, got DIR: <reason>" (the
            path is a file, a parent is a file, or the disk or the permissions refuse);
            ``path`` names the directory.
    """
    directory = resolve_cache_dir(path)
    origin = " (from $EVCSA_CACHE)" if path is None and os.environ.get("EVCSA_CACHE") else ""

    def fail(reason: str) -> NoReturn:
        raise InvalidParameter(f"expected a writable cache directory, got {directory}{origin}: {reason}",
                               path=str(directory))

    existing = directory
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        fail(f"cannot look it up ({exc.strerror or exc})")
    if not is_dir:
        fail("it is not a directory" if existing == directory else f"{existing} is not a directory")
    try:  # os.access answers yes to root even where nothing can be created (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".evcsa-", suffix=".check", dir=existing))
    except OSError as exc:
        fail(f"cannot write in it ({exc.strerror or exc})" if existing == directory
             else f"cannot create it in {existing} ({exc.strerror or exc})")
    return directory


def file_sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_for(name: str | TrainingConfig) -> tuple[str, TrainingConfig]:
    if isinstance(name, TrainingConfig):
        return name.dataset, name
    if name not in REFERENCE_CONFIGS:
        extra = (f" ({name!r} ships converted from published weights; evcsa has no recipe to train it)"
                 if name in SHIPPED else "")
        raise InvalidParameter(f"expected a trainable reference model in {tuple(REFERENCE_CONFIGS)}, got "
                               f"{name!r}{extra}", got=name)
    return name, REFERENCE_CONFIGS[name]


def cache_paths(label: str, config: TrainingConfig, directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    stem = f"{label}-{config.architecture}-{cache_key(config)}"
    return directory / f"{stem}.pt", directory / f"{stem}.json"


def is_cached(name: str | TrainingConfig = "mnist", *,
              cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether the cache holds a model trained here from the recipe ``name`` (a key of
    :data:`REFERENCE_CONFIGS`) or a :class:`TrainingConfig`, by the current training code
    (present, not verified: a damaged copy is found out, and retrained, by
    :func:`load_reference`). The shipped weights are not in the cache."""
    label, config = config_for(name)
    try:
        return all(p.is_file() for p in cache_paths(label, config, resolve_cache_dir(cache_dir)))
    except OSError:
        return False



def load_reference(name: str | TrainingConfig = "mnist", *,
                   cache_dir: str | os.PathLike[str] | None = None) -> tuple[nn.Module, dict[str, Any]] | None:
    """The model trained here from the recipe ``name`` or a :class:`TrainingConfig`, from
    the cache, and its info; None when it is not cached (or the cached weights do not
    match their recorded SHA-256; a warning says so).

    Raises:
        InvalidParameter: a name with no recipe (:data:`REFERENCE_CONFIGS`)."""
    label, config = config_for(name)
    directory = resolve_cache_dir(cache_dir)
    weights, meta = cache_paths(label, config, directory)
    if not (weights.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("weights_sha256") != file_sha256(weights):
            raise ValueError("the weights do not match their recorded SHA-256")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        (c, h, w), k = GEOMETRY[config.dataset]
        module = build_model(config.architecture, (c, h, w), k, seed=0)
        module.load_state_dict(state)
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack Module.to(memory_format=)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        warnings.warn(f"ignoring the damaged cached model {weights} ({exc}); it will be retrained",
                      RuntimeWarning, stacklevel=2)
        return None
    info["weights_path"] = str(weights)
    return module.eval(), info


def trained_here(label: str, config: TrainingConfig, directory: pathlib.Path, *, retrain: bool,
                  progress: bool | None) -> tuple[nn.Module, dict[str, Any]]:
    """The cached model of ``config``, trained and cached first when missing (or ``retrain``)."""
    cached = None if retrain else load_reference(config, cache_dir=directory)
    if cached is not None:
        return cached
    check_cache_dir(directory)  # before the training, not after it
    module, info = train_reference(config, progress=progress)
    directory.mkdir(parents=True, exist_ok=True)
    weights, meta = cache_paths(label, config, directory)
    atomic_write(weights, lambda fh: torch.save(module.state_dict(), fh))
    info["weights_sha256"] = file_sha256(weights)
    info["weights_file"] = weights.name
    atomic_write(meta, lambda fh: fh.write(json.dumps(info, indent=2) + "\n"), mode="w")
    info["weights_path"] = str(weights)
    return module, info
