"""Statistics of the EV-CSA game: intervals, Poisson-binomial tails, the exact advantage.

Two ways to get the advantage Adv(A, N, τ) = Pr[succ ≥ τ] (seed 002 Eq. 4):

(a) empirically, from R repeated games: :class:`BinomialEstimate` with an exact
    Clopper–Pearson interval (:func:`clopper_pearson`);
(b) exactly, for an adversary whose N submissions are fixed and succeed independently
    with probabilities p_1..p_N: the Poisson-binomial tail Pr[S ≥ ⌈τN⌉]
    (:func:`advantage_exact`), which is Π p_i for τ = 1 (seed 002 Eq. 6).

Everything that multiplies many probabilities works in log space, so N in the thousands
does not underflow (the product of 1100 halves is 0.0 in float64; its log is −762.46).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
from scipy import stats as _scipy_stats
from scipy.special import logsumexp

from evcsa._validation import check_positive_int, check_probability, describe
from evcsa.errors import InvalidParameter

__all__ = [
    "BinomialEstimate",
    "IntervalEstimate",
    "advantage_exact",
    "clopper_pearson",
    "expected_advantage",
    "format_interval",
    "format_number",
    "log_advantage_exact",
    "log_poisson_binomial_pmf",
    "per_sample_estimate",
    "poisson_binomial_pmf",
    "select_top_n",
    "threshold_count",
]


def _check_alpha(alpha: Any) -> float:
    return check_probability(alpha, "alpha", open_low=True, open_high=True)


def _check_counts(k: Any, n: Any) -> tuple[int, int]:
    n = check_positive_int(n, "n (trials)")
    k = check_positive_int(k, "k (successes)", minimum=0)
    if k > n:
        raise InvalidParameter(f"expected k ≤ n, got k = {k} > n = {n}", k=k, n=n)
    return k, n


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) confidence interval for a binomial proportion.

    The interval is [B(α/2; k, n − k + 1), B(1 − α/2; k + 1, n − k)] with B the beta
    quantile, and the ends fixed at 0 for k = 0 and 1 for k = n (where the raw quantile
    is NaN). Computed with ``scipy.stats.beta``: ``ppf(α/2)`` for the lower end and
    ``isf(α/2)`` for the upper one, so an α below float64's resolution of 1 − α (about
    1e-16) still gives the exact interval (``binomtest(...).proportion_ci`` takes the
    level 1 − α and returns [0, 1] there). Its coverage is at least 1 − α for every true
    proportion.

    Args:
        k: successes, 0 ≤ k ≤ n.
        n: trials, n ≥ 1.
        alpha: 1 − confidence level, in (0, 1); default 0.05.

    Returns:
        (low, high), floats in [0, 1].

    Raises:
        InvalidParameter: k, n not integers with 0 ≤ k ≤ n, n ≥ 1, or α outside (0, 1).
    """
    k, n = _check_counts(k, n)
    alpha = _check_alpha(alpha)
    beta = _scipy_stats.beta
    # float(): counts beyond int64 (scipy's ufuncs take no Python big integers)
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, float(k), float(n - k + 1)))
    high = 1.0 if k == n else float(beta.isf(alpha / 2, float(k + 1), float(n - k)))
    return low, high


def format_number(x: float, digits: int = 3) -> str:
    """A probability-scale number with ``digits`` decimals; a non-zero one too small to
    show that way (|x| < 0.5·10^-digits) with two significant digits instead ("1.2e-05"),
    so that a tiny advantage never prints as 0.000."""
    x = float(x)
    if x != 0.0 and math.isfinite(x) and abs(x) < 0.5 * 10.0 ** -digits:
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def format_interval(value: float, low: float, high: float, spec: str = "") -> str:
    """``"value [low, high]"``: each number with the format ``spec`` (e.g. ``".1%"``), or
    with :func:`format_number` when ``spec`` is empty."""
    if spec:
        return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]"


