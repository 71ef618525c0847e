"""What a run records about where its numbers come from: the fingerprint every unit's
content key holds (:func:`fingerprint`) and the environment results.json records
(:func:`run_environment`)."""

from __future__ import annotations

import hashlib
import platform

import numpy as np
import torch

from evcsa import __version__
from evcsa.experiments import code
from evcsa.experiments.inputs import Inputs

__all__ = ["fingerprint", "run_environment"]


def fingerprint(inputs: Inputs, device: str) -> dict[str, str]:
    """What every unit's key holds about the inputs: SHA-256 of the model's weights (every
    parameter and buffer, by name), of the data (X_D and the legitimate set, images and
    labels), the device, the evcsa version and the digest of evcsa's source
    (:func:`evcsa.experiments.code.evcsa_source_digest`).

    Args:
        inputs: the run's inputs (:func:`~evcsa.experiments.inputs.load_inputs`).
        device: the resolved device ("cpu" or "cuda").

    Returns:
        {"model", "data", "device", "evcsa", "code"} → hex digests or names.
    """
    model = hashlib.sha256()
    for name, tensor in sorted(inputs.model.module.state_dict().items()):
        model.update(name.encode())
        model.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        model.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    data = hashlib.sha256()
    for part in (inputs.samples, inputs.legitimate):
        data.update(part.images.numpy().tobytes())
        data.update(part.labels.numpy().tobytes())
    return {"model": model.hexdigest(), "data": data.hexdigest(), "device": device, "evcsa": __version__,
            "code": code.evcsa_source_digest()}


def run_environment() -> dict[str, object]:
    """The versions and the machine results.json records: evcsa, torch, numpy, Python, the
    platform and torch's thread count."""
    return {"evcsa": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads()}
