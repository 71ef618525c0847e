"""What every part of a run shares: the model, the legitimate set and X_D
(:func:`load_inputs`, cached per process)."""

from __future__ import annotations

import hashlib
import io
from typing import Any, Mapping

import attrs
import torch

from evcsa.config import ExperimentConfig
from evcsa.data import ImageSet, load_dataset
from evcsa.defenses.base import ModelClassifier
from evcsa.errors import ConfigError, EvcsaError
from evcsa.experiments.plugins import failure, is_plugin, load_plugin
from evcsa.models import build_model, reference_model

__all__ = ["Inputs", "load_inputs", "resolve_device"]


def resolve_device(device: str) -> str:
    """"cpu", "cuda", or for "auto" cuda when available, else cpu.

    Raises:
        ConfigError: "cuda" on a machine without one.
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError("device: expected a machine with CUDA for 'cuda', got none (use 'cpu' or 'auto')",
                          key="device")
    return "cuda"


@attrs.frozen(kw_only=True, eq=False)
class Inputs:
    """What every part of a run shares.

    Attributes:
        model: the undefended model.
        model_info: its provenance, recorded in results.json: a reference model's ``info``
            (``source`` "shipped" or "trained", ``weights_sha256``, ``weights_file``, where
            the weights come from), or for user weights ``source`` "file", the
            ``architecture``, the ``weights`` path and its ``weights_sha256``.
        legitimate: the legitimate test images (the whole configured split).
        samples: X_D, the natural samples of the games (the first ``data.samples`` of the
            split, correctly classified ones only when configured).
        dropped: natural samples skipped because the model misclassified them.
    """
    model: ModelClassifier = attrs.field(repr=False)
    model_info: Mapping[str, Any]
    legitimate: ImageSet = attrs.field(repr=False)
    samples: ImageSet = attrs.field(repr=False)
    dropped: int


def _inputs_key(config: ExperimentConfig) -> tuple[Any, ...]:
    return (attrs.astuple(config.data), attrs.astuple(config.model), config.base_dir, config.device)


_INPUTS: dict[tuple[Any, ...], Inputs] = {}


def _load_inputs(config: ExperimentConfig, cache_dir: str | None) -> Inputs:
    d, m = config.data, config.model
    device = resolve_device(config.device)
    if is_plugin(d.dataset):
        loader = load_plugin(d.dataset, base_dir=config.base_dir, where="data.dataset")
        try:
            data = loader(d.split)
        except (Exception, SystemExit) as exc:
            if isinstance(exc, EvcsaError):
                raise
            raise ConfigError(f"data.dataset: plugin {d.dataset!r} failed to load split {d.split!r}: "
                              f"{failure(exc)}", key="data.dataset") from exc
        if not all(hasattr(data, a) for a in ("images", "labels", "subset", "head")):
            raise ConfigError(f"data.dataset: expected {d.dataset}(split) to return an evcsa.data.ImageSet, got "
                              f"{type(data).__name__}", key="data.dataset")
    else:
        spec = d.dataset if d.dataset in ("mnist", "digits") else str(config.resolve(d.dataset))
        data = load_dataset(spec, d.split)
    if m.reference is not None:
        model = reference_model(m.reference, cache_dir=cache_dir, device=device)
        info = dict(model.info)
    else:
        path = config.resolve(m.weights)  # type: ignore[arg-type]
        if is_plugin(m.architecture):
            builder = load_plugin(m.architecture, base_dir=config.base_dir, where="model.architecture")
            module = builder(data.image_shape, data.num_classes)
            if not isinstance(module, torch.nn.Module):
                raise ConfigError(f"model.architecture: expected {m.architecture}(image_shape, num_classes) to "
                                  f"return a torch.nn.Module, got {type(module).__name__}", key="model.architecture")
        else:
            module = build_model(m.architecture, data.image_shape, data.num_classes, seed=0)  # type: ignore[arg-type]
        try:
            raw = path.read_bytes()  # hashed and loaded from the same bytes
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as exc:
            raise ConfigError(f"model.weights: {path}: cannot load as a {m.architecture} state dict "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0]})", key="model.weights") from exc
        model = ModelClassifier(module.to(device), num_classes=data.num_classes)
        info = {"source": "file", "architecture": m.architecture, "weights": str(path),
                "weights_sha256": hashlib.sha256(raw).hexdigest()}
    try:
        with torch.no_grad():
            shape = tuple(model.module(data.images[:1].to(model.device)).shape)
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. 3-channel images for a 1-channel model
        raise ConfigError(f"model: expected a model that accepts the data's images {data.image_shape} "
                          f"({data.name}), got one that fails on them ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''})", key="model") from exc
    if shape != (1, model.num_classes) or model.num_classes < data.num_classes:
        raise ConfigError(f"model: expected a model for {data.num_classes} classes of images "
                          f"{data.image_shape}, got one with {model.num_classes} outputs", key="model")
    pool, dropped = data, 0
    if d.correctly_classified:
        pred = model.predict(data.images).cpu()
        keep = (pred == data.labels).nonzero().flatten()
        if keep.numel() == 0:
            raise ConfigError("data.correctly_classified: the model classifies no natural sample correctly",
                              key="data.correctly_classified")
        keep = keep[: d.samples]
        pool = data.subset(keep)
        dropped = int(keep[-1]) + 1 - int(keep.numel())  # misclassified ones passed over
    samples = pool.head(d.samples)
    samples = attrs.evolve(samples, name=f"{data.name}[:{len(samples)}]"
                           + (" correctly classified" if d.correctly_classified else ""))
    if len(samples) < d.samples:
        raise ConfigError(f"data.samples: expected at most {len(samples)} natural samples from {data.name} "
                          f"(after filtering), got {d.samples}", key="data.samples")
    if config.game.freshness == "source" and config.game.n_chosen > len(samples):
        raise ConfigError(f"game.n_chosen: expected N ≤ |X_D| = {len(samples)} under freshness 'source', "
                          f"got {config.game.n_chosen}", key="game.n_chosen")
    return Inputs(model=model, model_info=info, legitimate=data, samples=samples, dropped=dropped)


def load_inputs(config: ExperimentConfig, *, cache_dir: str | None = None) -> Inputs:
    """The model, the legitimate set and X_D for ``config`` (cached per process).

    Raises:
        ConfigError, DataError: the data or the model cannot be loaded, or X_D is too small.
    """
    cache_dir = None if cache_dir is None else str(cache_dir)
    key = (*_inputs_key(config), config.game.freshness, config.game.n_chosen, cache_dir)
    if key not in _INPUTS:
        if len(_INPUTS) >= 4:
            _INPUTS.pop(next(iter(_INPUTS)))
        _INPUTS[key] = _load_inputs(config, cache_dir)
    return _INPUTS[key]


def inputs_digest(inputs: Inputs) -> str:
    """SHA-256 (hex) of what a unit must leave unchanged: the model's parameters and buffers
    (by name) and the images and labels of X_D and the legitimate set."""
    h = hashlib.sha256()
    for name, tensor in sorted(inputs.model.module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(str([(m.training) for m in inputs.model.module.modules()]).encode())
    for part in (inputs.samples, inputs.legitimate):
        h.update(part.images.numpy().tobytes())
        h.update(part.labels.numpy().tobytes())
    return h.hexdigest()


def forget_inputs() -> None:
    """Drop this process's loaded inputs, so that the next unit loads them afresh."""
    _INPUTS.clear()

