"""The reproduction's runs (evcsa.reproduction.run): run.sample_interval, a cell's accuracy over
its samples (no model needed); and the collapse of determined work (issue 25) changes no number.

Seed 000's graybox part on ``--quick`` (8×8 digits, their small model; a few seconds) runs
twice under the same master key: with the collapse off (``EVCSA_COLLAPSE=0``: every game
of every cell played) and on (the cells of the undefended model and of median 2×2 without
randomness play one game per unit). Every comparison and every raw number is the same."""

from __future__ import annotations

import shutil

import pytest

from evcsa.errors import InvalidParameter
from evcsa.experiments import work
from evcsa.reproduction import build_plan
from evcsa.reproduction.run import run_plan, sample_interval
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


def test_the_collapsed_quick_run_gives_the_numbers_of_the_uncollapsed_one(tmp_path, digits_cache, monkeypatch):
    plan = build_plan("randomized-squeezing", scale="quick", data="digits")
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "0")
    full = run_plan(plan, output=tmp_path / "full", parts=["graybox"], cache_dir=str(digits_cache))
    (tmp_path / "once").mkdir()
    shutil.copy(tmp_path / "full" / "master-key", tmp_path / "once" / "master-key")  # the same keys
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "1")
    once = run_plan(plan, output=tmp_path / "once", parts=["graybox"], cache_dir=str(digits_cache))
    assert [p.id for p in once.parts] == ["graybox"]
    (a,), (b,) = full.parts, once.parts
    assert a.comparisons == b.comparisons
    assert a.data == b.data
    assert a.lines == b.lines


def test_the_estimate_counts_one_game_per_play_unit_of_a_determined_cell(digits_cache, monkeypatch):
    """Quick scale: R = 3 games per cell, one play unit. The undefended model meets the 10
    graybox attacks (seed 000's graybox part); median 2×2 without randomness meets them and
    the 2 whitebox adversaries; each determined cell plays 1 game instead of 3 (N = 6
    samples each). The randomized defenses keep every game."""
    from evcsa.reproduction.run import estimate_plan

    plan = build_plan("randomized-squeezing", scale="quick", data="digits")
    counts = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(work.COLLAPSE_VARIABLE, flag)
        estimate = estimate_plan(plan, cache_dir=str(digits_cache))
        counts[flag] = {what: count for what, count, _, _ in estimate.items if what.startswith("classify")}
    n, saved_games = plan.scale.samples, plan.scale.runs - 1
    assert counts["0"]["classify with none"] - counts["1"]["classify with none"] == 10 * saved_games * n
    assert counts["0"]["classify with median-2x2"] - counts["1"]["classify with median-2x2"] == \
        (10 + 2) * saved_games * n
    for what in counts["0"]:
        if what not in ("classify with none", "classify with median-2x2"):
            assert counts["0"][what] == counts["1"][what], what
