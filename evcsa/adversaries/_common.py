"""Pieces shared by the shipped adversaries: candidates, source choice, fitting x′ to the
game's rules, success estimation (A*'s p̂), top-N selection and submission."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import attrs
import numpy as np
import torch

from evcsa._validation import Validator, int_at_least, probability
from evcsa.adversaries.base import Adversary
from evcsa.attacks import project, to_uint8_grid
from evcsa.attacks.gradients import GradientHealth
from evcsa.errors import GameOver, InvalidParameter, NotFresh
from evcsa.judging import predict_labels
from evcsa.stats import BinomialEstimate, advantage_exact, clopper_pearson, log_advantage_exact, select_top_n

if TYPE_CHECKING:
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles

__all__ = ["AdversaryReport", "Candidates", "PreparedAdversary", "SuccessEstimates"]

logger = logging.getLogger("evcsa.adversaries")

SOURCE_ORDERS = ("given", "random")
RANKINGS = ("estimate", "lower_bound")


@attrs.frozen(kw_only=True, eq=False)
class Candidates:
    """Chosen samples crafted offline, before any oracle is called.

    Attributes:
        sources: int64 [C], indices of the natural samples in X_D.
        x_adv: float32 [C, C_img, H, W] in [0, 1] (CPU), already fitted to the game's ε.
        targets: int64 [C] for a targeted game, else None.
        failed: bool [C], the attack produced no usable sample (x itself stands in).
        health: the gradients' :class:`~evcsa.attacks.GradientHealth`, per candidate.
        offline: optional offline success estimates (BPDA+EOT with its own twin).
    """

    sources: np.ndarray
    x_adv: torch.Tensor = attrs.field(repr=False)
    targets: np.ndarray | None
    failed: np.ndarray
    health: GradientHealth = attrs.field(repr=False)
    offline: SuccessEstimates | None = None

    def __len__(self) -> int:
        return int(self.sources.shape[0])


@attrs.frozen(kw_only=True, eq=False)
class SuccessEstimates:
    """Per-candidate success probabilities p̂ᵢ = kᵢ / nᵢ with exact Clopper–Pearson
    intervals (seed 002 § 4.3: A* "submits the same sample multiple times to Classify
    and counts how often it succeeds").

    Attributes:
        successes: int64 [C], draws in which candidate i succeeded (kᵢ).
        draws: int64 [C], draws made (nᵢ; 0 when none could be made).
        alpha: the intervals' level is 1 − α.
        mode: "online" (Classify queries) or "offline" (the adversary's own twin).
        low, high: float64 [C], the interval ends (0 and 1 where nᵢ = 0).
    """

    successes: np.ndarray
    draws: np.ndarray
    alpha: float
    mode: str
    low: np.ndarray = attrs.field(repr=False)
    high: np.ndarray = attrs.field(repr=False)

    @classmethod
    def from_counts(cls, successes: Any, draws: Any, alpha: float, mode: str) -> SuccessEstimates:
        """Estimates and their intervals (:func:`evcsa.stats.clopper_pearson`) from counts."""
        k = np.asarray(successes, dtype=np.int64).reshape(-1)
        n = np.broadcast_to(np.asarray(draws, dtype=np.int64), k.shape).copy()
        low, high = np.zeros(k.shape), np.ones(k.shape)
        cache: dict[tuple[int, int], tuple[float, float]] = {}
        for i, (ki, ni) in enumerate(zip(k.tolist(), n.tolist())):
            if ni > 0:
                if (ki, ni) not in cache:
                    cache[(ki, ni)] = clopper_pearson(ki, ni, alpha)
                low[i], high[i] = cache[(ki, ni)]
        return cls(successes=k, draws=n, alpha=float(alpha), mode=mode, low=low, high=high)

    def __len__(self) -> int:
        return int(self.successes.shape[0])

    @property
    def values(self) -> np.ndarray:
        """float64 [C]: p̂ᵢ = kᵢ / nᵢ (0 where nᵢ = 0)."""
        return np.divide(self.successes, self.draws, out=np.zeros(len(self)), where=self.draws > 0)

    def estimate(self, i: int) -> BinomialEstimate:
        """Candidate i's estimate as a :class:`~evcsa.stats.BinomialEstimate`."""
        return BinomialEstimate.from_counts(int(self.successes[i]), int(self.draws[i]), self.alpha)

    def scores(self, rank_by: str) -> np.ndarray:
        """The ranking score: p̂ ("estimate") or the interval's lower end ("lower_bound")."""
        return self.values if rank_by == "estimate" else self.low


@attrs.frozen(kw_only=True, eq=False)
class AdversaryReport:
    """What a shipped adversary's ``play`` returns (kept as ``GameResult.report``).

    The game never reads success from it: these are the adversary's own diagnostics.

    Attributes:
        adversary: the strategy's class name.
        sources: int64 [C], the candidates' natural samples.
        targets: int64 [C] or None.
        submitted: int64 [n], indices into the candidates, in submission order.
        health: per-candidate :class:`~evcsa.attacks.GradientHealth`.
        failed: bool [C], candidates the attack could not produce.
        estimates: p̂ per candidate with intervals (A*, or BPDA+EOT's selection), or None.
        rank_by: "estimate" or "lower_bound" when candidates were ranked.
        notes: human-readable remarks (budget cuts, stale submissions, fallbacks).
    """

    adversary: str
    sources: np.ndarray = attrs.field(repr=False)
    targets: np.ndarray | None = attrs.field(repr=False)
    submitted: np.ndarray = attrs.field(repr=False)
    health: GradientHealth = attrs.field(repr=False)
    failed: np.ndarray = attrs.field(repr=False)
    estimates: SuccessEstimates | None = attrs.field(default=None, repr=False)
    rank_by: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def gradient_flagged(self) -> bool:
        """Whether any candidate's gradients were zero, non-finite or missing: then a low
        success says nothing about robustness."""
        return not self.health.ok

    @property
    def submitted_probabilities(self) -> np.ndarray:
        """p̂ of the submitted candidates, in submission order.

        Raises:
            InvalidParameter: no estimates were made.
        """
        if self.estimates is None:
            raise InvalidParameter("expected success estimates in the report, got none (this adversary "
                                   "did not estimate p̂)")
        return self.estimates.values[self.submitted]

    def advantage(self, tau: float = 1.0) -> float:
        """Adv(N, τ) of the submitted candidates if their p̂ were exact and independent:
        the Poisson-binomial tail (seed 002 Eq. 6 for τ = 1: Π p̂ᵢ).

        Raises:
            InvalidParameter: no estimates, or τ outside (0, 1].
        """
        return advantage_exact(self.submitted_probabilities, tau)

    def log_advantage(self, tau: float = 1.0) -> float:
        """log of :meth:`advantage`, without underflow for large N."""
        return log_advantage_exact(self.submitted_probabilities, tau)


@attrs.frozen(eq=False)
class PreparedAdversary(Adversary):
    """The adversary ``prepare`` returns: a strategy plus the candidates it crafted
    offline. ``EVCSA.repeat`` plays it in every game; it holds no game state.

    Attributes:
        strategy: the configured strategy (GrayboxTransfer, GreedyAStar, BPDAEOT).
        candidates: its :class:`Candidates`.
        image_shape, n_samples: the game it was prepared for (checked in ``play``).
    """

    strategy: Any
    candidates: Candidates = attrs.field(repr=False)
    image_shape: tuple[int, ...]
    n_samples: int

    @property
    def play_randomized(self) -> bool:
        """Whether playing the candidates may use the game's coins: the strategy's
        ``candidates_randomized`` declaration (True when it declares none: the safe side)."""
        return getattr(self.strategy, "candidates_randomized", True) is not False

    def prepare(self, knowledge: Knowledge) -> PreparedAdversary:
        """Already prepared: returns itself."""
        return self

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Play the prepared candidates with the strategy's online phase."""
        if tuple(knowledge.image_shape) != tuple(self.image_shape) or knowledge.samples.shape[0] != self.n_samples:
            raise InvalidParameter(f"expected the game this adversary was prepared for (X_D of "
                                   f"{self.n_samples} images {self.image_shape}), got "
                                   f"{knowledge.samples.shape[0]} images {tuple(knowledge.image_shape)}")
        return self.strategy.play_candidates(self.candidates, oracles, knowledge)


# -- validators ------------------------------------------------------------------------

def positive_int(minimum: int = 1, optional: bool = False) -> Validator:
    """An attrs validator: an integer ≥ ``minimum`` (default 1), or None when ``optional``."""
    return int_at_least(minimum, optional=optional)


#: An attrs validator: a probability strictly inside (0, 1) (an α, a fraction), the shared one.
probability_open = probability(open_low=True, open_high=True)


# -- offline helpers -------------------------------------------------------------------

def choose_sources(knowledge: Knowledge, count: int | None, order: str, default: int) -> np.ndarray:
    """``count`` (default ``default``) distinct sources of X_D: the first ones, or a random
    choice drawn from the adversary's generator."""
    m = int(knowledge.samples.shape[0])
    count = default if count is None else count
    if count > m:
        raise InvalidParameter(f"expected at most |X_D| = {m} candidates (one per natural sample), got {count}",
                               got=count, samples=m)
    if order == "random":
        perm = torch.randperm(m, generator=knowledge.generator)[:count]
        return perm.numpy().astype(np.int64)
    return np.arange(count, dtype=np.int64)


def game_targeting(knowledge: Knowledge, targeting: str | None, spec_targeting: str) -> tuple[str | None, bool]:
    """(the targeting the attack runs with, whether targets are submitted).

    Targeted games need a target per submission: "next" unless ``targeting`` or the
    attack says "least_likely". Untargeted games take no target; the attack may still be
    a targeted one (a targeted success is an untargeted one)."""
    mode = spec_targeting if targeting is None else targeting
    if knowledge.goal == "targeted":
        if mode in (None, "untargeted"):
            mode = "next"
        return mode, True
    return (None if mode == "untargeted" else mode), False


def fit_to_game(knowledge: Knowledge, x: torch.Tensor, x_adv: torch.Tensor, round_to_grid: bool) -> torch.Tensor:
    """x′ projected into the game's ε-ball (when ε is set) and optionally rounded to the
    uint8 grid within it, so that no submission is lost to the ε check."""
    eps, norm = knowledge.epsilon, knowledge.norm
    out = project(x_adv, x, eps, norm) if eps is not None else x_adv.clamp(0.0, 1.0)
    if round_to_grid:
        out = to_uint8_grid(out, x, epsilon=eps, norm=norm)
    return out


# -- success estimation ------------------------------------------------------------------

def rate_on_twin(twin: Any, candidates: Candidates, knowledge: Knowledge, draws: int, alpha: float,
                 query_batch: int = 10_000) -> Candidates:
    """``candidates`` with ``offline`` set to the twin's verdict: each candidate classified
    ``draws`` times by the adversary's own twin of the defense (whitebox knowledge; no
    Classify query, so nothing is counted by the game), judged by the game's rule
    (:func:`count_successes`), with Clopper–Pearson intervals at level 1 − ``alpha``.

    Args:
        twin: the twin classifier (``knowledge.defense``), on its own device.
        candidates: the crafted candidates.
        knowledge: the adversary's knowledge (the rule and the sources' labels).
        draws: classifications per candidate, ≥ 1 (1 for a deterministic twin).
        alpha: 1 − confidence level of the intervals, in (0, 1).
        query_batch: images per twin call (memory bound).
    """
    def classify(x: torch.Tensor) -> torch.Tensor:  # checked as the game checks the defense's answers
        return predict_labels(twin, x.to(twin.device), knowledge.num_classes, name="the twin's predict")

    counts = count_successes(classify, candidates, knowledge, draws, query_batch)
    return attrs.evolve(candidates, offline=SuccessEstimates.from_counts(counts, draws, alpha, "offline"))


def count_successes(classify: Callable[[torch.Tensor], object], candidates: Candidates, knowledge: Knowledge,
                    draws: int, query_batch: int) -> np.ndarray:
    """kᵢ: in how many of ``draws`` classifications each candidate met the game's goal,
    judged by the game's own rule (:meth:`Rules.count_successes`, i.e.
    :func:`evcsa.judging.count_successes` with the game's goal and reference).

    Targeted: C(x′) = t. Untargeted against the label: C(x′) ∉ {y, REJECTED}; against the
    prediction (seed 000): C(x′) ∉ {C(x), REJECTED} and C(x) ≠ REJECTED, with C(x) drawn
    afresh for each draw (so 2·draws classifications per candidate). Classifications are
    batched: up to ``query_batch`` images per call. (ε is not checked here: candidates
    are already fitted to the game's ball.)
    """
    c = len(candidates)
    versus_prediction = candidates.targets is None and knowledge.rules.needs_reference_predictions
    per = max(1, query_batch // draws)
    counts = np.zeros(c, dtype=np.int64)
    for start in range(0, c, per):
        sl = slice(start, min(c, start + per))
        src = torch.as_tensor(candidates.sources[sl])
        targets = None if candidates.targets is None else torch.as_tensor(candidates.targets[sl])
        # one call for every draw of the chunk, each candidate's draws side by side
        counts[sl] = knowledge.count_successes(
            classify, candidates.x_adv[sl], knowledge.labels[src], draws=draws, targets=targets,
            clean=knowledge.samples[src] if versus_prediction else None, order="image-major").numpy()
    return counts


def queries_per_draw(candidates: Candidates, knowledge: Knowledge) -> int:
    """Classify queries one draw costs per candidate (2 against the prediction reference)."""
    return 2 if candidates.targets is None and knowledge.rules.needs_reference_predictions else 1


def rank(estimates: SuccessEstimates | None, sources: np.ndarray, n: int, rank_by: str, freshness: str
         ) -> np.ndarray:
    """The candidates to submit, best first: the top ``n`` by score (greedy A*, seed 002
    § 4.3, :func:`evcsa.stats.select_top_n`), one per source under freshness "source"."""
    c = sources.shape[0]
    scores = np.zeros(c) if estimates is None else estimates.scores(rank_by)
    order = select_top_n(scores, c)
    if freshness != "source":
        return order[:n]
    chosen, used = [], set()
    for i in order.tolist():
        s = int(sources[i])
        if s in used:
            continue
        used.add(s)
        chosen.append(i)
        if len(chosen) == n:
            break
    return np.asarray(chosen, dtype=np.int64)


def submit(oracles: Oracles, candidates: Candidates, order: np.ndarray, notes: list[str]) -> np.ndarray:
    """Submit candidates ``order`` (best first) in one batch, up to the remaining N.

    Stale items (⊥, not counted) are dropped and the rest resubmitted; a stale item is
    noted, never retried with a modified sample. Returns the indices actually accepted.
    """
    order = np.asarray(order, dtype=np.int64)[: max(0, oracles.remaining)]
    while order.size:
        sources = candidates.sources[order]
        targets = None if candidates.targets is None else candidates.targets[order]
        try:
            oracles.attack_batch(sources, candidates.x_adv[torch.as_tensor(order)], targets)
            return order
        except NotFresh as exc:
            stale = set(int(p) for p in getattr(exc, "positions", []))
            if not stale:  # pragma: no cover - the game always names the stale positions
                raise
            notes.append(f"{len(stale)} submission(s) were stale (⊥) and dropped")
            logger.info("dropping %d stale submission(s)", len(stale))
            order = np.asarray([o for p, o in enumerate(order.tolist()) if p not in stale], dtype=np.int64)
        except GameOver:
            notes.append("the game ended before every selected candidate was submitted")
            return np.zeros(0, dtype=np.int64)
    return order
