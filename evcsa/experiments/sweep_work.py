"""What the δ sweep's units and the example strip compute (seed 002 Fig. 4–6): the sweep's
adversarial set, one squeezer's legitimate accuracy and p̂ at one δ, the example images.
Pure functions of the configuration, the unit's parameters and its dependencies' outputs,
as :mod:`evcsa.experiments.work` (which runs them)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from evcsa.adversaries import GrayboxTransfer
from evcsa.config import ExperimentConfig
from evcsa.defenses import FeatureSqueezing, RandomizedSqueezing, squeezer_from_spec
from evcsa.defenses.base import Classifier
from evcsa.experiments.assemble import exact_advantages, tau_key
from evcsa.experiments.registry import sweep_attack
from evcsa.experiments.seeds import generator_seed, key_source
from evcsa.experiments.unit_parts import accuracy_counts, candidates_arrays, game_of, inputs_of
from evcsa.experiments.units import Output
from evcsa.judging import count_successes, predict_labels
from evcsa.randomness import KeySource

__all__ = ["examples_unit", "sweep_craft", "sweep_defense", "sweep_legitimate", "sweep_point_unit"]


def sweep_craft(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                 cache_dir: str | None) -> Output:
    """The sweep attack on the undefended model for every X_D sample, fitted to the game's ε
    (graybox, crafted once for every δ and for the example strip)."""
    inputs = inputs_of(config, cache_dir)
    game = game_of(config, inputs.model, inputs)
    knowledge = game.knowledge(generator_seed(config, "sweep", "craft"))
    crafted = GrayboxTransfer(attack=sweep_attack(config)).craft(
        knowledge, np.arange(len(inputs.samples), dtype=np.int64))
    record: dict[str, Any] = {"form": "candidates", "candidates": len(crafted)}
    return Output(record=record, arrays=candidates_arrays(crafted))


def sweep_defense(model: Classifier | torch.nn.Module, squeezer: str, delta: float,
                  keys: KeySource) -> FeatureSqueezing | RandomizedSqueezing:
    """The sweep's defense: feature squeezing at δ = 0, randomized squeezing (noise from ``keys``) above."""
    if delta == 0.0:
        return FeatureSqueezing(model, squeezer)
    return RandomizedSqueezing(model, squeezer, delta, keys)


def sweep_legitimate(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                      cache_dir: str | None) -> Output:
    """One squeezer's accuracy on the legitimate test images at one δ (``legitimate_draws``
    classifications of each when δ > 0); independent of the sweep's attack."""
    squeezer, delta = params["squeezer"], float(params["delta"])
    inputs = inputs_of(config, cache_dir)
    defense = sweep_defense(inputs.model, squeezer, delta, key_source(config, "sweep-legitimate", squeezer, repr(delta)))
    legit = accuracy_counts(defense, inputs.legitimate.images, inputs.legitimate.labels,
                            config.legitimate_draws if defense.randomized else 1,
                            num_classes=inputs.model.num_classes)
    return Output(record={"legitimate": list(legit)})


def sweep_point_unit(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                 cache_dir: str | None) -> Output:
    """One squeezer at one δ: legitimate accuracy, accuracy on the sweep's samples, their p̂
    and Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6) for each N of the figure."""
    squeezer, delta = params["squeezer"], float(params["delta"])
    inputs = inputs_of(config, cache_dir)
    craft = deps["craft"].arrays
    x_adv = torch.from_numpy(np.ascontiguousarray(craft["x_adv"]))
    y = inputs.samples.labels[torch.as_tensor(craft["sources"])]
    defense = sweep_defense(inputs.model, squeezer, delta, key_source(config, "sweep", squeezer, repr(delta)))
    n_draws = config.figures.draws if defense.randomized else 1
    legit = deps["legitimate"].record["legitimate"]
    k = inputs.model.num_classes
    seen: list[torch.Tensor] = []  # the checked [draws, B] answers, for the accuracy on the same draws
    hits = count_successes(lambda chunk: predict_labels(defense, chunk, k), x_adv, y, draws=n_draws,
                           batch_size=4_000, on_predictions=seen.append)  # the game's rule: C(x′) ∉ {y, REJECTED}
    pred = seen[0]
    sample_correct = (pred == y[None]).sum(dim=0).to(torch.int64).numpy()  # per sample, over its draws
    correct = int(sample_correct.sum())
    p = (hits.to(torch.float64) / n_draws).numpy()
    exact = {}
    for n in config.figures.n_values:
        if n <= p.size:
            exact[str(n)] = exact_advantages(p, n, (1.0,))[0][tau_key(1.0)]
    return Output(record={"legitimate": list(legit), "adversarial": [correct, int(pred.numel())],
                          "advantage_exact": exact, "draws": n_draws},
                  arrays={"p_hat": p, "sample_correct": sample_correct})


def examples_unit(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
              cache_dir: str | None) -> Output:
    """The example strip (seed 002 Fig. 4) for the chosen squeezing defense: the first
    ``figures.examples`` samples of X_D, their adversarial versions (the sweep's set), with
    the defense's noise, squeezed."""
    inputs = inputs_of(config, cache_dir)
    chosen = config.defenses[params["defense"]]
    squeezer = squeezer_from_spec(chosen.params.get("squeezer", chosen.params.get("squeezers")))
    delta = float(chosen.params.get("delta", 0.0))
    k = min(config.figures.examples, len(inputs.samples))
    original = inputs.samples.images[:k]
    adversarial = torch.from_numpy(np.ascontiguousarray(deps["craft"].arrays["x_adv"][:k]))
    noise = RandomizedSqueezing(inputs.model, None, delta, key_source(config, "examples", chosen.name))
    randomized = noise.randomize_pixels(adversarial).cpu() if delta > 0 else adversarial.clone()
    squeezed = squeezer(randomized).cpu()
    model = inputs.model

    def predicted(x: Any) -> list[int]:
        return [int(v) for v in predict_labels(model, x, model.num_classes)]

    labels = {
        "true": [int(v) for v in inputs.samples.labels[:k]],
        "original": predicted(original),
        "adversarial": predicted(adversarial),
        "randomized": predicted(randomized),  # the noisy image, unsqueezed
        "squeezed": predicted(squeezed),
    }
    arrays = {"original": original.numpy().copy(), "adversarial": adversarial.numpy().copy(),
              "randomized": randomized.to(torch.float32).numpy(), "squeezed": squeezed.numpy()}
    return Output(record={"labels": labels, "defense": chosen.name, "squeezer": squeezer.spec, "delta": delta},
                  arrays=arrays)
