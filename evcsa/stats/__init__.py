"""Statistics of the EV-CSA game: intervals, Poisson-binomial tails, the exact advantage.

Two ways to get the advantage Adv(A, N, τ) = Pr[succ ≥ τ] (seed 002 Eq. 4):

(a) empirically, from R repeated games: :class:`BinomialEstimate` with an exact
    Clopper–Pearson interval (:func:`clopper_pearson`);
(b) exactly, for an adversary whose N submissions are fixed and succeed independently
    with probabilities p_1..p_N: the Poisson-binomial tail Pr[S ≥ ⌈τN⌉]
    (:func:`advantage_exact`), which is Π p_i for τ = 1 (seed 002 Eq. 6).

Everything that multiplies many probabilities works in log space, so N in the thousands
does not underflow (the product of 1100 halves is 0.0 in float64; its log is −762.46).

Modules, by job: :mod:`~evcsa.stats.binomial` (Clopper–Pearson, the games' estimate, the
threshold, the formats), :mod:`~evcsa.stats.poisson_binomial` (the exact advantage),
:mod:`~evcsa.stats.intervals` (the expected advantage of submitted samples).
"""

from __future__ import annotations

from evcsa.stats.binomial import BinomialEstimate, clopper_pearson, format_interval, format_number, threshold_count
from evcsa.stats.intervals import IntervalEstimate, expected_advantage, per_sample_estimate
from evcsa.stats.poisson_binomial import (advantage_exact, log_advantage_exact, log_poisson_binomial_pmf,
                                          poisson_binomial_pmf, select_top_n)

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
