"""Defended classifiers inside evcsa.games.EVCSA: twins, rejection, reproducible noise (C04)."""

from __future__ import annotations

import torch
from torch import nn

from evcsa.adversaries import Adversary
from evcsa.defenses import FeatureSqueezing, RandomizedSqueezing, RegionBasedClassification
from evcsa.games import EVCSA
from evcsa.randomness import DerivedKeys

from .conftest import NUM_CLASSES, images, master_keys, tiny_net


class _Recording(nn.Module):
    """Wraps a module and keeps the inputs of classifications (no-grad forward passes; the
    adversary's twin runs with gradients and its seeded keys are left out)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.seen.append(x.detach().clone())
        return self.inner(x)


class _EOTProbe(Adversary):
    """Takes one EOT gradient on the whitebox twin, classifies, then submits the sources
    moved a little along it (ε-bounded)."""

    def play(self, oracles, knowledge):
        x = knowledge.samples[: oracles.remaining].clone().requires_grad_(True)
        twin = knowledge.defense
        loss = sum(torch.nn.functional.cross_entropy(twin.surrogate_logits(x), knowledge.labels[: x.shape[0]])
                   for _ in range(3))
        (g,) = torch.autograd.grad(loss, x)
        oracles.classify(knowledge.samples[:2])
        x_adv = (x.detach() + 0.05 * g.sign()).clamp(0, 1)
        oracles.attack_batch(list(range(x.shape[0])), x_adv)
        return {"grad_abs_sum": float(g.abs().sum())}


def _game(classifier, n=4, **rules):
    x = images(6)
    y = torch.arange(6) % NUM_CLASSES
    return EVCSA(classifier, x, y, n_chosen=n, epsilon=0.05, knowledge="whitebox", **rules)


def test_randomized_squeezing_plays_with_a_whitebox_twin():
    rs = RandomizedSqueezing(tiny_net(), "median-2x2", 0.2, keys=master_keys())
    game = _game(rs)
    k = game.knowledge(seed=1)
    assert isinstance(k.defense, RandomizedSqueezing) and k.defense is not rs
    assert k.defense.keys is not rs.keys and k.defense.delta == rs.delta
    result = game.play(_EOTProbe(), seed=1)
    assert result.submissions == 4 and result.classify_queries == 2
    assert result.report["grad_abs_sum"] > 0


def test_region_based_plays():
    rb = RegionBasedClassification(tiny_net(), 0.2, n_samples=40, keys=master_keys(), batch_size=64)
    result = _game(rb).play(_EOTProbe(), seed=2)
    assert result.submissions == 4 and 0 <= result.successes <= 4


def test_rejection_is_never_a_success():
    """A detector that flags everything: every x′ differs from its label's class (−1) but
    none counts as an untargeted success (C09 / DESIGN)."""
    fs = FeatureSqueezing(tiny_net(), "median-2x2", threshold=-1.0)
    result = _game(fs).play(_EOTProbe(), seed=3)
    assert result.submissions == 4 and result.successes == 0
    assert all(s.label == -1 for s in result.transcript)


def _noise_seen(keys) -> list[torch.Tensor]:
    rec = _Recording(tiny_net())
    rs = RandomizedSqueezing(rec, None, 0.1, keys=keys)
    _game(rs).play(_EOTProbe(), seed=5)
    return rec.seen


def test_c04_game_twice_with_master_key_is_identical_and_default_differs():
    """C04 in the game: the defense's inputs (x + noise) of a whole game repeat exactly with
    the same master key; with the default key source they differ from game to game and
    from query to query."""
    a = _noise_seen(DerivedKeys(b"M" * 16))
    b = _noise_seen(DerivedKeys(b"M" * 16))
    assert len(a) == len(b) > 1 and all(torch.equal(u, v) for u, v in zip(a, b))
    c, d = _noise_seen(None), _noise_seen(None)
    assert not any(torch.equal(u, v) for u, v in zip(c, d))
