"""The cost model (issue 11): a probe's time scaled linearly to the full run."""

from __future__ import annotations

import pytest

from evcsa.attacks.cost import AttackCost, estimate_attack_time
from evcsa.errors import InvalidParameter


def test_prediction_is_the_probe_time_scaled_to_the_samples(digits):
    model, x, y = digits
    cost = estimate_attack_time("bim", model, x, y, samples=120, probe=4)
    assert isinstance(cost, AttackCost)
    assert cost.attack == "bim" and cost.probe == 4 and cost.samples == 120
    assert cost.probe_seconds > 0
    assert cost.predicted_seconds == pytest.approx(cost.probe_seconds * 30)
    assert "predicted for 120 images" in str(cost)


def test_probe_larger_than_the_inputs_uses_what_there_is(digits):
    model, x, y = digits
    cost = estimate_attack_time("fgsm", model, x[:3], y[:3], samples=9, probe=50)
    assert cost.probe == 3
    assert cost.predicted_seconds == pytest.approx(cost.probe_seconds * 3)


@pytest.mark.parametrize("bad", [{"samples": 0}, {"samples": 10, "probe": 0}, {"samples": 1.5}])
def test_bad_sizes_are_refused(bad, digits):
    model, x, y = digits
    with pytest.raises(InvalidParameter):
        estimate_attack_time("fgsm", model, x, y, **bad)
