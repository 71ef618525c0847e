"""One table of attacks (the registry) run against the tiny digits model: behaviour, not
golden numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evcsa.attacks import (
    ATTACKS,
    TABLE1,
    GradientMonitor,
    evaluate_attack,
    least_likely,
    next_class,
    run_attack,
)
from evcsa.distances import distance
from tests.attacks.tiny_models import FAST, Spy

NAMES = list(ATTACKS)


def test_registry_holds_the_eleven_attacks_of_seed_002_table_1_in_order():
    labels = [ATTACKS[n].label for n in TABLE1]
    assert labels == ["FGSM", "BIM", "CW∞ Next", "CW∞ LL", "DeepFool", "CW2 Next", "CW2 LL",
                      "CW0 Next", "CW0 LL", "JSMA Next", "JSMA LL"]
    assert ATTACKS["fgsm"].params["epsilon"] == 0.3
    assert dict(ATTACKS["bim"].params) == {"epsilon": 0.3, "steps": 10}  # step 2ε/steps = 0.06
    assert all(ATTACKS[n].params["confidence"] == 10.0 for n in NAMES if n.startswith("cw"))
    assert dict(ATTACKS["jsma_next"].params) == {"theta": 1.0, "gamma": 0.1}
    assert {ATTACKS[n].targeting for n in NAMES if n.endswith("_ll")} == {"least_likely"}
    assert {ATTACKS[n].targeting for n in NAMES if n.endswith("_next")} == {"next"}


@pytest.mark.parametrize("name", NAMES)
def test_attack_output_is_a_valid_batch_on_the_model_device(name, digits):
    model, x, y = digits
    spec = ATTACKS[name]
    x_before = x.clone()
    monitor = GradientMonitor(x.shape[0])
    out = spec(model, x, y, monitor=monitor, generator=torch.Generator().manual_seed(0), **FAST[name])
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == model.device
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(x, x_before), "the attack must not modify its input"
    assert monitor.health().ok
    if spec.epsilon is not None:
        assert float(distance(x, out, spec.norm).max()) <= spec.epsilon + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_attack_queries_the_model_only_inside_the_box(name, digits):
    """Every point the model sees lies in [0, 1] (and within ε for bounded attacks)."""
    model, x, y = digits
    spy = Spy(model)
    spec = ATTACKS[name]
    spec(spy, x[:4], y[:4], **FAST[name])
    assert spy.queries
    for q in spy.queries:
        assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
        if spec.epsilon is not None and q.shape[0] == 4:
            assert float(distance(x[:4], q, spec.norm).max()) <= spec.epsilon + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_attack_results_do_not_depend_on_the_batch(name, digits):
    """A sample's result is the same alone and inside a batch (no batch-coupled stopping,
    no shared step sizes); floats may differ by round-off only."""
    model, x, y = digits
    spec = ATTACKS[name]
    xs, ys = x[:5], y[:5]
    together = spec(model, xs, ys, **FAST[name])
    alone = torch.cat([spec(model, xs[i:i + 1], ys[i:i + 1], **FAST[name]) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-4), float((together - alone).abs().max())


@pytest.mark.parametrize("name", NAMES)
def test_attack_succeeds_often_on_the_tiny_model(name, digits):
    """The success re-checked by the model, over initially correct samples: every attack
    beats the null attack (0 %) clearly on a small undefended model."""
    model, x, y = digits
    ev = evaluate_attack(name, model, x, y, **FAST[name])
    assert ev.initially_correct.all()
    floor = 0.25 if name.startswith("jsma") else 0.6
    assert ev.success_rate >= floor, ev.summary()
    assert not ev.failed.any()


def test_targets_next_and_least_likely(digits):
    model, x, y = digits
    assert torch.equal(next_class(y, 10), (y + 1) % 10)
    ll = least_likely(model, x)
    logits = model.logits(x)
    assert torch.equal(ll, logits.argmin(dim=1))
    ll_excl = least_likely(model, x, y)
    assert bool((ll_excl != y).all())
    # on correctly classified samples excluding y changes nothing
    assert torch.equal(ll_excl, ll)


@pytest.mark.parametrize("name", ["cw_l2_next", "jsma_ll", "cw_linf_ll"])
def test_targeted_attacks_use_the_spec_targets(name, digits):
    model, x, y = digits
    crafted = run_attack(name, model, x, y, **FAST[name])
    expected = next_class(y, 10) if name.endswith("next") else least_likely(model, x, y)
    assert torch.equal(crafted.targets, expected.cpu())


def test_bim_random_start_uses_only_the_given_generator(digits):
    model, x, y = digits
    state = torch.get_rng_state()
    a = ATTACKS["bim"](model, x, y, random_start=True, generator=torch.Generator().manual_seed(5))
    b = ATTACKS["bim"](model, x, y, random_start=True, generator=torch.Generator().manual_seed(5))
    c = ATTACKS["bim"](model, x, y, random_start=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), state), "the global generator must not be touched"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_jsma_changes_at_most_its_feature_budget(digits):
    model, x, y = digits
    for gamma in (0.1, 0.3):
        out = ATTACKS["jsma_next"](model, x, y, gamma=gamma)
        changed = (out != x).flatten(1).sum(dim=1)
        assert int(changed.max()) <= 2 * math.floor(64 * gamma / 2)


def test_cw_l2_more_binary_search_steps_never_increase_the_distortion(digits):
    """C&W keeps the closest adversarial point over all values of c; the first search step is
    the same with 1 or 4 steps, so 4 steps can only lower each sample's distance."""
    model, x, y = digits
    params = {k: v for k, v in FAST["cw_l2_next"].items() if k != "binary_search_steps"}
    one = evaluate_attack("cw_l2_next", model, x, y, binary_search_steps=1, **params)
    four = evaluate_attack("cw_l2_next", model, x, y, binary_search_steps=4, **params)
    assert one.success.any()
    assert np.all(four.success[one.success])
    assert np.all(four.distances[one.success] <= one.distances[one.success] + 1e-6)
    assert four.distances[one.success].mean() < one.distances[one.success].mean()


def test_round_to_grid_parameter_rounds_within_epsilon(digits):
    model, x, y = digits
    xg = torch.round(x * 255) / 255
    out = ATTACKS["bim"](model, xg, y, round_to_grid=True)
    assert torch.equal(torch.round(out * 255) / 255, out)
    assert float(distance(xg, out, "linf").max()) <= 0.3 + 1e-6
    out2 = ATTACKS["cw_l2_next"](model, x, y, round_to_grid=True, **FAST["cw_l2_next"])
    assert torch.equal(torch.round(out2 * 255) / 255, out2)


@pytest.mark.parametrize("name", ["cw_l2_next", "cw_linf_next", "cw_l0_next"])
def test_cw_falls_back_to_a_low_confidence_success_when_kappa_is_out_of_reach(name, digits):
    """With κ = 1000 no point is confident enough; the attack returns the closest iterate
    that still reaches the target (never x, never a grey image)."""
    model, x, y = digits
    ev = evaluate_attack(name, model, x[:4], y[:4], confidence=1000.0, **FAST[name])
    assert ev.success.all(), ev.summary()
