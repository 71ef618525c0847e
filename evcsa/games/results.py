"""Results of EV-CSA games: frozen records plus the raw per-game rows.

Statistics are computed from the rows by named methods whose docstrings give the formula.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator

import attrs
import numpy as np

from evcsa.stats import BinomialEstimate, threshold_count

__all__ = ["GameResult", "RepeatResult", "Submission"]


@attrs.frozen
class Submission:
    """One accepted Attack query, as the transcript records it.

    Attributes:
        position: 0-based order of the submission in the game (q − 1 after it).
        source: index of the natural sample x in X_D.
        target: the target label y_t (targeted games) or None.
        distance: d(x, x′) in the game's norm on the [0, 1] scale (pixels for L0).
        within_epsilon: whether d(x, x′) ≤ ε (+ tolerance).
        label: ŷ′ = C(x′) as the game computed it (``REJECTED`` = −1 for a rejection),
            recorded whether or not it was revealed.
        reference: the label success was measured against: y (or C(x) under the
            "prediction" reference) for untargeted games, y_t for targeted ones.
        revealed: whether ŷ′ was given to the adversary.
        success: whether the submission counted (n ← n + 1).
    """

    position: int
    source: int
    target: int | None
    distance: float
    within_epsilon: bool
    label: int
    reference: int
    revealed: bool
    success: bool


@attrs.frozen
class GameResult:
    """The outcome of one EV-CSA game.

    Attributes:
        successes: n, the number of successful submissions.
        n_chosen: N.
        submissions: q, the number of accepted submissions (≤ N; missing ones count as
            failures).
        classify_queries: images sent to Classify.
        stale_queries: Attack queries answered ⊥ (not counted in q).
        transcript: the accepted submissions, in order.
        report: whatever the adversary's ``play`` returned (its diagnostics), or None.
        samples: with :attr:`EVCSA.record_samples <evcsa.games.EVCSA>` on, the x′ of each
            accepted submission exactly as the game judged it (its private copy, float32
            [C, H, W] on the CPU), in transcript order; else None.
    """

    successes: int
    n_chosen: int
    submissions: int
    classify_queries: int
    stale_queries: int
    transcript: tuple[Submission, ...] = attrs.field(repr=False)
    report: Any = attrs.field(default=None, repr=False, eq=False)
    samples: tuple[Any, ...] | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def success_rate(self) -> float:
        """succ = n / N (seed 002 § 3; seed 000 Fig. 1 line 4)."""
        return self.successes / self.n_chosen

    def succeeds(self, tau: float) -> bool:
        """Whether succ ≥ τ, compared as n ≥ ⌈τN⌉ (no float round-off)."""
        return self.successes >= threshold_count(tau, self.n_chosen)

    def row(self) -> dict[str, Any]:
        """The game as one flat row (for CSV)."""
        return {"successes": self.successes, "n_chosen": self.n_chosen,
                "submissions": self.submissions, "success_rate": self.success_rate,
                "classify_queries": self.classify_queries, "stale_queries": self.stale_queries}


@attrs.frozen(repr=False)
class RepeatResult:
    """R games of the same adversary against the same classifier, fresh classifier
    randomness in each.

    Attributes:
        games: the R :class:`GameResult` records, in order.
        n_chosen: N.
        reused_preparation: whether the adversary's offline phase ran once for all games
            (the advantage is then over the classifier's randomness given the adversary's
            coins, the protocol of seed 002 § 5.1) or once per game.
    """

    games: tuple[GameResult, ...] = attrs.field(repr=False)
    n_chosen: int
    reused_preparation: bool = True

    @property
    def runs(self) -> int:
        """R, the number of games."""
        return len(self.games)

    @property
    def success_rates(self) -> np.ndarray:
        """float64 [R]: succ of each game."""
        return np.array([g.success_rate for g in self.games], dtype=np.float64)

    @property
    def mean(self) -> float:
        """Mean success rate over the R games."""
        return float(self.success_rates.mean())

    def success_rate_estimate(self, alpha: float = 0.05) -> BinomialEstimate:
        """The mean success rate Σn / (R·N) with its Clopper–Pearson interval, pooling the
        R·N submissions (equal to :attr:`mean`).

        Exact when the submissions are independent Bernoulli trials of equal probability;
        for a mixture it is a pooled-proportion interval.

        Raises:
            InvalidParameter: α outside (0, 1).
        """
        total = sum(g.successes for g in self.games)
        return BinomialEstimate.from_counts(total, self.runs * self.n_chosen, alpha)

    def success_rate_interval(self, alpha: float = 0.05) -> BinomialEstimate:
        """The same as :meth:`success_rate_estimate` (an estimate with ``.value``, ``.low``,
        ``.high``). Unpacking it as the (low, high) pair it used to be still works, with a
        DeprecationWarning: write ``e = r.success_rate_interval(); e.low, e.high``.
        """
        e = self.success_rate_estimate(alpha)
        return _PairCompatibleEstimate(e.successes, e.trials, e.alpha, e.value, e.low, e.high)

    def advantage(self, tau: float = 1.0, alpha: float = 0.05) -> BinomialEstimate:
        """Empirical Adv(N, τ) = #{games with succ ≥ τ} / R (seed 002 Eq. 4), with its
        exact Clopper–Pearson interval at level 1 − α. succ ≥ τ is n ≥ ⌈τN⌉.

        Raises:
            InvalidParameter: τ outside (0, 1] or α outside (0, 1).
        """
        k = threshold_count(tau, self.n_chosen)
        wins = sum(1 for g in self.games if g.successes >= k)
        return BinomialEstimate.from_counts(wins, self.runs, alpha)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per game (with its index ``run``), for CSV."""
        return [{"run": i, **g.row()} for i, g in enumerate(self.games)]

    def __repr__(self) -> str:
        """``RepeatResult(runs=100, n_chosen=25, success_rate=0.440 [0.420, 0.460],
        Adv(τ=1)=0.120 [0.064, 0.200], reused_preparation=True)``."""
        if not self.games:
            return f"RepeatResult(runs=0, n_chosen={self.n_chosen}, reused_preparation={self.reused_preparation})"
        return (f"RepeatResult(runs={self.runs}, n_chosen={self.n_chosen}, "
                f"success_rate={self.success_rate_estimate()}, Adv(τ=1)={self.advantage(1.0)}, "
                f"reused_preparation={self.reused_preparation})")


class _PairCompatibleEstimate(BinomialEstimate):
    """A :class:`BinomialEstimate` that can still be unpacked as ``(low, high)``, the
    tuple :meth:`RepeatResult.success_rate_interval` returned before 0.2 (deprecated)."""

    def _pair(self) -> tuple[float, float]:
        warnings.warn("success_rate_interval() returns a BinomialEstimate now; unpacking it as (low, high) "
                      "is deprecated: use its .low and .high", DeprecationWarning, stacklevel=3)
        return (self.low, self.high)

    def __iter__(self) -> Iterator[float]:
        return iter(self._pair())

    def __getitem__(self, i: int) -> float:
        return self._pair()[i]

    def __len__(self) -> int:
        return len(self._pair())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BinomialEstimate):
            return attrs.astuple(self) == attrs.astuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(attrs.astuple(self))