@attrs.frozen(repr=False)
class BinomialEstimate:
    """A proportion estimated from ``successes`` out of ``trials``, with its exact
    Clopper–Pearson interval [``low``, ``high``] at level 1 − ``alpha``.

    Build with :meth:`from_counts` (or :meth:`from_dict` for a stored one). ``value`` =
    successes / trials. The one estimate type of evcsa's results: success rates,
    accuracies and the empirical advantage all are one.

    Printing: ``str(e)`` is ``"0.440 [0.341, 0.543]"`` (three decimals; tiny values with
    two significant digits); a format spec applies to all three numbers
    (``f"{e:.1%}"`` → ``"44.0% [34.1%, 54.3%]"``); ``repr(e)`` names the counts too.
    """

    successes: int
    trials: int
    alpha: float
    value: float
    low: float
    high: float

    @classmethod
    def from_counts(cls, successes: int, trials: int, alpha: float = 0.05) -> BinomialEstimate:
        """Estimate and interval from counts (see :func:`clopper_pearson`).

        Raises:
            InvalidParameter: counts not integers with 0 ≤ successes ≤ trials, trials ≥ 1,
                or α outside (0, 1).
        """
        low, high = clopper_pearson(successes, trials, alpha)
        return cls(int(successes), int(trials), float(alpha), successes / trials, low, high)

    @classmethod
    def from_dict(cls, d: Any) -> BinomialEstimate:
        """The estimate :meth:`to_dict` wrote (results.json), taken as stored (no
        recomputation of the interval).

        Raises:
            InvalidParameter: not a mapping with the six keys, or counts out of range.
        """
        keys = ("successes", "trials", "alpha", "value", "low", "high")
        if not isinstance(d, dict) or not all(k in d for k in keys):
            raise InvalidParameter(f"expected a mapping with keys {keys}, got {describe(d)}")
        k, n = _check_counts(d["successes"], d["trials"])
        return cls(k, n, float(d["alpha"]), float(d["value"]), float(d["low"]), float(d["high"]))

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "low", "high", "successes", "trials", "alpha"}`` (full precision;
        JSON-ready)."""
        return {"value": float(self.value), "low": float(self.low), "high": float(self.high),
                "successes": int(self.successes), "trials": int(self.trials), "alpha": float(self.alpha)}

    @property
    def level(self) -> float:
        """The interval's confidence level 1 − α (0.95 by default)."""
        return 1.0 - self.alpha

    def __contains__(self, p: float) -> bool:
        return self.low <= p <= self.high

    def __str__(self) -> str:
        return format_interval(self.value, self.low, self.high)

    def __format__(self, spec: str) -> str:
        return format_interval(self.value, self.low, self.high, spec)

    def __repr__(self) -> str:
        return (f"BinomialEstimate(successes={self.successes}, trials={self.trials}, value={self.value:.4g}, "
                f"low={self.low:.4g}, high={self.high:.4g}, alpha={self.alpha:g})")


def threshold_count(tau: float, n: int) -> int:
    """The least number of successes k with k / n ≥ τ, i.e. ⌈τ·n⌉, robust to float error.

    τ·n is computed exactly (``fractions.Fraction`` of the float τ), and a product within
    a few float64 ulps of an integer counts as that integer: a τ written as a decimal
    (0.3 is stored as 0.29999999999999998890) or computed as k / n is off from the number
    meant by at most half an ulp, so τ = 0.3, n = 10 gives 3 (a bare ``ceil`` of
    0.3 · 10 = 3.0000000000000004 gives 4) and τ = 0.07, n = 10⁸ gives 7,000,000 (rounding
    τ·n to 9 decimals first gave 7,000,001). A τ meant to lie strictly between k / n and
    (k + 1) / n by more than that (0.30000001, n = 10) gives k + 1.

    Args:
        tau: the success-rate threshold τ in (0, 1].
        n: the number of chosen samples N ≥ 1.

    Raises:
        InvalidParameter: τ outside (0, 1] or n < 1.
    """
    tau = check_probability(tau, "tau", open_low=True)
    n = check_positive_int(n, "N")
    exact = Fraction(tau) * n
    nearest = round(exact)
    k = nearest if abs(exact - nearest) <= exact * _ULPS else math.ceil(exact)
    return min(n, max(1, int(k)))


#: the relative slack of :func:`threshold_count`: 4 float64 ulps (a float τ is within half
#: an ulp, 2⁻⁵³ relative, of the decimal or the k / n it was written as)
_ULPS = Fraction(1, 2 ** 51)


def _as_reals(values: Any, what: str) -> np.ndarray:
    """``values`` (a sequence, numpy array or tensor) as a float64 array, or
    InvalidParameter for strings, ragged lists, objects and complex numbers (never cut
    to their real part)."""
    if callable(getattr(values, "detach", None)):  # a torch tensor, possibly requiring grad
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"expected {what} as real numbers, got {type(values).__name__}") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidParameter(f"expected {what} as real numbers, got {describe(arr)}", got=str(arr.dtype))
    return arr.astype(np.float64)


