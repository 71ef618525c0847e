"""run.sample_interval: a cell's accuracy over its samples (no model needed)."""

from __future__ import annotations

import pytest

from evcsa.errors import InvalidParameter
from evcsa.reproduction.run import sample_interval
from evcsa.stats import BinomialEstimate, clopper_pearson


def test_a_deterministic_cell_is_clopper_pearson_on_its_samples() -> None:
    # 100 samples, each submitted in 200 games, 80 always labelled correctly: 80 of 100 samples,
    # not 16,000 of 20,000 classifications
    est = sample_interval([200] * 80 + [0] * 20, [200] * 100)
    assert est.value == pytest.approx(0.8)
    assert (est.low, est.high) == pytest.approx(clopper_pearson(80, 100))
    pooled = BinomialEstimate.from_counts(16_000, 20_000)
    assert est.high - est.low > 5 * (pooled.high - pooled.low)


def test_samples_never_submitted_are_left_out() -> None:
    est = sample_interval([1, 0, 0], [1, 1, 0])
    assert est.value == pytest.approx(0.5) and "1 of 2 samples" in est.method
    assert sample_interval([0, 0], 0) is None


def test_sample_interval_rejects_mismatched_counts() -> None:
    with pytest.raises(InvalidParameter, match="expected one draw count per sample"):
        sample_interval([1, 2, 3], [3, 3])
    with pytest.raises(InvalidParameter, match="0 ≤ successes ≤ draws"):
        sample_interval([4], [3])
