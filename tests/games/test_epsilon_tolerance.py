"""The ε check's float tolerance, wherever ε is judged: the game (with its own stated
tolerance, not the default), rejudge, and the attack evaluation (issue 27 item 9: the check
without its tolerance was a planted fault the suite must catch at each of them)."""

import pytest
import torch

from evcsa.attacks.evaluation import evaluate_adversarial
from evcsa.defenses import ModelClassifier
from evcsa.games import EVCSA, Rules, rejudge
from evcsa.testing import PixelCodeModel, coded_samples

K = 10
EPS = 0.1


def _pair(over: float):
    """(x, x′) at L∞ distance ε + ``over`` (float32), x′ classified as another class."""
    y = torch.tensor([2])
    x = coded_samples(y)
    x[0, 0, 1, 1] = 0.6
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = (3 + 0.5) / K
    x_adv[0, 0, 1, 1] = torch.tensor(0.6, dtype=torch.float32) + torch.tensor(EPS + over, dtype=torch.float32)
    return x, x_adv, y


def _model():
    return ModelClassifier(PixelCodeModel(K), num_classes=K)


def test_a_projected_point_is_within_epsilon_everywhere():
    """0.6 + 0.1 in float32 is 2.4e-8 farther than ε from 0.6: inside the tolerance."""
    x, x_adv, y = _pair(0.0)
    d = float((x_adv.double() - x.double()).abs().max())
    assert d > EPS, "the float32 point lies beyond ε (the case the tolerance exists for)"
    game = EVCSA(_model(), x, y, n_chosen=1, epsilon=EPS)
    s = game.start()
    s.oracles.attack(0, x_adv[0])
    assert s.transcript[0].within_epsilon and s.successes == 1
    assert rejudge(_model(), x_adv, x, y, Rules(n_chosen=1, epsilon=EPS), draws=1).tolist() == [1]
    ev = evaluate_adversarial(_model(), x, y, x_adv, epsilon=EPS)
    assert bool(ev.within_epsilon[0]) and bool(ev.success[0])


@pytest.mark.parametrize("tolerance, inside", [(1e-4, True), (1e-6, False)])
def test_the_games_own_tolerance_is_used(tolerance, inside):
    """5e-5 beyond ε: inside a game stating tolerance 1e-4, outside the default 1e-6 — in the
    game and in rejudge alike."""
    x, x_adv, y = _pair(5e-5)
    rules = Rules(n_chosen=1, epsilon=EPS, tolerance=tolerance)
    s = EVCSA.from_rules(_model(), x, y, rules).start()
    s.oracles.attack(0, x_adv[0])
    assert s.transcript[0].within_epsilon is inside and s.successes == int(inside)
    assert rejudge(_model(), x_adv, x, y, rules, draws=1).tolist() == [int(inside)]
    ev = evaluate_adversarial(_model(), x, y, x_adv, epsilon=EPS, tolerance=tolerance)
    assert bool(ev.within_epsilon[0]) is inside
