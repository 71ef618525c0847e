"""C&W schedules (issue 11): the reference schedule is bit-for-bit what it was before the
loops were optimised, and ``schedule="fast"`` is a valid, no weaker attack on the tiny
digits model. The strength at full scale is checked by
``tests/attacks/test_cw_schedule_slow.py`` (``EVCSA_SLOW=1``)."""

from __future__ import annotations

import pytest
import torch

from evcsa.attacks import ATTACKS, GradientMonitor, cw_l0, cw_l2, cw_linf, evaluate_attack, jsma
from evcsa.errors import InvalidParameter
from tests.attacks.legacy import cw_before, jsma_before
from tests.attacks.tiny_models import FAST

CW = ["cw_l2_next", "cw_l2_ll", "cw_linf_next", "cw_linf_ll", "cw_l0_next", "cw_l0_ll"]


@pytest.mark.parametrize("name", CW + ["cw_l2_untargeted", "cw_linf_untargeted", "cw_l0_untargeted"])
def test_reference_schedule_is_bit_for_bit_the_code_before_issue_11(name, digits):
    model, x, y = digits
    base = name.replace("_untargeted", "_next")
    spec = ATTACKS[base]
    target = None if name.endswith("untargeted") else spec.targets(model, x, y)
    params = {**spec.params, **FAST[base]}
    before_fn = getattr(cw_before, spec.attack.__name__)
    m_before, m_now = GradientMonitor(len(y)), GradientMonitor(len(y))
    before = before_fn(model, x, y, target=target, monitor=m_before, **params)
    now = spec.attack(model, x, y, target=target, monitor=m_now, **params)
    assert not torch.equal(before, x), "the check needs an attack that moves x"
    assert torch.equal(before, now)
    h0, h1 = m_before.health(), m_now.health()
    assert (h0.evaluations == h1.evaluations).all() and (h0.zero_evaluations == h1.zero_evaluations).all()


@pytest.mark.parametrize("name", ["jsma_next", "jsma_ll"])
def test_jsma_is_bit_for_bit_the_code_before_issue_11(name, digits):
    model, x, y = digits
    spec = ATTACKS[name]
    target = spec.targets(model, x, y)
    before = jsma_before.jsma(model, x, y, target=target, **{**spec.params, **FAST[name]})
    now = jsma(model, x, y, target=target, **{**spec.params, **FAST[name]})
    assert not torch.equal(before, x)
    assert torch.equal(before, now)


@pytest.mark.parametrize("name", CW)
def test_fast_schedule_is_a_valid_attack_no_weaker_and_cheaper(name, digits):
    model, x, y = digits
    params = dict(FAST[name])
    if "l2" not in name:
        params["max_iterations"] = 200  # long enough for the stall stop to matter
    ref_monitor, fast_monitor = GradientMonitor(len(y)), GradientMonitor(len(y))
    spec = ATTACKS[name]
    target = spec.targets(model, x, y)
    full = {**spec.params, **params}
    ref = spec.attack(model, x, y, target=target, monitor=ref_monitor, **full)
    fast = spec.attack(model, x, y, target=target, monitor=fast_monitor, schedule="fast", **full)
    assert fast.shape == x.shape and float(fast.min()) >= 0.0 and float(fast.max()) <= 1.0
    assert fast_monitor.health().ok
    if "l2" not in name:  # L2 at 60 steps checks every 6 steps in both schedules
        assert fast_monitor.health().evaluations.sum() < ref_monitor.health().evaluations.sum()
    with torch.no_grad():
        hit_ref = (model.predict(ref) == target).float().mean()
        hit_fast = (model.predict(fast) == target).float().mean()
    assert float(hit_fast) >= float(hit_ref) - 1.0 / len(y)


@pytest.mark.parametrize("attack", [cw_l2, cw_linf, cw_l0])
def test_unknown_schedule_is_refused(attack, digits):
    model, x, y = digits
    with pytest.raises(InvalidParameter, match="expected schedule in"):
        attack(model, x[:1], y[:1], schedule="quick")
