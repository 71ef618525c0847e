"""evcsa.stats: Clopper–Pearson intervals, Poisson-binomial pmf and tails, the exact
advantage (seed 002 Eq. 4 and 6), the greedy top-N selection."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from evcsa.errors import InvalidParameter
from evcsa.stats import (
    BinomialEstimate,
    advantage_exact,
    clopper_pearson,
    log_advantage_exact,
    log_poisson_binomial_pmf,
    per_sample_estimate,
    poisson_binomial_pmf,
    select_top_n,
    threshold_count,
)

probabilities = st.lists(st.floats(0, 1), min_size=1, max_size=12)


# -- C10: confidence intervals at the edges ----------------------------------------------
@pytest.mark.parametrize("k, n, alpha, low, high", [
    (0, 10, 0.05, 0.0, 0.308497),
    (10, 10, 0.05, 0.691503, 1.0),
    (0, 1000, 1e-7, 0.0, 0.0166707),
])
def test_clopper_pearson_edges(k, n, alpha, low, high):
    """C10: exact ends at k = 0 and k = n (the raw beta quantile is NaN there)."""
    lo, hi = clopper_pearson(k, n, alpha)
    assert lo == pytest.approx(low, abs=1e-6) and hi == pytest.approx(high, abs=1e-6)
    assert not (math.isnan(lo) or math.isnan(hi))


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.01, 0.05, 0.2]))
def test_clopper_pearson_matches_beta_quantiles_and_contains_the_estimate(kn, alpha):
    k, n = kn
    lo, hi = clopper_pearson(k, n, alpha)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    if 0 < k < n:
        assert lo == pytest.approx(sps.beta.ppf(alpha / 2, k, n - k + 1), rel=1e-6)
        assert hi == pytest.approx(sps.beta.ppf(1 - alpha / 2, k + 1, n - k), rel=1e-6)


def test_no_wald_interval_at_the_edges():
    """C10: p̂ = 0 or 1 still gets a non-degenerate interval (a Wald interval would be
    [0, 0] or [1, 1])."""
    est = BinomialEstimate.from_counts(0, 25)
    assert est.value == 0.0 and est.high > 0.1
    est = BinomialEstimate.from_counts(25, 25)
    assert est.value == 1.0 and est.low < 0.9
    assert 0.9 in est and 0.5 not in est


@pytest.mark.parametrize("k, n, alpha, match", [
    (-1, 10, 0.05, "k \\(successes\\) ≥ 0"),
    (11, 10, 0.05, "k ≤ n"),
    (0, 0, 0.05, "n \\(trials\\) ≥ 1"),
    (1.5, 10, 0.05, "as an integer"),
    (1, 10, 0.0, r"alpha in \(0, 1\)"),
    (1, 10, 1.0, r"alpha in \(0, 1\)"),
])
def test_clopper_pearson_rejects_bad_input(k, n, alpha, match):
    with pytest.raises(InvalidParameter, match=match):
        clopper_pearson(k, n, alpha)


# -- C11: products and tails without underflow --------------------------------------------
def test_product_of_many_probabilities_stays_in_log_space():
    """C11: the product of 1100 halves is 0.0 in float64; its log is −762.4619."""
    assert float(np.prod(np.full(1100, 0.5))) == 0.0
    assert log_advantage_exact(np.full(1100, 0.5), 1.0) == pytest.approx(-762.4619, abs=1e-4)
    assert advantage_exact(np.full(1100, 0.5), 1.0) == 0.0


def test_binomial_tail_far_below_double_precision_of_one_minus_cdf():
    """C11: P[Bin(1000, 0.5) ≥ 900] = 6.7017e−162 (log −371.1164); 1 − cdf gives 0."""
    assert 1 - sps.binom.cdf(899, 1000, 0.5) == 0.0
    log_tail = log_advantage_exact(np.full(1000, 0.5), 0.9)
    assert log_tail == pytest.approx(-371.1164, abs=1e-4)
    assert advantage_exact(np.full(1000, 0.5), 0.9) == pytest.approx(6.7017e-162, rel=1e-4)


@pytest.mark.parametrize("p, pmf", [
    ((0.1, 0.2, 0.9), (0.072, 0.674, 0.236, 0.018)),
    ((0, 1, 1), (0, 0, 1, 0)),
])
def test_poisson_binomial_small_cases(p, pmf):
    """C11: the pmf of small cases, exact zeros included."""
    np.testing.assert_allclose(poisson_binomial_pmf(p), pmf, atol=1e-12)


def test_poisson_binomial_thousands():
    """C11: thousands of probabilities; equal p reduce to the binomial (checked in logs)."""
    p = np.full(3000, 0.3)
    lp = log_poisson_binomial_pmf(p)
    np.testing.assert_allclose(lp, sps.binom.logpmf(np.arange(3001), 3000, 0.3), rtol=1e-9, atol=1e-9)
    q = np.random.default_rng(0).uniform(size=2000)
    assert poisson_binomial_pmf(q).sum() == pytest.approx(1.0, abs=1e-9)


@given(probabilities)
def test_pmf_matches_brute_force_enumeration(p):
    p = p[:10]
    brute = np.zeros(len(p) + 1)
    for outcome in itertools.product((0, 1), repeat=len(p)):
        brute[sum(outcome)] += math.prod(pi if o else 1 - pi for pi, o in zip(p, outcome))
    np.testing.assert_allclose(poisson_binomial_pmf(p), brute, atol=1e-12)


@given(probabilities, st.floats(0.01, 1.0))
def test_advantage_is_the_tail_of_the_pmf(p, tau):
    k = threshold_count(tau, len(p))
    assert advantage_exact(p, tau) == pytest.approx(poisson_binomial_pmf(p)[k:].sum(), abs=1e-12)


@given(probabilities)
def test_advantage_at_tau_one_is_the_product_equation_6(p):
    assert advantage_exact(p, 1.0) == pytest.approx(math.prod(p), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("tau, n, k", [(0.3, 10, 3), (1.0, 25, 25), (0.5, 25, 13), (0.01, 25, 1),
                                        (0.7, 10, 7), (0.1, 30, 3)])
def test_threshold_count_is_robust_to_float_error(tau, n, k):
    """⌈τN⌉ with τN = 3.0000000000000004 must be 3, not 4."""
    assert threshold_count(tau, n) == k


# N values: small, around the float error's reach, and large (τ·N rounded to 9 decimals
# first gave ⌈0.07 · 10⁸⌉ = 7,000,001)
_NS = [*range(1, 41), 49, 97, 997, 1000, 1024, 4999, 10**4, 10**5 + 3, 10**6, 10**8, 10**8 + 7, 3 * 10**9 + 1, 10**12]


def test_threshold_count_is_exact_over_many_decimal_taus_and_ns():
    """⌈τN⌉ for every decimal τ = i/10, i/100 and every third i/1000, and every N of _NS
    (≈ 25,000 pairs), against exact rational arithmetic on the τ meant."""
    from fractions import Fraction

    wrong = []
    for d, step in ((10, 1), (100, 1), (1000, 3)):
        for i in range(1, d + 1, step):
            meant = Fraction(i, d)
            tau = float(meant)
            for n in _NS:
                want = min(n, max(1, math.ceil(meant * n)))
                if threshold_count(tau, n) != want:
                    wrong.append((tau, n, threshold_count(tau, n), want))
    assert not wrong, f"{len(wrong)} wrong, e.g. (τ, N, got, want) = {wrong[:5]}"


def test_threshold_count_of_k_over_n_is_k():
    """τ computed as k / N in float (a success rate) gives back k, for every k ≤ N ≤ 200."""
    wrong = [(k, n) for n in range(1, 201) for k in range(1, n + 1) if threshold_count(k / n, n) != k]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("tau, n, k", [(0.30000001, 10, 4), (0.2999999, 10, 3), (1e-12, 10, 1), (1.0, 10**9, 10**9),
                                        (0.5 + 2**-40, 2, 2), (1 / 3, 3, 1), (2 / 3, 3, 2), (0.1 + 0.2, 10, 3)])
def test_threshold_count_keeps_real_differences(tau, n, k):
    """A τ meant above k / N by more than float error still needs k + 1 successes."""
    assert threshold_count(tau, n) == k


@pytest.mark.parametrize("func, args, match", [
    (threshold_count, (0.0, 10), r"tau in \(0, 1\]"),
    (threshold_count, (1.2, 10), r"tau in \(0, 1\]"),
    (poisson_binomial_pmf, ([],), "non-empty 1-D"),
    (poisson_binomial_pmf, ([0.5, 1.5],), r"probabilities in \[0, 1\]"),
    (poisson_binomial_pmf, ([0.5, float("nan")],), r"probabilities in \[0, 1\]"),
    (advantage_exact, ([0.5], 0.0), r"tau in \(0, 1\]"),
    (select_top_n, ([0.5, 0.2], 3), "n ≤ 2"),
    (select_top_n, ([0.5, float("nan")], 1), "finite"),
])
def test_statistics_reject_bad_input(func, args, match):
    with pytest.raises(InvalidParameter, match=match):
        func(*args)


@pytest.mark.parametrize("k, n, alpha, high", [
    (0, 1000, 1e-20, 1.0 - 0.5e-20 ** (1 / 1000)),   # 1 − α rounds to 1.0 in float64
    (0, 1000, 1e-300, 1.0 - 0.5e-300 ** (1 / 1000)),
])
def test_clopper_pearson_keeps_tiny_alpha(k, n, alpha, high):
    """C10 at the far edge: α below float64's resolution of 1 − α (≈ 1e-16) must still give
    the exact interval, not the whole of [0, 1]. For k = 0 the upper end is 1 − (α/2)^(1/n)."""
    lo, hi = clopper_pearson(k, n, alpha)
    assert lo == 0.0 and hi == pytest.approx(high, rel=1e-9) and hi < 1.0


def test_clopper_pearson_accepts_numpy_integers_and_huge_n():
    assert clopper_pearson(np.int64(3), np.int32(10)) == clopper_pearson(3, 10)
    lo, hi = clopper_pearson(5, 2 ** 70)
    assert 0.0 < lo < 5 / 2 ** 70 < hi < 1e-19


@pytest.mark.parametrize("values, match", [
    (["a", "b"], "real numbers, got numpy array of dtype <U1"),
    ([0.5, [0.5, 0.5]], "real numbers, got list"),
    (np.array([0.5 + 1j]), "real numbers, got numpy array of dtype complex128"),
    (np.array([{"p": 0.5}]), "real numbers, got numpy array of dtype object"),
])
@pytest.mark.parametrize("func", [poisson_binomial_pmf, lambda p: advantage_exact(p, 1.0),
                                  lambda p: select_top_n(p, 1)])
def test_probabilities_and_scores_must_be_real_numbers(func, values, match):
    """Strings and ragged lists are bad input (not a raw numpy ValueError); complex values
    are rejected, never silently cut to their real part."""
    with pytest.raises(InvalidParameter, match=match):
        func(values)


def test_probabilities_from_a_tensor_that_requires_grad():
    import torch

    p = torch.tensor([0.1, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    assert poisson_binomial_pmf(p) == pytest.approx([0.072, 0.674, 0.236, 0.018])
    assert select_top_n(p, 1).tolist() == [2]


@given(st.lists(st.floats(0, 1), min_size=2, max_size=30), st.data())
def test_top_n_maximises_every_tail(p, data):
    """Seed 002 § 4.3: with independent successes, the N most likely submissions maximise
    Pr[S ≥ k] for every k, against any other choice of N."""
    n = data.draw(st.integers(1, len(p)))
    top = select_top_n(p, n)
    other = data.draw(st.permutations(range(len(p))))[:n]
    tau = data.draw(st.floats(0.01, 1.0))
    chosen = [p[i] for i in top]
    assert sorted(chosen, reverse=True) == sorted(p, reverse=True)[:n]
    assert advantage_exact(chosen, tau) >= advantage_exact([p[i] for i in other], tau) - 1e-12


# -- the expected advantage of submitted samples (IntervalEstimate) ----------------------
from evcsa.stats import IntervalEstimate, expected_advantage  # noqa: E402


def test_interval_estimate_checks_its_ends():
    est = IntervalEstimate(0.5, 0.4, 0.6, 0.05, "test")
    assert 0.45 in est and 0.7 not in est and str(est) == "0.500 [0.400, 0.600]"
    with pytest.raises(InvalidParameter, match="low ≤ value ≤ high"):
        IntervalEstimate(0.5, 0.6, 0.7, 0.05, "test")
    with pytest.raises(InvalidParameter):
        IntervalEstimate(0.5, 0.4, 0.6, 1.5, "test")


def test_expected_advantage_value_is_the_tail_at_the_estimates():
    k, n = np.array([190, 200, 180]), 200
    est = expected_advantage(k, n, 1.0)
    assert est.value == pytest.approx(np.prod(k / n))
    assert est.low < est.value < est.high
    lows = [clopper_pearson(int(ki), n, 0.05 / 3)[0] for ki in k]
    assert est.low == pytest.approx(np.prod(lows))
    est = expected_advantage(k, [200, 200, 200], 2 / 3)
    assert est.value == pytest.approx(advantage_exact(k / n, 2 / 3))
    assert "Bonferroni" in est.method and est.alpha == 0.05


@given(st.lists(st.integers(1, 60).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
                min_size=1, max_size=8),
       st.sampled_from([0.3, 0.5, 1.0]))
def test_expected_advantage_orders_its_ends(kn, tau):
    k, n = zip(*kn)
    est = expected_advantage(list(k), list(n), tau)
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0


def test_expected_advantage_narrows_with_more_draws():
    wide = expected_advantage([9, 10], 10, 1.0)
    narrow = expected_advantage([900, 1000], 1000, 1.0)
    assert narrow.high - narrow.low < wide.high - wide.low


def test_expected_advantage_covers_the_true_advantage():
    """Coverage ≥ 1 − α (Bonferroni over per-sample Clopper–Pearson, monotone tail).

    R = 400 simulated selections of N = 10 samples with known pᵢ, 20 draws each, α = 0.1.
    If coverage were exactly the guaranteed 0.9, the misses would be Binomial(400, 0.1),
    and ≥ 65 misses (the failure threshold) has probability 7.0e-5 — the false-failure
    probability of this test at the guarantee (far smaller at the real, conservative
    coverage). Deterministic: numpy's generator with a fixed seed.
    """
    rng = np.random.default_rng(12)
    alpha, n_draws, reps = 0.1, 20, 400
    misses = 0
    for _ in range(reps):
        p = rng.uniform(0.6, 1.0, size=10)
        k = rng.binomial(n_draws, p)
        if advantage_exact(p, 1.0) not in expected_advantage(k, n_draws, 1.0, alpha=alpha):
            misses += 1
    assert sps.binom.sf(64, reps, alpha) < 1e-4
    assert misses < 65


@pytest.mark.parametrize("successes, draws, match", [
    ([], 10, "non-empty"),
    ([3, 11], 10, "successes ≤ draws"),
    ([3, 1], [10], "one count or 2"),
    ([1.5], 10, "whole numbers"),
    ([1], 0, "draws ≥ 1"),
])
def test_expected_advantage_raises(successes, draws, match):
    with pytest.raises(InvalidParameter, match=match):
        expected_advantage(successes, draws, 1.0)


def test_expected_advantage_raises_on_tau():
    with pytest.raises(InvalidParameter):
        expected_advantage([1], 1, 0.0)


# -- per-sample estimates (samples as the unit of independence) ----------------------------

@pytest.mark.parametrize("draws", [1, 200])
def test_per_sample_estimate_of_agreeing_draws_is_clopper_pearson_on_samples(draws):
    # 90 of 100 samples always correct, 10 never: one classification per sample, repeated or not
    est = per_sample_estimate([draws] * 90 + [0] * 10, draws)
    assert est.value == pytest.approx(0.9)
    assert (est.low, est.high) == pytest.approx(clopper_pearson(90, 100))
    assert "90 of 100 samples" in est.method


def test_per_sample_estimate_is_wider_than_pooled_when_samples_differ():
    # half the samples at p = 0.95, half at p = 0.5, 200 draws each: the pooled interval over
    # 20,000 classifications ignores the spread between samples
    k = np.r_[np.full(50, 190), np.full(50, 100)]
    est = per_sample_estimate(k, 200)
    pooled = clopper_pearson(int(k.sum()), 20_000)
    assert est.value == pytest.approx(k.sum() / 20_000)
    assert est.low < pooled[0] and est.high > pooled[1]
    assert (est.high - est.low) > 5 * (pooled[1] - pooled[0])
    assert "Korn–Graubard" in est.method


def test_per_sample_estimate_of_identical_samples_is_close_to_pooled():
    # every sample at 140 of 200 (no spread between samples): the effective size is the
    # classifications' count, times the degrees-of-freedom factor (t quantiles, S − 1 = 99)
    est = per_sample_estimate(np.full(100, 140), 200)
    pooled = clopper_pearson(14_000, 20_000)
    assert est.value == pytest.approx(0.7)
    assert est.low < pooled[0] < pooled[1] < est.high
    assert (est.high - est.low) < 1.05 * (pooled[1] - pooled[0])


def test_per_sample_estimate_covers_the_mean_over_samples():
    # 200 simulated cells of 100 samples with p_i ~ Beta(2, 1) and 200 draws each (fixed
    # generator: deterministic). The 95 % interval misses the population mean 2/3 in about 5 %
    # of cells; more than 25 misses (Binomial(200, 0.05) tail ≈ 1e-6, a few times that if the
    # coverage is 94 %) would mean the interval is far too narrow.
    rng = np.random.default_rng(20261207)
    misses = 0
    for _ in range(200):
        p = rng.beta(2.0, 1.0, size=100)
        est = per_sample_estimate(rng.binomial(200, p), 200)
        misses += not est.low <= 2.0 / 3.0 <= est.high
    assert misses <= 25


@pytest.mark.parametrize("successes, draws, alpha, match", [
    ([], 1, 0.05, "non-empty 1-D"),
    ([3, 1], 2, 0.05, "0 ≤ successes ≤ draws"),
    ([1, 1], [2, 2, 2], 0.05, "draws as one count or 2 counts"),
    ([0.5], 1, 0.05, "whole numbers"),
    ([1], 0, 0.05, "draws ≥ 1"),
    ([1], 2, 1.5, "alpha"),
])
def test_per_sample_estimate_rejects_bad_input(successes, draws, alpha, match):
    with pytest.raises(InvalidParameter, match=match):
        per_sample_estimate(successes, draws, alpha=alpha)
