"""A cost model for attacks: the predicted wall time of a full-scale run on this machine
from a short timed run (issue 11; ``evcsa reproduce --estimate``).

Model: an attack runs in batches of ``batch_size`` images (:func:`~evcsa.attacks.run_attack`),
and each sample's result does not depend on the rest of its batch, so the time of a batch
is, to first order, the batch's size times a per-image cost that the probe measures. The
probe runs the attack on ``probe`` images in one batch — the first ``probe`` of the
inputs, so the same kind of images — and the prediction is

    predicted = probe_seconds × samples / probe.

This is linear extrapolation; its known errors, in both directions:

- a batch loop runs as long as its slowest sample (C&W, JSMA, DeepFool stop per sample),
  and a larger batch has more chances of a slow sample: the prediction is low for those
  attacks when the probe is small;
- per-call costs (the first forward pass, allocation) are amortised over larger batches:
  the prediction is high for one-shot attacks (FGSM) with a tiny probe.

A probe of 10–25 images keeps both within about a factor of 1.5 on the reference CNN (the
measured check: ``benchmarks/bench_cost.py``). The time is wall time on the current torch
thread setting; on a shared machine it moves with the load.
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs
import torch

from evcsa._validation import check_positive_int
from evcsa.attacks.evaluation import run_attack
from evcsa.attacks.registry import get_attack

__all__ = ["AttackCost", "estimate_attack_time"]


@attrs.frozen(kw_only=True)
class AttackCost:
    """The predicted time of one attack at full scale.

    Attributes:
        attack: the attack's name.
        samples: images of the full-scale run.
        probe: images timed.
        probe_seconds: wall seconds of the probe run.
        predicted_seconds: probe_seconds × samples / probe.
    """

    attack: str
    samples: int
    probe: int
    probe_seconds: float
    predicted_seconds: float

    def __str__(self) -> str:
        return (f"{self.attack}: {_clock(self.predicted_seconds)} predicted for {self.samples} images "
                f"({self.probe_seconds:.2f} s measured on {self.probe})")


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def estimate_attack_time(attack: Any, model: Any, x: Any, y: Any, *, samples: int, probe: int = 10,
                         target: Any = "spec", generator: torch.Generator | None = None,
                         **params: Any) -> AttackCost:
    """Time ``attack`` on the first ``probe`` images of ``x`` and predict a run on ``samples``.

    Args:
        attack: a registry name, :class:`~evcsa.attacks.AttackSpec` or attack function.
        model: the model crafted on (Classifier or nn.Module).
        x: float32 [M, C, H, W] in [0, 1], M ≥ 1 (only the first ``probe`` are used).
        y: true labels [M].
        samples: images of the full-scale run (≥ 1).
        probe: images to time (≥ 1; at most M are used).
        target: as in :func:`~evcsa.attacks.run_attack`.
        generator: the attack's randomness.
        **params: the attack's parameters (e.g. ``schedule="fast"``).

    Returns:
        :class:`AttackCost`.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    samples = check_positive_int(samples, "samples")
    probe = check_positive_int(probe, "probe")
    spec = get_attack(attack)
    xs, ys = x[:probe], y[:probe]
    n = int(xs.shape[0])
    t0 = time.perf_counter()
    run_attack(spec, model, xs, ys, target=target, batch_size=n, generator=generator, **params)
    seconds = time.perf_counter() - t0
    predicted = seconds * samples / n
    return AttackCost(attack=spec.name, samples=samples, probe=n, probe_seconds=seconds,
                      predicted_seconds=predicted if math.isfinite(predicted) else float("inf"))
