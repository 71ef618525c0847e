"""The δ sweep (seed 002 Fig. 5 and 6): :func:`run_sweep`."""

from __future__ import annotations

from typing import Any

import numpy as np

from evcsa.adversaries import GrayboxTransfer
from evcsa.config import ExperimentConfig
from evcsa.experiments.cells import _exact, _game, _tau_key
from evcsa.experiments.inputs import Inputs, load_inputs
from evcsa.experiments.legitimate import _accuracy
from evcsa.experiments.registry import _sweep_attack, squeezers_of
from evcsa.experiments.results import Estimate, SweepPoint
from evcsa.experiments.seeds import _keys, _seed

__all__ = ["run_sweep"]


def _sweep_samples(config: ExperimentConfig, inputs: Inputs) -> Any:
    """The sweep's adversarial samples: the sweep attack on the undefended model for every
    X_D sample, fitted to the game's ε (graybox, crafted once for every δ)."""
    spec = _sweep_attack(config)
    game = _game(config, inputs.model, inputs)
    knowledge = game.knowledge(_seed(config, "sweep", "craft"))
    crafter = GrayboxTransfer(attack=spec)
    return crafter.craft(knowledge, np.arange(len(inputs.samples), dtype=np.int64))


def _sweep_defense(model: Any, squeezer: str, delta: float, keys: Any) -> Any:
    from evcsa.defenses import FeatureSqueezing, RandomizedSqueezing

    if delta == 0.0:
        return FeatureSqueezing(model, squeezer)
    return RandomizedSqueezing(model, squeezer, delta, keys)


def run_sweep(config: ExperimentConfig, *, progress: bool | None = None,
              cache_dir: str | None = None) -> tuple[SweepPoint, ...]:
    """Vary δ over ``figures.deltas`` for each squeezer of the configured squeezing defenses
    (δ = 0: feature squeezing; δ > 0: randomized squeezing): legitimate accuracy,
    accuracy on the sweep's adversarial samples and their p̂ (seed 002 Fig. 5 and 6, § 5.1:
    the same adversarial samples evaluated over many runs).

    Returns:
        One :class:`SweepPoint` per (squeezer, δ), squeezers outer; empty when no
        squeezing defense is configured.
    """
    import torch
    from tqdm.auto import tqdm

    from evcsa.games.rules import is_success

    squeezers = squeezers_of(config)
    if not squeezers:
        return ()
    inputs = load_inputs(config, cache_dir=cache_dir)
    candidates = _sweep_samples(config, inputs)
    x_adv = candidates.x_adv
    y = inputs.samples.labels[torch.as_tensor(candidates.sources)]
    draws = config.figures.draws
    points = []
    bar = tqdm(total=len(squeezers) * len(config.figures.deltas), desc="δ sweep", unit="δ", leave=False,
               disable=None if progress is None else not progress)
    try:
        for squeezer in squeezers:
            for delta in config.figures.deltas:
                keys = _keys(config, "sweep", squeezer, repr(delta))
                defense = _sweep_defense(inputs.model, squeezer, float(delta), keys)
                n_draws = draws if defense.randomized else 1
                legit = _accuracy(defense, inputs.legitimate.images, inputs.legitimate.labels,
                                  config.legitimate_draws if defense.randomized else 1)
                hits = torch.zeros(len(y), dtype=torch.int64)
                correct = 0
                repeated = x_adv.repeat(n_draws, 1, 1, 1)
                pred = torch.cat([defense.predict(chunk).cpu() for chunk in repeated.split(4_000)])
                pred = pred.view(n_draws, -1)
                hits = is_success(pred, y).sum(dim=0)  # the game's rule: C(x′) ∉ {y, REJECTED}
                correct = int((pred == y[None]).sum())
                p = (hits.to(torch.float64) / n_draws).numpy()
                exact = {}
                for n in config.figures.n_values:
                    if n <= p.size:
                        exact[str(n)] = _exact(p, n, (1.0,))[0][_tau_key(1.0)]
                points.append(SweepPoint(
                    squeezer=squeezer, delta=float(delta), legitimate_accuracy=legit,
                    adversarial_accuracy=Estimate.from_counts(correct, int(pred.numel())),
                    p_hat=tuple(float(v) for v in p), advantage_exact=exact))
                bar.update(1)
    finally:
        bar.close()
    return tuple(points)
