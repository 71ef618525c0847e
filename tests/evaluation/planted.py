"""Planted faulty defenses: each breaks one thing an evaluation relies on, so that the check
meant to catch it fires (tests/evaluation/test_checks.py). None of them is a real defense:
they classify like the model they wrap and fail only where their fault is."""

from __future__ import annotations

import torch

from evcsa.defenses import Defense
from evcsa.defenses.bpda import straight_through
from evcsa.randomness import KeySource, SystemKeys, keyed_integers, keyed_uniform


class GradientMasking(Defense):
    """A gradient-masking layer: the surrogate rounds its input to the uint8 grid with plain
    autograd (no BPDA), so every input gradient is identically zero (Athalye et al. 2018's
    obfuscated gradients). Classifies as the model."""

    randomized = False

    def predict(self, x):
        return self.base.predict(x)

    def surrogate_logits(self, x):
        return self.base.surrogate_logits(torch.round(x * 255) / 255)


class SaturatedLogits(Defense):
    """A saturating layer: the surrogate multiplies the logits by 1e6, so the cross-entropy's
    softmax is one-hot and its gradient underflows to zero on correctly classified inputs
    (defensive distillation's failure mode)."""

    randomized = False

    def predict(self, x):
        return self.base.predict(x)

    def surrogate_logits(self, x):
        return self.base.surrogate_logits(x).double() * 1e300


class WrongBPDA(Defense):
    """A defense that breaks BPDA: its preprocessing reflects the input (the true derivative
    is −1) while the surrogate's backward pass is the identity, so the whitebox gradient
    points the wrong way. It classifies as the model; graybox transfer beats the twin."""

    randomized = False

    def predict(self, x):
        return self.base.predict(x)

    def surrogate_logits(self, x):
        return self.base.surrogate_logits(2 * x.detach() - x)


class NoisyGradient(Defense):
    """A randomized defense whose gradient is a coin flip: each surrogate draw flips the sign
    of every image's gradient with probability 0.4 (keyed), and adds small keyed input noise
    (δ 0.02) to its forward pass. One draw's gradient is barely better than chance, so the
    attack keeps gaining with more EOT draws: not converged at a small budget."""

    randomized = True

    def __init__(self, base, keys: KeySource | None = None) -> None:
        super().__init__(base)
        self.keys = keys if keys is not None else SystemKeys()

    def with_keys(self, keys):
        return NoisyGradient(self._twin_base(keys), keys)

    def _noisy(self, x, key):
        return (x + keyed_uniform(key, tuple(x.shape), 0.02).to(x.device)).clamp(0, 1)

    def predict(self, x):
        return self.base.predict(self._noisy(torch.as_tensor(x), self.keys.next_key()))

    def predict_proba(self, x):
        return self.base.predict_proba(self._noisy(torch.as_tensor(x), self.keys.next_key()))

    def surrogate_logits(self, x):
        key = self.keys.next_key()
        flips = keyed_integers(key, (x.shape[0],), 10).to(x.device) < 4  # probability 0.4
        sign = torch.where(flips, -1.0, 1.0).view(-1, 1, 1, 1)
        steered = straight_through(x, x) * sign + x.detach() * (1 - sign)  # value x, gradient sign · I
        return self.base.surrogate_logits(self._noisy(steered, key))


class GlobalNoise(Defense):
    """A randomized defense that holds a key source but draws its noise from torch's global
    generator: its twin draws what the game's classifier draws whenever the global state
    matches (an adversary that seeds torch controls the defense's noise)."""

    randomized = True

    def __init__(self, base, delta: float = 0.1, keys: KeySource | None = None) -> None:
        super().__init__(base)
        self.delta = delta
        self.keys = keys if keys is not None else SystemKeys()

    def with_keys(self, keys):
        return GlobalNoise(self._twin_base(keys), self.delta, keys)

    def _noisy(self, x):
        x = torch.as_tensor(x)
        return (x + (torch.rand(x.shape) * 2 - 1).to(x.device) * self.delta).clamp(0, 1)

    def predict(self, x):
        return self.base.predict(self._noisy(x))

    def predict_proba(self, x):
        return self.base.predict_proba(self._noisy(x))

    def surrogate_logits(self, x):
        return self.base.surrogate_logits(self._noisy(x))


class FixedSeedNoise(GlobalNoise):
    """A randomized defense whose noise comes from a generator re-seeded with 0 on every
    call: every twin, and every game, draws the same noise."""

    def with_keys(self, keys):
        return FixedSeedNoise(self._twin_base(keys), self.delta, keys)

    def _noisy(self, x):
        x = torch.as_tensor(x)
        g = torch.Generator().manual_seed(0)
        return (x + (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * self.delta).clamp(0, 1)


class SelfTwin(GlobalNoise):
    """A randomized defense whose twin is itself (the adversary would hold the defense's key
    source): the game refuses whitebox knowledge against it."""

    def with_keys(self, keys):
        return self

    def _noisy(self, x):
        x = torch.as_tensor(x)
        noise = keyed_uniform(self.keys.next_key(), tuple(x.shape), self.delta).to(x.device)
        return (x + noise).clamp(0, 1)
