"""The example strip (seed 002 Fig. 4): :func:`run_examples`."""

from __future__ import annotations

import numpy as np

from evcsa.adversaries import GrayboxTransfer
from evcsa.config import ExperimentConfig
from evcsa.experiments.cells import _game
from evcsa.experiments.inputs import load_inputs
from evcsa.experiments.registry import _sweep_attack
from evcsa.experiments.results import ExampleImages
from evcsa.experiments.seeds import _keys, _seed

__all__ = ["run_examples"]


def run_examples(config: ExperimentConfig, *, cache_dir: str | None = None) -> ExampleImages | None:
    """The example strip for the first randomized squeezing defense of the configuration
    (else the first squeezing one at δ = 0): the first ``figures.examples`` samples of X_D."""
    import torch

    from evcsa.defenses import RandomizedSqueezing, squeezer_from_spec

    k = config.figures.examples
    chosen = None
    for spec in config.defenses:
        if spec.kind == "randomized_squeezing":
            chosen = spec
            break
    if chosen is None:
        for spec in config.defenses:
            if spec.kind == "feature_squeezing":
                chosen = spec
                break
    if chosen is None or k == 0:
        return None
    inputs = load_inputs(config, cache_dir=cache_dir)
    squeezer = squeezer_from_spec(chosen.params.get("squeezer", chosen.params.get("squeezers")))
    delta = float(chosen.params.get("delta", 0.0))
    k = min(k, len(inputs.samples))
    game = _game(config, inputs.model, inputs)
    knowledge = game.knowledge(_seed(config, "examples", "craft"))
    crafted = GrayboxTransfer(attack=_sweep_attack(config)).craft(knowledge, np.arange(k, dtype=np.int64))
    original = inputs.samples.images[:k]
    adversarial = crafted.x_adv
    noise = RandomizedSqueezing(inputs.model, None, delta, _keys(config, "examples", chosen.name))
    randomized = noise.randomize_pixels(adversarial).cpu() if delta > 0 else adversarial.clone()
    squeezed = squeezer(randomized).cpu()
    model = inputs.model
    labels = {
        "true": tuple(int(v) for v in inputs.samples.labels[:k]),
        "original": tuple(int(v) for v in model.predict(original).cpu()),
        "adversarial": tuple(int(v) for v in model.predict(adversarial).cpu()),
        "randomized": tuple(int(v) for v in model.predict(randomized).cpu()),  # the noisy image, unsqueezed
        "squeezed": tuple(int(v) for v in model.predict(squeezed).cpu()),
    }
    return ExampleImages(original=original.clone(), adversarial=adversarial.clone(),
                         randomized=randomized.to(torch.float32), squeezed=squeezed, labels=labels,
                         defense=chosen.name, squeezer=squeezer.spec, delta=delta)
