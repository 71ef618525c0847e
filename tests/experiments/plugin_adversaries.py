"""A user's own adversary, as a plugin module beside a configuration: ``kind =
"plugin_adversaries:NoisyTransfer"`` (tests/experiments and docs/running-at-scale.md)."""

from __future__ import annotations

import attrs
import torch

from evcsa.adversaries import Adversary


@attrs.frozen(kw_only=True)
class NoisyTransfer(Adversary):
    """Adds uniform noise of size ``strength`` (from the adversary's own generator) to the
    first N natural samples and submits them; one Classify query per sample first."""

    strength: float = 0.3

    def play(self, oracles, knowledge):
        n = knowledge.n_chosen
        x = knowledge.samples[:n]
        noise = (torch.rand(x.shape, generator=knowledge.generator) * 2 - 1) * self.strength
        x_adv = (x + noise).clamp(0, 1)
        oracles.classify(x_adv)
        oracles.attack_batch(list(range(n)), x_adv)
