"""What the benchmark scripts share: timers, the model and MNIST-like inputs.

Each script runs as ``python benchmarks/bench_X.py`` from the repository root; this module
puts the repository on ``sys.path`` so the scripts import the working tree's evcsa.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from evcsa.models import CarliniMNIST  # noqa: E402


def best_of(fn: Callable[[], object], repeat: int, warmup: bool = True) -> float:
    """Best wall time in seconds over ``repeat`` runs (after one warm-up run)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time of each function, run in turn ``repeat`` times after a warm-up, so
    that a load change on the machine hits all of them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def carlini_mnist_cnn(seed: int = 0) -> torch.nn.Module:
    """The Carlini–Wagner MNIST CNN (312,202 parameters) with random weights from a local
    generator, in eval mode: speed does not depend on the weights."""
    return CarliniMNIST(generator=torch.Generator().manual_seed(seed)).eval()


def mnist_like(n: int, seed: int = 0) -> np.ndarray:
    """n float32 images 1×28×28 on the uint8 grid, 80 % background like MNIST digits."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 1, 28, 28)).astype(np.float32) / 255
    x[rng.random(x.shape) < 0.8] = 0.0
    return x
