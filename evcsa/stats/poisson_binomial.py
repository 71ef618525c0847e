"""The Poisson-binomial distribution in log space (:mod:`evcsa.stats`): the pmf of the
number of successes of N independent submissions, the exact advantage Pr[S ≥ ⌈τN⌉]
(Π p_i for τ = 1, seed 002 Eq. 6), and the N best samples by score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import logsumexp

from evcsa._validation import check_positive_int, describe
from evcsa.errors import InvalidParameter
from evcsa.stats.binomial import threshold_count


def as_reals(values: Any, what: str) -> np.ndarray:
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
    arr = as_reals(p, "probabilities")
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
    s = as_reals(scores, "scores")
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise InvalidParameter(f"expected a 1-D finite array of scores, got shape {s.shape}")
    n = check_positive_int(n, "n")
    if n > s.size:
        raise InvalidParameter(f"expected n ≤ {s.size} (the number of candidates), got {n}", got=n)
    return np.argsort(-s, kind="stable")[:n].astype(np.int64)
