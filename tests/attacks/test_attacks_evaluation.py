"""run_attack / evaluate_attack / GradientHealth: batching, ε checks, records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evcsa.attacks import GradientHealth, GradientMonitor, evaluate_adversarial, evaluate_attack, run_attack
from tests.attacks.tiny_models import FAST


def test_run_attack_in_batches_equals_one_batch(digits):
    model, x, y = digits
    whole = run_attack("cw_l2_ll", model, x, y, **FAST["cw_l2_ll"])
    parts = run_attack("cw_l2_ll", model, x, y, batch_size=5, **FAST["cw_l2_ll"])
    assert torch.allclose(whole.x_adv, parts.x_adv, atol=1e-4)
    assert torch.equal(whole.targets, parts.targets)
    assert len(parts.health) == len(y) and parts.health.ok
    assert int(parts.health.evaluations.min()) > 0


def test_an_attack_that_leaves_the_ball_does_not_succeed(digits):
    """The ε check is the evaluation's, not the attack's: a sample beyond ε is no success."""
    model, x, y = digits

    def too_far(model, x, y, **kw):
        return torch.where(x > 0.5, torch.zeros_like(x), torch.ones_like(x))

    ev = evaluate_attack(too_far, model, x, y, epsilon=0.3, norm="linf")
    assert not ev.within_epsilon.any()
    assert not ev.success.any()
    unbounded = evaluate_adversarial(model, x, y, too_far(model, x, y))
    assert unbounded.success.sum() > 0


def test_evaluate_attack_uses_the_spec_epsilon_and_rounds_to_the_grid(digits):
    model, x, y = digits
    xg = torch.round(x * 255) / 255
    ev = evaluate_attack("bim", model, xg, y, round_to_grid=True)
    assert ev.epsilon == 0.3 and ev.norm == "linf"
    assert ev.within_epsilon.all()
    assert ev.success_rate > 0.5


def test_gradient_health_record():
    m = GradientMonitor(3)
    m.observe(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    m.observe(torch.tensor([[0.0, 0.0], [0.0, 0.0]]), index=torch.tensor([0, 2]),
              nonfinite=torch.tensor([False, True]))
    h = m.health()
    assert h.evaluations.tolist() == [2, 1, 2]
    assert h.zero_evaluations.tolist() == [2, 0, 2]
    assert h.all_zero.tolist() == [True, False, True]
    assert h.flagged.tolist() == [True, False, True]
    assert "2 of 3 samples flagged" in h.summary() and "1 with NaN/inf" in h.summary()
    both = GradientHealth.concat([h, GradientHealth.clean(2)])
    assert len(both) == 5 and both.flagged.tolist() == [True, False, True, False, False]
    assert both.select([1, 3]).ok
    assert GradientHealth.clean(4).summary() == "gradients healthy for all 4 samples"


def test_evaluation_record_figures(digits):
    model, x, y = digits
    ev = evaluate_attack("fgsm", model, x, y)
    assert ev.n == len(y) and ev.clean_accuracy == 1.0
    assert ev.adversarial_accuracy == pytest.approx(float(np.mean(ev.predictions == ev.labels)))
    est = ev.success_estimate()
    assert est.value == pytest.approx(ev.success_rate) and est.low <= est.value <= est.high
    assert "adversarial accuracy" in ev.summary()
