"""The demo's setting for the adversary benchmarks and scripts (evcsa.experiments'
DEMO_TOML): the reference Carlini–Wagner CNN, X_D = the first 100 test digits it
classifies correctly, N = 25, ε = 0.3 L∞, freshness "source", untargeted against the label.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from evcsa.data import load_dataset  # noqa: E402
from evcsa.models import reference_model  # noqa: E402

N_CHOSEN, EPSILON, SAMPLES = 25, 0.3, 100


def demo_inputs(samples: int = SAMPLES) -> tuple[object, torch.Tensor, torch.Tensor]:
    """(model, x, y): the reference model (trained and cached on first use) and X_D."""
    data = load_dataset("mnist", "test")
    model = reference_model("mnist")
    pred = model.predict(data.images).cpu()
    keep = (pred == data.labels).nonzero().flatten()[:samples]
    return model, data.images[keep].clone(), data.labels[keep].clone()