def _as_probabilities(p: Any) -> np.ndarray:
    arr = _as_reals(p, "probabilities")
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameter(f"expected a non-empty 1-D sequence of probabilities, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise InvalidParameter(f"expected probabilities in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    return arr


def log_poisson_binomial_pmf(p: Any) -> np.ndarray:
    """Natural log of the Poisson-binomial pmf: log Pr[S = k], k = 0..N, S = Σ Bernoulli(p_i).

    Dynamic programme over the probabilities in log space (``np.logaddexp``), O(N²)
    time, O(N) memory; exact zeros come out as −inf. Thousands of probabilities are fine.

    Args:
        p: N success probabilities in [0, 1].

    Returns:
        float64 array [N + 1].

    Raises:
        InvalidParameter: empty, not 1-D, non-finite or outside [0, 1].
    """
    p = _as_probabilities(p)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log1p(-p)
    out = np.full(p.size + 1, -np.inf)
    out[0] = 0.0
    for i in range(p.size):
        head = out[: i + 2]
        shifted = np.concatenate(([-np.inf], head[:-1] + log_p[i]))
        out[: i + 2] = np.logaddexp(head + log_q[i], shifted)
    return out


def poisson_binomial_pmf(p: Any) -> np.ndarray:
    """Poisson-binomial pmf Pr[S = k], k = 0..N (linear scale; see the log form for tails).

    Example: p = (0.1, 0.2, 0.9) → (0.072, 0.674, 0.236, 0.018).

    Args:
        p: N success probabilities in [0, 1].

    Returns:
        float64 array [N + 1], summing to 1 (entries below ~1e-308 underflow to 0).
    """
    return np.exp(log_poisson_binomial_pmf(p))


def log_advantage_exact(p: Any, tau: float) -> float:
    """log Adv(N, τ) = log Pr[S ≥ ⌈τN⌉] for N independent submissions with success
    probabilities ``p`` (seed 002 Eq. 6 for τ = 1: Σ log p_i).

    Args:
        p: N probabilities in [0, 1].
        tau: the threshold τ in (0, 1].

    Returns:
        float in [−inf, 0]: −inf when the event is impossible; clamped to 0 where the
        pmf's rounding (a sum of thousands of terms) would otherwise exceed it.
    """
    p = _as_probabilities(p)
    k = threshold_count(tau, p.size)
    if k == p.size:
        with np.errstate(divide="ignore"):
            return min(0.0, float(np.log(p).sum()))
    return min(0.0, float(logsumexp(log_poisson_binomial_pmf(p)[k:])))


def advantage_exact(p: Any, tau: float) -> float:
    """Adv(N, τ) = Pr[S ≥ ⌈τN⌉] for N independent submissions with success probabilities
    ``p``; Π p_i for τ = 1 (seed 002 Eq. 6). Tiny values underflow to 0.0 here: use
    :func:`log_advantage_exact` for them.

    Returns:
        float in [0, 1] (a probability, whatever the rounding of the pmf: 5,000
        probabilities of 0.999 at τ = 0.99 give at most 1.0, not 1 + 9e-14).

    Raises:
        InvalidParameter: bad probabilities or τ outside (0, 1].
    """
    return min(1.0, max(0.0, math.exp(log_advantage_exact(p, tau))))


def select_top_n(scores: Any, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, best first (ties by lower index): the greedy A*
    selection (seed 002 § 4.3). With independent successes, the top-N by probability
    maximises Pr[S ≥ k] for every k.

    Args:
        scores: 1-D array of estimated success probabilities (or interval lower bounds).
        n: how many to select, 1 ≤ n ≤ len(scores).

    Returns:
        int64 array [n].

    Raises:
        InvalidParameter: n out of range or scores not 1-D finite.
    """
    s = _as_reals(scores, "scores")
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise InvalidParameter(f"expected a 1-D finite array of scores, got shape {s.shape}")
    n = check_positive_int(n, "n")
    if n > s.size:
        raise InvalidParameter(f"expected n ≤ {s.size} (the number of candidates), got {n}", got=n)
    return np.argsort(-s, kind="stable")[:n].astype(np.int64)


# -- estimates that are not a binomial proportion -----------------------------------------

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
        _check_alpha(self.alpha)

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _counts_and_draws(successes: Any, draws: Any) -> tuple[np.ndarray, np.ndarray]:
    k = _as_reals(successes, "successes")
    if k.ndim != 1 or k.size == 0:
        raise InvalidParameter(f"expected successes as a non-empty 1-D sequence of counts, got shape {k.shape}")
    n = _as_reals(draws, "draws")
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
    alpha = _check_alpha(alpha)
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
    alpha = _check_alpha(alpha)
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
