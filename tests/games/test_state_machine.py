"""Hypothesis state machine over the EV-CSA game: random sequences of good and bad oracle
calls under random rules, with the invariants of evcsa.testing checked after every step
(q ≤ N, n ≤ q, freshness, bad calls change nothing, success exactly as the rule says)."""

from __future__ import annotations

import torch
from hypothesis import settings

from evcsa.defenses import ModelClassifier
from evcsa.games import EVCSA
from evcsa.randomness import DerivedKeys
from evcsa.testing import CoinFlipClassifier, PixelCodeModel, coded_samples, game_machine

K = 4
LABELS = torch.tensor([0, 1, 2, 3, 1, 2])
SAMPLES = coded_samples(LABELS, (1, 3, 3), num_classes=K)
SAMPLES[:, 0, 1:, :] = torch.linspace(0.0, 1.0, 6).view(6, 1, 1)  # some texture to perturb


def deterministic_game(rules):
    return EVCSA.from_rules(ModelClassifier(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, rules)


def randomized_game(rules):
    clf = CoinFlipClassifier(ModelClassifier(PixelCodeModel(K), num_classes=K),
                             keys=DerivedKeys(bytes(16)))
    return EVCSA.from_rules(clf, SAMPLES, LABELS, rules)


DeterministicMachine = game_machine(deterministic_game)
DeterministicMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=25,
                                                  deadline=None, derandomize=True)
TestDeterministicGame = DeterministicMachine.TestCase

RandomizedMachine = game_machine(randomized_game)
RandomizedMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=20,
                                               deadline=None, derandomize=True)
TestRandomizedGame = RandomizedMachine.TestCase
