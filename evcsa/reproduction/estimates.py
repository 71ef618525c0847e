"""A cell's numbers as estimates: its accuracy over its samples, pooled counts, per-sample
counts summed over attacks or repetitions, the sweep's Adv(N, 1), and the plain dict the
parts' raw data stores them as."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from evcsa import stats
from evcsa.errors import InvalidParameter
from evcsa.stats import BinomialEstimate, IntervalEstimate, per_sample_estimate

__all__ = ["add_samples", "advantage_estimate", "cell_estimate", "counts_dict", "pooled", "sample_interval"]


def sample_interval(correct: Sequence[int], draws: Sequence[int] | int) -> IntervalEstimate | None:
    """A cell's accuracy (or success rate) as an estimate over its samples: each sample's
    probability from its draws, the mean over the samples, and the 95 % interval with the
    samples as the unit (:func:`evcsa.stats.per_sample_estimate`: Clopper–Pearson on k of
    n samples where every sample's draws agree, e.g. a deterministic defense; the
    Korn–Graubard effective-size interval otherwise). Samples with no draws (never
    submitted) are left out.

    Args:
        correct: int [S], per sample the draws counted (correct labels, or successes).
        draws: int [S] or one int, per sample its draws.

    Returns:
        An :class:`~evcsa.stats.IntervalEstimate`, or None when no sample has a draw.

    Raises:
        InvalidParameter: counts of different lengths, or not 0 ≤ correct ≤ draws.
    """
    k = np.asarray(correct, dtype=np.int64).reshape(-1)
    n = np.broadcast_to(np.asarray(draws, dtype=np.int64), k.shape) if np.ndim(draws) == 0 else \
        np.asarray(draws, dtype=np.int64).reshape(-1)
    if n.shape != k.shape:
        raise InvalidParameter(f"expected one draw count per sample ({k.size}), got {n.size}")
    keep = n > 0
    if not keep.any():
        return None
    return per_sample_estimate(k[keep], n[keep])


def cell_estimate(cell: Any) -> Any:
    """The cell's (a :class:`~evcsa.experiments.CellResult`) adversarial accuracy over its
    samples (:func:`sample_interval`), or the pooled one for a cell without per-sample
    counts."""
    if getattr(cell, "sample_correct", None) is None or cell.adversarial_accuracy is None:
        return cell.adversarial_accuracy
    return sample_interval(cell.sample_correct, cell.sample_submissions)


def pooled(estimates: Sequence[Any]) -> BinomialEstimate | None:
    """The binomial estimate of the summed successes and trials of ``estimates``, None
    without a trial."""
    k = sum(int(e.successes) for e in estimates)
    n = sum(int(e.trials) for e in estimates)
    return BinomialEstimate.from_counts(k, n) if n else None


def add_samples(total: list[Any], correct: Sequence[int] | None, draws: Sequence[int] | None) -> None:
    """Add one cell's per-sample counts (an attack's, or a repetition's) to ``total``
    ([correct, draws] int arrays [S], starting from [0, 0]; draws None once a cell lacks
    them)."""
    if correct is None or draws is None or total[1] is None:
        total[1] = None
        return
    total[0] = total[0] + np.asarray(correct, dtype=np.int64)
    total[1] = total[1] + np.asarray(draws, dtype=np.int64)


def advantage_estimate(p_hat: Sequence[float], draws: int, n: int) -> Any:
    """The sweep's Adv(N, 1) with an interval when evcsa.stats.expected_advantage exists
    (successes of the N best samples over ``draws`` each), else the point value (seed 002
    Eq. 6)."""
    p = np.asarray(p_hat, dtype=np.float64)
    top = p[stats.select_top_n(p, n)]
    if hasattr(stats, "expected_advantage"):
        successes = np.rint(top * draws).astype(np.int64)
        return stats.expected_advantage(successes, draws, 1.0)
    return float(math.exp(stats.log_advantage_exact(top, 1.0)))


def counts_dict(e: Any) -> dict[str, Any] | None:
    """An estimate as the parts' raw data stores it: value, low, high, successes, trials."""
    if e is None:
        return None
    return {"value": e.value, "low": e.low, "high": e.high, "successes": e.successes, "trials": e.trials}
