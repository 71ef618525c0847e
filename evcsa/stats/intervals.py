"""Estimates that are not a binomial proportion (:mod:`evcsa.stats`): the expected
advantage of submitted samples with a Bonferroni interval over their per-sample
Clopper–Pearson intervals, and the per-sample mean with its interval.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
from scipy import stats as _scipy_stats

from evcsa.errors import InvalidParameter
from evcsa.stats.binomial import check_alpha, clopper_pearson, threshold_count
from evcsa.stats.poisson_binomial import advantage_exact, as_reals


@attrs.frozen
class IntervalEstimate:
    """A quantity estimated with a confidence interval that is not a binomial proportion's
    (the expected advantage of submitted samples, say).

    Attributes:
        value: the point estimate.
        low, high: the interval's ends, low ≤ value ≤ high.
        alpha: the interval covers the true value with probability ≥ 1 − alpha.
        method: how the interval was obtained, in words (shown with the estimate).

    Raises:
        InvalidParameter: non-finite ends, low > value or value > high, alpha outside (0, 1).
    """

    value: float = attrs.field(converter=float)
    low: float = attrs.field(converter=float)
    high: float = attrs.field(converter=float)
    alpha: float = attrs.field(converter=float)
    method: str = attrs.field(converter=str)

    def __attrs_post_init__(self) -> None:
        ends = (self.low, self.value, self.high)
        if not all(math.isfinite(v) for v in ends) or not self.low <= self.value <= self.high:
            raise InvalidParameter(f"expected finite low ≤ value ≤ high, got {self.low} ≤ {self.value} ≤ "
                                   f"{self.high}", low=self.low, value=self.value, high=self.high)
        check_alpha(self.alpha)

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _counts_and_draws(successes: Any, draws: Any) -> tuple[np.ndarray, np.ndarray]:
    k = as_reals(successes, "successes")
    if k.ndim != 1 or k.size == 0:
        raise InvalidParameter(f"expected successes as a non-empty 1-D sequence of counts, got shape {k.shape}")
    n = as_reals(draws, "draws")
    if n.ndim > 1 or (n.ndim == 1 and n.shape != k.shape):
        raise InvalidParameter(f"expected draws as one count or {k.size} counts, got shape {n.shape}")
    n = np.broadcast_to(n, k.shape)
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(n))) or np.any(k != np.round(k)) \
            or np.any(n != np.round(n)):
        raise InvalidParameter("expected whole numbers of successes and draws, got fractions or non-finite values")
    if n.min() < 1 or k.min() < 0 or np.any(k > n):
        raise InvalidParameter(f"expected 0 ≤ successes ≤ draws and draws ≥ 1, got successes in "
                               f"[{k.min():g}, {k.max():g}], draws in [{n.min():g}, {n.max():g}]")
    return k.astype(np.int64), n.astype(np.int64)


def expected_advantage(successes: Any, draws: Any, tau: float, *, alpha: float = 0.05) -> IntervalEstimate:
    """The expected advantage of N submitted samples, estimated from fresh classifications.

    Given that sample i succeeded in kᵢ of nᵢ independent fresh-key classifications, its
    success probability is estimated as p̂ᵢ = kᵢ / nᵢ, and the advantage its submission
    gives (the N succeed independently, seed 002 Eq. 4 and 6) is the Poisson-binomial tail
    Adv = Pr[S ≥ ⌈τN⌉], S = Σ Bernoulli(pᵢ) (Π pᵢ for τ = 1).

    - value: the tail at p̂ (:func:`advantage_exact`);
    - low / high: the tail at the per-sample Clopper–Pearson lower / upper ends at level
      α / N. By Bonferroni all N intervals hold at once with probability ≥ 1 − α, and the
      tail is non-decreasing in every pᵢ, so [low, high] covers the true advantage with
      probability ≥ 1 − α (conservative; the more draws per sample, the narrower).

    This is what an adversary gets from the samples it submitted; the per-game Π p̂ that
    A* believes (its own estimates, which chose the samples) is biased upwards by the
    selection, these fresh classifications are not.

    Args:
        successes: int [N], fresh-key successes kᵢ of each submitted sample.
        draws: int or int [N], classifications nᵢ ≥ 1 behind each kᵢ.
        tau: the threshold τ in (0, 1].
        alpha: 1 − the interval's level, in (0, 1); default 0.05.

    Returns:
        :class:`IntervalEstimate` with values in [0, 1] (tiny tails underflow to 0.0).

    Raises:
        InvalidParameter: counts not whole numbers with 0 ≤ kᵢ ≤ nᵢ, nᵢ ≥ 1; draws of
            another length; τ outside (0, 1]; α outside (0, 1).
    """
    k, n = _counts_and_draws(successes, draws)
    alpha = check_alpha(alpha)
    threshold_count(tau, k.size)  # validates tau
    level = alpha / k.size
    cache: dict[tuple[int, int], tuple[float, float]] = {}
    lows, highs = np.empty(k.size), np.empty(k.size)
    for i, (ki, ni) in enumerate(zip(k.tolist(), n.tolist())):
        if (ki, ni) not in cache:
            cache[(ki, ni)] = clopper_pearson(ki, ni, level)
        lows[i], highs[i] = cache[(ki, ni)]
    def tail(p: np.ndarray) -> float:  # logsumexp may round a sure event to 1 + 2e-16
        return min(1.0, advantage_exact(p, tau))

    value = tail(k / n)
    low = min(value, tail(lows))
    high = max(value, tail(highs))
    return IntervalEstimate(value, low, high, alpha,
                            f"Poisson-binomial tail at p̂ = k/n; Clopper–Pearson at α/N = {level:.3g} per sample "
                            f"(Bonferroni), draws {int(n.min())}" + ("" if n.min() == n.max() else f"–{int(n.max())}"))


def per_sample_estimate(successes: Any, draws: Any, *, alpha: float = 0.05) -> IntervalEstimate:
    """A proportion over S samples estimated with the samples as the unit of independence.

    Sample i was classified nᵢ times (draws) and counted kᵢ times (its successes: correct
    classifications for an accuracy, attack successes for a success rate); its probability
    is p̂ᵢ = kᵢ / nᵢ and the proportion over the samples is the mean p̄ = (1/S) Σ p̂ᵢ. The
    draws of one sample are not independent evidence about the samples' population (they
    share the sample), so pooling Σkᵢ / Σnᵢ with a binomial interval is too narrow: for a
    deterministic defense the nᵢ classifications of a sample are one classification
    repeated. Two cases:

    - every sample's draws agree (each p̂ᵢ is 0 or 1: a deterministic defense, or a
      randomized one that never varies on these samples): the exact Clopper–Pearson
      interval on k = Σ p̂ᵢ of S samples (:func:`clopper_pearson`);
    - otherwise the Korn–Graubard interval for a proportion from clustered data (E. L. Korn
      and B. I. Graubard, "Confidence intervals for proportions with small expected number
      of positive counts estimated from survey data", Survey Methodology 24(2), 1998,
      193–201): the variance of p̄ from the samples, v = s² / S with s² the sample
      variance of the p̂ᵢ (each sample one cluster); the effective sample size
      n* = p̄(1 − p̄) / v, at most Σnᵢ, times the degrees-of-freedom factor
      (t_{1−α/2}(Σnᵢ − 1) / t_{1−α/2}(S − 1))²; then the Clopper–Pearson interval at
      k* = p̄ n* of n* (beta quantiles, non-integer counts allowed). Where v = 0 with
      0 < p̄ < 1 (all p̂ᵢ equal), n* = Σnᵢ. Its coverage is approximate (it rests on the
      variance estimate); with equal nᵢ and p̂ᵢ that differ it is wider than the pooled
      interval.

    Args:
        successes: int [S], kᵢ ≥ 0 per sample.
        draws: int or int [S], nᵢ ≥ 1 classifications per sample (kᵢ ≤ nᵢ).
        alpha: 1 − the interval's level, in (0, 1); default 0.05.

    Returns:
        :class:`IntervalEstimate`: value p̄ in [0, 1], the interval, ``method`` naming the
        case and the (effective) sample size.

    Raises:
        InvalidParameter: an empty or non-1-D ``successes``, counts not whole numbers with
            0 ≤ kᵢ ≤ nᵢ and nᵢ ≥ 1, ``draws`` of another length, α outside (0, 1).
    """
    k, n = _counts_and_draws(successes, draws)
    alpha = check_alpha(alpha)
    p = k / n
    s = int(p.size)
    mean = float(p.mean())
    if np.all((k == 0) | (k == n)):
        hits = int((k == n).sum())
        low, high = clopper_pearson(hits, s, alpha)
        return IntervalEstimate(mean, min(low, mean), max(high, mean), alpha,
                                f"Clopper–Pearson on {hits} of {s} samples (each sample's draws agree)")
    total = float(n.sum())
    variance = float(p.var(ddof=1)) / s if s > 1 else 0.0
    if variance > 0.0:
        effective = min(total, mean * (1.0 - mean) / variance)
    else:
        effective = total
    if s > 1:
        t = _scipy_stats.t
        effective *= (float(t.isf(alpha / 2, total - 1)) / float(t.isf(alpha / 2, s - 1))) ** 2
    hits_star = mean * effective
    beta = _scipy_stats.beta
    low = 0.0 if mean == 0.0 else float(beta.ppf(alpha / 2, hits_star, effective - hits_star + 1))
    high = 1.0 if mean == 1.0 else float(beta.isf(alpha / 2, hits_star + 1, effective - hits_star))
    return IntervalEstimate(mean, min(low, mean), max(high, mean), alpha,
                            f"Korn–Graubard over {s} samples (effective size {effective:.0f} of "
                            f"{int(total)} classifications)")
