"""Binomial proportions (:mod:`evcsa.stats`): the exact Clopper–Pearson interval, the
empirical advantage of R games as a :class:`BinomialEstimate` (seed 002 Eq. 4), the
success threshold ⌈τN⌉, and the number formats of the reports.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs
from scipy import stats as _scipy_stats

from evcsa._validation import check_positive_int, check_probability, describe
from evcsa.errors import InvalidParameter


def check_alpha(alpha: Any) -> float:
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
    alpha = check_alpha(alpha)
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
