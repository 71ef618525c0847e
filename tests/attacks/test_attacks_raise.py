"""Every error path of evcsa.attacks: a clear "expected …, got …" InvalidParameter."""

from __future__ import annotations

import pytest
import torch

from evcsa.attacks import (
    ATTACKS,
    AttackSpec,
    GradientMonitor,
    bim,
    cw_l0,
    cw_l2,
    cw_linf,
    deepfool,
    evaluate_adversarial,
    evaluate_attack,
    fgsm,
    get_attack,
    jsma,
    next_class,
    resolve_targets,
    run_attack,
)
from evcsa.defenses.base import Classifier, Defense
from evcsa.errors import InvalidParameter

ALL = [fgsm, bim, cw_l2, cw_linf, cw_l0, deepfool, jsma]


@pytest.fixture
def small(digits):
    model, x, y = digits
    return model, x[:2], y[:2]


@pytest.mark.parametrize("attack", ALL, ids=lambda f: f.__name__)
def test_bad_inputs_are_rejected_by_every_attack(attack, small):
    model, x, y = small
    with pytest.raises(InvalidParameter, match="expected model as a Classifier or torch.nn.Module"):
        attack(object(), x, y)
    with pytest.raises(InvalidParameter, match=r"expected x of shape \[B, C, H, W\]"):
        attack(model, x[0], y)
    with pytest.raises(InvalidParameter, match=r"expected x values in \[0, 1\]"):
        attack(model, x + 2.0, y)
    with pytest.raises(InvalidParameter, match="expected x with finite values"):
        attack(model, x * float("nan"), y)
    with pytest.raises(InvalidParameter, match="expected 2 y, got 3"):
        attack(model, x, torch.tensor([0, 1, 2]))
    with pytest.raises(InvalidParameter, match=r"expected y in \[0, 9\]"):
        attack(model, x, torch.tensor([0, 10]))
    with pytest.raises(InvalidParameter, match="expected y as integer class indices"):
        attack(model, x, torch.tensor([0.0, 1.0]))
    with pytest.raises(InvalidParameter, match="expected generator as a torch.Generator"):
        attack(model, x, y, generator=3)
    if attack is not deepfool:
        with pytest.raises(InvalidParameter, match=r"expected target in \[0, 9\]"):
            attack(model, x, y, target=torch.tensor([0, 11]))
        # C08: a target equal to the true label is no targeted attack (x itself "succeeds")
        with pytest.raises(InvalidParameter, match=r"expected targets different from the true labels, "
                                                   r"got target = y at position\(s\) \[1\]"):
            attack(model, x, y, target=torch.stack([(y[0] + 1) % 10, y[1]]))


@pytest.mark.parametrize("attack,kwargs,message", [
    (fgsm, {"epsilon": -0.1}, "expected epsilon as a finite number ≥ 0, got -0.1"),
    (fgsm, {"epsilon": float("nan")}, "expected epsilon as a finite number"),
    (fgsm, {"epsilon": "0.3"}, "expected epsilon as a finite number ≥ 0, got .0.3."),
    (fgsm, {"norm": "l0"}, "expected norm in"),
    (fgsm, {"loss": "hinge"}, "expected loss in"),
    (bim, {"steps": 0}, "expected steps ≥ 1"),
    (bim, {"steps": 2.5}, "expected steps as an integer"),
    (bim, {"step_size": 0.0}, "expected step_size > 0"),
    (bim, {"confidence": -1.0}, "expected confidence ≥ 0"),
    (cw_l2, {"learning_rate": 0.0}, "expected learning_rate > 0"),
    (cw_l2, {"binary_search_steps": 0}, "expected binary_search_steps ≥ 1"),
    (cw_l2, {"initial_const": -1.0}, "expected initial_const > 0"),
    (cw_linf, {"decrease_factor": 1.0}, "expected decrease_factor < 1"),
    (cw_linf, {"const_factor": 1.0}, "expected const_factor > 1"),
    (cw_l0, {"max_iterations": 0}, "expected max_iterations ≥ 1"),
    (cw_l0, {"largest_const": 0.0}, "expected largest_const > 0"),
    (deepfool, {"candidates": 1}, "expected candidates ≥ 2"),
    (deepfool, {"overshoot": -0.1}, "expected overshoot ≥ 0"),
    (jsma, {"theta": 0.0}, "expected theta ≠ 0"),
    (jsma, {"theta": 2.0}, "expected theta ≤ 1"),
    (jsma, {"gamma": 0.0}, "expected gamma > 0"),
    # 8×8 digits: ⌊0.02 · 64 / 2⌋ = 0 iterations would return x untouched, silently
    (jsma, {"gamma": 0.02}, r"expected gamma · C·H·W / 2 ≥ 1 \(at least one iteration\), got gamma = 0.02 for 64"),
])
def test_bad_parameters(attack, kwargs, message, small):
    model, x, y = small
    with pytest.raises(InvalidParameter, match=message):
        attack(model, x, y, **kwargs)


