"""ε-scaled default steps and the trivial-bound warning (issue 12, item 5)."""

from __future__ import annotations

import warnings

import pytest
import torch

from evcsa.attacks import ATTACKS, bim, fgsm
from evcsa.attacks.gradient_sign import default_step_size
from evcsa.defenses import ModelClassifier
from evcsa.distances import trivial_bound, warn_if_trivial
from evcsa.errors import TrivialEpsilonWarning


def _model():
    torch.manual_seed(0)  # test-local: the library never seeds
    return ModelClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), num_classes=10)


def test_bim_keeps_the_feature_squeezing_step_at_eps_03():
    assert default_step_size(0.3, 10) == 0.06
    assert "step_size" not in ATTACKS["bim"].params


def test_bim_default_step_scales_with_epsilon():
    """With the default step, BIM at ε moves at most 2ε/steps per step: after one step
    the L∞ move is exactly α = ε/5 (10 steps), whatever ε."""
    model = _model()
    x = torch.full((4, 1, 8, 8), 0.5)
    y = torch.zeros(4, dtype=torch.int64)
    for eps in (8 / 255, 0.1, 0.3):
        one = bim(model, x, y, epsilon=eps, steps=10, random_start=False)
        assert float((one - x).abs().max()) <= eps + 1e-6
        first = bim(model, x, y, epsilon=eps, step_size=None, steps=1)  # α = 2ε for one step: capped at ε
        assert float((first - x).abs().max()) == pytest.approx(eps, abs=1e-6)


@pytest.mark.parametrize("norm, shape, bound", [("linf", (1, 28, 28), 1.0), ("l2", (1, 8, 8), 8.0),
                                                 ("l0", (3, 4, 4), 48.0)])
def test_trivial_bound(norm, shape, bound):
    assert trivial_bound(norm, shape) == bound
    with pytest.warns(TrivialEpsilonWarning) as record:
        assert warn_if_trivial(bound, norm, shape)
    assert record[0].message.bound == bound and record[0].message.norm == norm
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_trivial(bound * 0.99, norm, shape)
        assert not warn_if_trivial(None, norm, shape)


def test_attacks_warn_at_the_trivial_bound():
    model = _model()
    x = torch.full((2, 1, 8, 8), 0.5)
    y = torch.zeros(2, dtype=torch.int64)
    with pytest.warns(TrivialEpsilonWarning, match="8/255"):
        bim(model, x, y, epsilon=8, steps=2)
    with pytest.warns(TrivialEpsilonWarning):
        fgsm(model, x, y, epsilon=40, norm="l2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrivialEpsilonWarning)
        bim(model, x, y, epsilon=0.3, steps=2)
