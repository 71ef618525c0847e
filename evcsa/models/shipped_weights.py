"""The reference models that ship with evcsa (:mod:`evcsa.models`): their weights
loaded offline from ``evcsa/models_data/``, SHA-256 checked (:data:`evcsa.shipped.SHIPPED`).
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from evcsa._text import did_you_mean
from evcsa.errors import DataError, InvalidParameter
from evcsa.models.architectures import ARCHITECTURES
from evcsa.shipped import REFERENCE_MODELS, SHIPPED, ShippedWeights
from evcsa.weights_io import load_weights_npz, sha256_bytes


#: (C, H, W) and K of the embedded data sets, so a shipped model is built without loading data.
GEOMETRY = {"mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


def _check_name(name: Any) -> ShippedWeights:
    if not isinstance(name, str) or name not in SHIPPED:
        hint = did_you_mean(name, REFERENCE_MODELS) if isinstance(name, str) else ""
        raise InvalidParameter(f"expected a reference model in {REFERENCE_MODELS}, got {name!r}{hint}", got=name)
    return SHIPPED[name]


def load_shipped(name: str = "mnist") -> tuple[nn.Module, dict[str, Any]]:
    """The shipped reference model ``name`` and its info, offline (no training, no cache).

    The ``.npz`` is read once, its SHA-256 compared with :attr:`ShippedWeights.sha256`, and
    only then parsed (numpy only); the model is built on the CPU without touching the
    global random generator.

    Returns:
        (module in eval mode on the CPU, info) where info holds ``name``, ``source``
        ("shipped"), ``origin``, ``architecture``, ``dataset``, ``input_offset``,
        ``weights_file`` (relative to the installed evcsa package), ``weights_sha256``,
        ``parameters``, and the provenance recorded when the file was made (its ``.json``:
        the recipe and environment of the training, or the converted file's repository,
        path, commit and SHA-256; the accuracy measured then).

    Raises:
        InvalidParameter: an unknown name.
        DataError: the file is missing, its SHA-256 is not the expected one, or its arrays
            do not fit the architecture (a damaged or modified installation).
    """
    spec = _check_name(name)
    path = spec.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"expected the shipped weights of {name!r} in {path}, got {type(exc).__name__}: "
                        f"{exc.strerror or exc} (reinstall evcsa)", path=str(path)) from exc
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise DataError(f"expected {path} with SHA-256 {spec.sha256}, got {digest}: the shipped weights of "
                        f"{name!r} are damaged or were replaced (reinstall evcsa)",
                        path=str(path), expected=spec.sha256, got=digest)
    state = load_weights_npz(data)
    (c, h, _w), k = GEOMETRY[spec.dataset]
    options = {"input_offset": spec.input_offset} if spec.input_offset else {}
    module = ARCHITECTURES[spec.architecture](c, h, k, generator=torch.Generator().manual_seed(0), **options)
    tensors = {key: torch.from_numpy(value) for key, value in state.items()}
    if spec.input_offset:  # the offset is the table's, not the file's (the .npz holds the weights only)
        tensors["input_shift"] = module.get_buffer("input_shift").clone()
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise DataError(f"expected {path} to hold a {spec.architecture} state dict, got "
                        f"{str(exc).splitlines()[0]}", path=str(path)) from exc
    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack Module.to(memory_format=)
    try:
        provenance = json.loads(spec.provenance_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = {}
    info = {**provenance, "name": name, "source": "shipped", "origin": spec.origin, "summary": spec.summary,
            "architecture": spec.architecture, "dataset": spec.dataset, "input_offset": spec.input_offset,
            "weights_file": f"evcsa/models_data/{spec.file}", "weights_sha256": digest,
            "parameters": sum(p.numel() for p in module.parameters())}
    return module.eval(), info