def test_deepfool_refuses_a_target(small):
    model, x, y = small
    with pytest.raises(InvalidParameter, match="DeepFool is an untargeted attack"):
        deepfool(model, x, y, target=(y + 1) % 10)


def test_classifier_without_a_differentiable_surrogate(small):
    model, x, y = small

    class NoGradient(Defense):
        def predict(self, v):
            return self.base.predict(v)

    with pytest.raises(InvalidParameter, match="differentiable surrogate_logits"):
        fgsm(NoGradient(model), x, y)

    class WrongShape(Defense):
        def predict(self, v):
            return self.base.predict(v)

        def surrogate_logits(self, v):
            return self.base.surrogate_logits(v)[:1]

    with pytest.raises(InvalidParameter, match=r"expected surrogate_logits to return scores \[B, K\] with B = 2"):
        bim(WrongShape(model), x, y)


def test_registry_errors(small):
    model, x, y = small
    with pytest.raises(InvalidParameter, match="expected an attack name in"):
        get_attack("cw_l3")
    with pytest.raises(InvalidParameter, match="expected an attack"):
        get_attack(3)
    with pytest.raises(InvalidParameter, match="expected targeting in"):
        AttackSpec(name="x", attack=fgsm, targeting="random")
    with pytest.raises(InvalidParameter, match="expected attack as a callable"):
        AttackSpec(name="x", attack=3)
    with pytest.raises(InvalidParameter, match="expected params as a mapping"):
        AttackSpec(name="x", attack=fgsm, params=[1])
    with pytest.raises(InvalidParameter, match="expected targeting in"):
        resolve_targets("farthest", model, x, y)
    with pytest.raises(InvalidParameter, match="expected num_classes as an integer ≥ 2"):
        next_class(y, 1)
    with pytest.raises(InvalidParameter, match="expected batch_size ≥ 1"):
        run_attack("fgsm", model, x, y, batch_size=0)
    with pytest.raises(TypeError):
        ATTACKS["fgsm"](model, x, y, no_such_parameter=1)


def test_unknown_attack_parameters_are_named_before_any_work(small):
    """A misspelt parameter stored in a spec (or passed to run_attack) is named at once,
    not a TypeError from deep inside a later run; a callable taking **params takes any."""
    model, x, y = small
    with pytest.raises(InvalidParameter, match=r"expected parameters of fgsm among \[.*'epsilon'.*\], got unknown \['eps'\]"):
        AttackSpec(name="x", attack=fgsm, params={"eps": 0.1})
    with pytest.raises(InvalidParameter, match=r"got unknown \['steps'\]"):
        ATTACKS["fgsm"].with_params(steps=3)
    with pytest.raises(InvalidParameter, match=r"expected parameters of bim among .*, got unknown \['stepsize'\]"):
        run_attack("bim", model, x, y, stepsize=0.1)
    with pytest.raises(InvalidParameter, match=r"got unknown \['monitor'\]"):
        ATTACKS["bim"].with_params(monitor=None)  # passed by the runner, not a parameter
    spec = AttackSpec(name="any", attack=lambda model, x, y, **params: x, params={"whatever": 1})
    assert spec.params == {"whatever": 1}


def test_evaluation_errors(small):
    model, x, y = small
    with pytest.raises(InvalidParameter, match="expected a classifier with predict"):
        evaluate_adversarial(object(), x, y, x)
    with pytest.raises(InvalidParameter, match="expected norm in"):
        evaluate_adversarial(model, x, y, x, norm="l1")
    with pytest.raises(InvalidParameter, match="expected failed as 2 booleans, got 3"):
        evaluate_adversarial(model, x, y, x, failed=[True, False, True])
    with pytest.raises(InvalidParameter, match="expected 2 target"):
        evaluate_adversarial(model, x, y, x, target=[1])
    with pytest.raises(InvalidParameter, match=r"targets different from the true labels.*\[0, 1\]"):
        evaluate_adversarial(model, x, y, x, target=y)  # would count C(x) = y as targeted successes

    class Wrong(Classifier):
        num_classes = 10
        device = torch.device("cpu")
        model = None

        def predict(self, v):
            return torch.full((v.shape[0],), 9)

    ev = evaluate_adversarial(Wrong(), x, torch.tensor([0, 1]), x)
    with pytest.raises(InvalidParameter, match="at least one initially correct sample"):
        ev.success_estimate()
    with pytest.raises(InvalidParameter, match="expected a classifier with predict"):
        evaluate_attack("fgsm", object(), x, y, model=model)


def test_gradient_monitor_errors():
    with pytest.raises(InvalidParameter, match="expected batch_size ≥ 1"):
        GradientMonitor(0)
    m = GradientMonitor(3)
    with pytest.raises(InvalidParameter, match="expected 2 gradients for the monitored samples, got 3"):
        m.observe(torch.zeros(3, 4), index=torch.tensor([0, 1]))
