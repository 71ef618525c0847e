"""Cases C05–C09 of shared/cases.md, attack side (the adversary side is in
tests/adversaries)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from evcsa.attacks import (
    ATTACKS,
    GradientMonitor,
    GradientWarning,
    bim,
    cw_l2,
    cw_margin,
    evaluate_adversarial,
    evaluate_attack,
    fgsm,
    run_attack,
    to_uint8_grid,
)
from evcsa.attacks._common import input_gradient, random_start
from evcsa.defenses import ModelClassifier
from evcsa.defenses.base import Classifier, Defense
from evcsa.distances import distance, within_epsilon
from tests.attacks.tiny_models import FAST, AlwaysReject, LinearLogits, Spy


# -- helpers ------------------------------------------------------------------------------

def _one_bit(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x)


class _Squeezed(Defense):
    """logits of the base on g(x) = 1-bit squeeze; BPDA (identity backward) or plain autograd."""

    def __init__(self, base, *, bpda: bool, outer=None) -> None:
        super().__init__(base)
        self.bpda = bpda
        self.outer = outer

    def _g(self, x):
        if self.bpda:
            return x + (_one_bit(x.detach()) - x).detach()
        return _one_bit(x)

    def predict(self, x):
        with torch.no_grad():
            return self.surrogate_logits(x).argmax(dim=1)

    def surrogate_logits(self, x):
        u = self._g(x)
        if self.outer is not None:
            u = self.outer(u)
        return self.base.surrogate_logits(u)


def _witness(w, x):
    model = ModelClassifier(LinearLogits(w), num_classes=2)
    return model, torch.tensor(x, dtype=torch.float32).view(1, 1, 1, -1)


# -- C05 ----------------------------------------------------------------------------------

def test_c05_plain_autograd_through_a_squeezer_gives_zero_and_is_flagged():
    """C05: logits w·g(x), g = 1-bit squeeze, w = (1, −2, 3), x = (0.3, 0.6, 0.9): plain
    autograd gives 0 — recorded as an all-zero gradient, and FGSM warns instead of passing
    the unchanged sample off as robustness."""
    model, x = _witness([1.0, -2.0, 3.0], [0.3, 0.6, 0.9])
    plain = _Squeezed(model, bpda=False)
    monitor = GradientMonitor(1)
    grad, _, _ = input_gradient(plain, x, lambda z: z[:, 0], monitor=monitor)
    assert torch.equal(grad.flatten(), torch.zeros(3))
    health = monitor.health()
    assert health.all_zero.tolist() == [True] and not health.ok
    with pytest.warns(GradientWarning, match="only zero gradients"):
        out = fgsm(plain, x, torch.tensor([1]), epsilon=0.1)
    assert torch.equal(out, x)


def test_c05_bpda_gives_the_identity_gradient():
    """C05: with BPDA (identity backward) the same gradient is w = (1, −2, 3)."""
    model, x = _witness([1.0, -2.0, 3.0], [0.3, 0.6, 0.9])
    grad, _, _ = input_gradient(_Squeezed(model, bpda=True), x, lambda z: z[:, 0])
    assert grad.flatten().tolist() == [1.0, -2.0, 3.0]


def test_c05_bpda_chain_takes_the_outer_derivative_at_the_squeezed_point():
    """C05: g2(g1(x)), g1 = 1-bit squeeze with identity backward, g2(u) = u², x = 0.8:
    gradient 2·g1(0.8) = 2.0 (evaluating g2′ at the raw x would give 1.6)."""
    model, x = _witness([1.0], [0.8])
    chain = _Squeezed(model, bpda=True, outer=lambda u: u * u)
    grad, _, _ = input_gradient(chain, x, lambda z: z[:, 0])
    assert grad.item() == pytest.approx(2.0)


def test_c05_missing_gradient_path_is_flagged_not_robustness():
    """C05: an output that does not depend differentiably on x (a detached surrogate) is a
    missing gradient: flagged in the health record and in the evaluation."""

    class Detached(Defense):
        def predict(self, x):
            return self.base.predict(x)

        def surrogate_logits(self, x):
            return self.base.surrogate_logits(x).detach()

    model, x = _witness([1.0, -2.0, 3.0], [0.3, 0.6, 0.9])
    ev = evaluate_attack("bim", Detached(model), x, torch.tensor([1]))
    assert ev.health.missing.tolist() == [True]
    assert ev.gradient_flagged.tolist() == [True]
    assert "no gradient path" in ev.summary()


def test_c05_nan_gradients_are_zeroed_for_the_step_and_flagged():
    """C05 (the whole kind): a NaN gradient neither poisons the iterate nor passes silently."""

    class NaNGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return torch.full_like(g, float("nan"))

    class Poisoned(Defense):
        def predict(self, x):
            return self.base.predict(x)

        def surrogate_logits(self, x):
            return self.base.surrogate_logits(NaNGrad.apply(x))

    model, x = _witness([1.0, -2.0, 3.0], [0.3, 0.6, 0.9])
    monitor = GradientMonitor(1)
    out = bim(Poisoned(model), x, torch.tensor([1]), epsilon=0.1, step_size=0.05, steps=3, monitor=monitor)
    assert bool(torch.isfinite(out).all()) and torch.equal(out, x)
    assert monitor.health().nonfinite.tolist() == [True]


# -- C06 ----------------------------------------------------------------------------------

def test_c06_bim_iterates_stay_in_the_box_and_the_ball():
    """C06: linear model with loss-gradient sign (−1, +1, +1), x = (0.0, 0.98, 0.5), ε = 0.1
    (L∞), step 0.05, 4 steps: every queried point lies in [0, 1] and within ε; the final
    point is (0.0, 1.0, 0.6)."""
    model, x = _witness([-1.0, 1.0, 1.0], [0.0, 0.98, 0.5])
    spy = Spy(model)
    out = bim(spy, x, torch.tensor([1]), epsilon=0.1, step_size=0.05, steps=4)
    assert out.flatten().tolist() == pytest.approx([0.0, 1.0, 0.6], abs=1e-7)
    assert len(spy.queries) == 4
    for q in spy.queries:
        assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
        assert float(distance(x, q, "linf")[0]) <= 0.1 + 1e-7


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_c06_random_start_is_clipped_before_the_first_gradient(norm):
    """C06: the random start is projected onto [0, 1] and the ε-ball before the model sees it."""
    model, x = _witness([-1.0, 1.0, 1.0], [0.0, 0.98, 0.5])
    spy = Spy(model)
    eps = 0.1 if norm == "linf" else 0.15
    bim(spy, x.repeat(64, 1, 1, 1), torch.ones(64, dtype=torch.int64), epsilon=eps, step_size=0.05, steps=2,
        norm=norm, random_start=True, generator=torch.Generator().manual_seed(1))
    first = spy.queries[0]
    assert not torch.equal(first, x.repeat(64, 1, 1, 1))
    for q in spy.queries:
        assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
        assert bool(within_epsilon(distance(x.repeat(64, 1, 1, 1), q, norm), eps, norm).all())


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("linf", 0.1), ("l2", 1.5), ("l2", 0.5)])
def test_c06_projected_points_pass_the_game_epsilon_check(norm, eps):
    """C06: a correctly projected float32 point is never rejected by the game's ε check
    (tolerance 1e-6), random start and rounding to the uint8 grid included."""
    g = torch.Generator().manual_seed(3)
    x = torch.round(torch.rand((200, 1, 8, 8), generator=g) * 255) / 255
    start = random_start(x, eps, norm, g)
    far = (x + (torch.rand(x.shape, generator=g) * 2 - 1)).clamp(0, 1)
    from evcsa.attacks import project

    for pt in (start, project(far, x, eps, norm), to_uint8_grid(project(far, x, eps, norm), x, epsilon=eps,
                                                                  norm=norm)):
        assert bool(within_epsilon(distance(x, pt, norm), eps, norm).all())
        assert float(pt.min()) >= 0.0 and float(pt.max()) <= 1.0


def test_c06_uint8_rounding_never_leaves_the_ball_at_a_half_step_epsilon():
    """ε = 0.3 is 76.5 grid steps: plain rounding of x + 0.3 can land 0.5/255 outside the
    ball; to_uint8_grid rounds towards x there instead."""
    x = (torch.arange(0, 180, dtype=torch.float32) / 255).view(-1, 1, 1, 1)
    x_adv = torch.cat([(x + 0.3).clamp(0, 1), (x - 0.3).clamp(0, 1)])
    x = torch.cat([x, x])
    naive = torch.round(x_adv * 255) / 255
    assert not bool(within_epsilon(distance(x, naive, "linf"), 0.3, "linf").all())
    fixed = to_uint8_grid(x_adv, x, epsilon=0.3, norm="linf")
    assert bool(within_epsilon(distance(x, fixed, "linf"), 0.3, "linf").all())
    assert torch.equal(torch.round(fixed * 255) / 255, fixed)


# -- C07 ----------------------------------------------------------------------------------

def test_c07_cw_margin_with_negative_logits():
    """C07: logits (−1, −2, −3), true label 0, κ = 0: untargeted f = 1; targeted at class 2:
    f = 2 (a one-hot multiply before the max would give 0 and 1)."""
    z = torch.tensor([[-1.0, -2.0, -3.0]])
    assert cw_margin(z, torch.tensor([0]), confidence=0.0).item() == 1.0
    assert cw_margin(z, torch.tensor([2]), confidence=0.0, targeted=True).item() == 2.0
    assert cw_margin(z, torch.tensor([1]), confidence=0.5).item() == -0.5


def test_c07_cw_attack_is_unchanged_by_a_negative_shift_of_all_logits(digits):
    """C07, the whole kind: shifting every logit by −100 (all negative) changes no margin,
    so C&W must find the same adversarial points instead of stopping early."""
    model, x, y = digits

    class Shifted(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, v):
            return self.net(v) - 100.0

    shifted = ModelClassifier(Shifted(model.module), num_classes=10)
    params = FAST["cw_l2_next"]
    target = (y + 1) % 10
    a = cw_l2(model, x, y, target=target, **params)
    b = cw_l2(shifted, x, y, target=target, **params)
    ev = evaluate_adversarial(model, x, y, b, target=target)
    assert ev.success_rate >= 0.9
    assert torch.allclose(a, b, atol=1e-3)


# -- C08 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fgsm", "bim", "deepfool"])
def test_c08_untargeted_attacks_move_x_away_from_the_true_label(name, digits):
    """C08: untargeted with the true label given, the attack must move x (returning x
    unchanged is a failure) and the success is C(x′) ≠ y."""
    model, x, y = digits
    out = ATTACKS[name](model, x, y)
    moved = (out != x).flatten(1).any(dim=1)
    assert bool(moved.all())
    ev = evaluate_adversarial(model, x, y, out)
    assert ev.success_rate >= 0.6
    null = evaluate_adversarial(model, x, y, x)
    assert null.success_rate == 0.0


def test_c08_targeted_landing_elsewhere_is_a_targeted_failure():
    """C08: targeted at t = 2, landing in class 1 (true class 0): a targeted failure,
    reported separately as an untargeted success, never as a targeted one."""

    class Fixed(Classifier):
        num_classes = 3
        device = torch.device("cpu")
        model = None

        def predict(self, x):
            return torch.where(x.flatten(1)[:, 0] > 0.5, 1, 0)

    x = torch.zeros(1, 1, 1, 2)
    x_adv = torch.ones(1, 1, 1, 2)
    ev = evaluate_adversarial(Fixed(), x, [0], x_adv, target=[2])
    assert ev.success.tolist() == [False]
    assert ev.untargeted_success.tolist() == [True]
    assert ev.success_rate == 0.0


# -- C09 ----------------------------------------------------------------------------------

class _Constant(Classifier):
    """Predicts fixed labels for x (the first call) and others for anything else."""

    num_classes = 10
    device = torch.device("cpu")
    model = None

    def __init__(self, clean, adv):
        self.clean, self.adv = torch.as_tensor(clean), torch.as_tensor(adv)

    def predict(self, x):
        return self.clean.clone() if bool((x == 0).all()) else self.adv.clone()


def test_c09_null_attack_success_is_over_the_initially_correct():
    """C09: an attack returning x unchanged on 10 samples of which the model gets 3 wrong:
    success 0/7 (the denominator is the initially correct samples)."""
    y = torch.arange(10) % 10
    clean = y.clone()
    clean[:3] = (y[:3] + 1) % 10
    x = torch.zeros(10, 1, 2, 2)
    ev = evaluate_adversarial(_Constant(clean, clean), x, y, x.clone())
    est = ev.success_estimate()
    assert (est.successes, est.trials) == (0, 7)
    assert ev.success_rate == 0.0
    assert ev.adversarial_accuracy == pytest.approx(0.7)


def test_c09_success_is_rechecked_on_the_defended_classifier(digits):
    """C09: BIM succeeds on the model, but the defended classifier (here one that undoes
    everything: predicts y) decides — success 0."""
    model, x, y = digits

    class Oracle(Defense):
        def predict(self, v):
            return y.clone()

    ev = evaluate_attack("bim", Oracle(model), x, y, model=model)
    assert ev.success_rate == 0.0
    on_model = evaluate_attack("bim", model, x, y)
    assert on_model.success_rate > 0.5


def test_c09_none_and_nan_outputs_are_counted_logged_failures(digits, caplog):
    """C09: an attack that produces no sample (None) or NaN for some is a counted failure,
    logged, not a crash; the denominator keeps them."""
    model, x, y = digits

    def returns_none(model, x, y, **kw):
        return None

    def half_nan(model, x, y, **kw):
        out = ATTACKS["bim"](model, x, y)
        out[::2] = float("nan")
        return out

    with caplog.at_level(logging.WARNING, logger="evcsa.attacks"):
        ev_none = evaluate_attack(returns_none, model, x, y)
        ev_nan = evaluate_attack(half_nan, model, x, y)
    assert ev_none.failed.all() and ev_none.success_rate == 0.0
    assert ev_none.success_estimate().trials == len(y)
    assert ev_nan.failed.tolist() == [i % 2 == 0 for i in range(len(y))]
    assert not ev_nan.success[::2].any()
    assert ev_nan.success_estimate().trials == len(y)
    assert "returned no samples" in caplog.text and "no usable sample" in caplog.text


def test_c09_out_of_range_output_is_a_failure_not_clipped_into_success(digits, caplog):
    model, x, y = digits

    def overshoot(model, x, y, **kw):
        return x + 2.0

    with caplog.at_level(logging.WARNING, logger="evcsa.attacks"):
        crafted = run_attack(overshoot, model, x, y)
    assert crafted.failed.all()
    assert torch.equal(crafted.x_adv, x)


def test_c09_a_rejecting_defense_stays_in_the_denominator(digits):
    """C09: rejections (REJECTED = −1) are no success and stay counted."""
    model, x, y = digits

    class RejectAdversarial(Defense):
        def predict(self, v):
            natural = (v.unsqueeze(0) == x.unsqueeze(1)).flatten(2).all(dim=2).any(dim=1) if v.shape == x.shape \
                else torch.zeros(v.shape[0], dtype=torch.bool)
            pred = self.base.predict(v)
            return torch.where(natural, pred, torch.full_like(pred, -1))

    ev = evaluate_attack("bim", RejectAdversarial(model), x, y, model=model)
    assert ev.initially_correct.all()
    assert ev.rejected.all()
    assert ev.success_rate == 0.0 and ev.success_estimate().trials == len(y)
    # a defense that rejects even the natural samples: none initially correct, and it says so
    ev2 = evaluate_attack("fgsm", AlwaysReject(model), x, y, model=model)
    assert not ev2.initially_correct.any() and np.isnan(ev2.success_rate)
