"""GreedyAStar: craft candidates, estimate each one's success probability p̂ with Classify
queries, submit the N best.

Source: seed 002 § 4.3 (the greedy adversary A*, Eq. 6): "A* searches for adversarial
samples x′ᵢ … computes an estimate of the probability p̂ᵢ that x′ᵢ is labeled wrongly
(this can be done by submitting the same sample x′ᵢ multiple times to Classify and
counting how often it succeeds) … selects N samples … with highest p̂ᵢ". With
independent successes, the top N by probability maximise every tail Pr[S ≥ k]; the
advantage it obtains is Π p̂ (Eq. 6), which :meth:`AdversaryReport.advantage` computes
from the recorded estimates (and :attr:`SuccessEstimates.values` over all candidates
gives the seed's Fig. 7 heatmap row).

Adaptive sampling (``sampling="adaptive"``) spends the Classify queries where they decide
the selection, in the spirit of best-arm identification (LUCB, Kalyanakrishnan, Tewari,
Auer & Stone, ICML 2012; KL-LUCB, Kaufmann & Kalyanakrishnan, COLT 2013): draw in
rounds, stop drawing a candidate once its Clopper–Pearson bounds place it surely inside
or surely outside the top N, and draw only for the candidates near the top of the current
ranking, up to a per-candidate cap and a stated total budget. See :func:`estimate_adaptive`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import attrs
import numpy as np
import torch

from evcsa._validation import is_bool, one_of
from evcsa.adversaries._common import (
    RANKINGS,
    SOURCE_ORDERS,
    AdversaryReport,
    Candidates,
    PreparedAdversary,
    SuccessEstimates,
    choose_sources,
    count_successes,
    positive_int,
    probability_open,
    queries_per_draw,
    rank,
    submit,
)
from evcsa.adversaries.base import Adversary
from evcsa.adversaries.graybox import params_converter, params_validator, targeting_validator, craft_with_attack
from evcsa.attacks.registry import get_attack
from evcsa.errors import InvalidParameter
from evcsa.stats import clopper_pearson

if TYPE_CHECKING:
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles
    from evcsa.games.rules import Rules

__all__ = ["SAMPLINGS", "AdaptiveSampling", "GreedyAStar", "adaptive_order", "estimate_adaptive", "estimate_by_settings",
           "estimate_online", "select_adaptive"]

SAMPLINGS = ("fixed", "adaptive")


def _crafter_converter(value: Any) -> Any:
    if callable(getattr(value, "craft", None)):
        return value
    return get_attack(value)


def estimate_online(oracles: Oracles, candidates: Candidates, knowledge: Knowledge, draws: int, *,
                    alpha: float = 0.05, query_batch: int = 10_000, notes: list[str] | None = None
                    ) -> SuccessEstimates:
    """p̂ for every candidate from ``draws`` Classify queries each (fewer when the game's
    Classify budget does not allow them; none at all gives nᵢ = 0).

    Args:
        oracles: the game's oracles.
        candidates: the candidates.
        knowledge: the game's knowledge (goal, reference, budget).
        draws: classifications per candidate.
        alpha: the intervals' 1 − level.
        query_batch: images per Classify call.
        notes: receives a remark when the budget cut the draws.

    Returns:
        :class:`SuccessEstimates` in mode "online".
    """
    c = len(candidates)
    per_draw = queries_per_draw(candidates, knowledge)
    budget = knowledge.classify_budget
    if budget is not None:
        left = max(0, budget - oracles.classify_queries)
        affordable = left // (c * per_draw)
        if affordable < draws:
            if notes is not None:
                notes.append(f"the Classify budget allowed {affordable} of {draws} draws per candidate")
            draws = int(affordable)
    if draws == 0:
        return SuccessEstimates.from_counts(np.zeros(c, dtype=np.int64), 0, alpha, "online")
    counts = count_successes(oracles.classify, candidates, knowledge, draws, query_batch)
    return SuccessEstimates.from_counts(counts, draws, alpha, "online")


@attrs.frozen(kw_only=True, eq=False)
class AdaptiveSampling:
    """What :func:`estimate_adaptive` did, beside the estimates.

    Attributes:
        estimates: :class:`SuccessEstimates` (mode "online"), nᵢ varying per candidate.
        accepted: bool [C], stopped as surely inside the top N.
        rejected: bool [C], stopped as surely outside the top N.
        rounds: rounds drawn (the first, for every candidate, included).
        queries: Classify queries spent (images classified).
        budget: the total it was allowed (after the game's own Classify budget).
        test_alpha: the level of each Clopper–Pearson test (stop_alpha over C × rounds).
    """

    estimates: SuccessEstimates
    accepted: np.ndarray = attrs.field(repr=False)
    rejected: np.ndarray = attrs.field(repr=False)
    rounds: int
    queries: int
    budget: int
    test_alpha: float


def adaptive_order(estimates: SuccessEstimates) -> np.ndarray:
    """All candidates, best first: by p̂ᵢ, ties by more draws nᵢ, then by lower index (so a
    candidate that succeeded in 200 of 200 draws ranks before one at 10 of 10)."""
    idx = np.arange(len(estimates))
    return np.lexsort((idx, -estimates.draws, -estimates.values)).astype(np.int64)


def _subset(candidates: Candidates, idx: np.ndarray) -> Candidates:
    """The candidates ``idx`` (for counting their successes; health is not needed there)."""
    return attrs.evolve(candidates, sources=candidates.sources[idx], x_adv=candidates.x_adv[torch.as_tensor(idx)],
                        targets=None if candidates.targets is None else candidates.targets[idx],
                        failed=candidates.failed[idx], offline=None)


def _bounds(k: np.ndarray, n: np.ndarray, level: float, cache: dict[tuple[int, int], tuple[float, float]]
            ) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.zeros(k.shape), np.ones(k.shape)
    for i, (ki, ni) in enumerate(zip(k.tolist(), n.tolist())):
        if ni > 0:
            if (ki, ni) not in cache:
                cache[(ki, ni)] = clopper_pearson(ki, ni, level)
            low[i], high[i] = cache[(ki, ni)]
    return low, high


def estimate_adaptive(oracles: Oracles, candidates: Candidates, knowledge: Knowledge, *, max_draws: int,
                      round_draws: int = 10, budget: int | None = None, focus: int = 5,
                      stop_alpha: float = 0.05, alpha: float = 0.05, query_batch: int = 10_000,
                      notes: list[str] | None = None) -> AdaptiveSampling:
    """p̂ for every candidate from Classify queries drawn in rounds, where they decide the top N.

    Round 1 draws ``round_draws`` classifications of every candidate. Each later round
    ranks the candidates (:func:`adaptive_order`) and draws ``round_draws`` more for each
    candidate among the first N + ``focus`` of the ranking that is still *open*: fewer
    than ``max_draws`` draws, and not yet decided. A candidate is decided by two-sided
    Clopper–Pearson bounds [Lᵢ, Uᵢ] at level a = ``stop_alpha`` / (C · R), R = ⌈max_draws /
    round_draws⌉ the most rounds a candidate can take part in:

    - surely inside the top N when at most N − 1 others have Uⱼ > Lᵢ;
    - surely outside when at least N others have Lⱼ > Uᵢ.

    All C · R bounds hold at once with probability ≥ 1 − stop_alpha (Bonferroni), and then
    no decided candidate is misplaced (up to ties of the true pᵢ). Sampling ends when no
    candidate in the window is open, or when the budget is spent (the last round is cut to
    what fits, best-ranked first). Ranking the window by p̂ with ties to the better
    measured candidate is the LUCB idea (draw where the boundary of the top N is decided);
    with many candidates near p = 1 (a strong attack against a mild defense) the bounds
    rarely decide and the window and the budget do the work.

    Cost: at most min(budget, C · max_draws) Classify queries (twice that many images
    against the prediction reference), one Classify call per round of at most
    (N + focus) · round_draws images, plus O(C log C) per round.

    Args:
        oracles: the game's oracles.
        candidates: C candidates.
        knowledge: the game's knowledge (N, goal, reference, Classify budget).
        max_draws: the per-candidate cap (the fixed-q mode's q).
        round_draws: draws per candidate and round, ≥ 1 (default 10).
        budget: total Classify queries for the estimation (None: C · max_draws, i.e. only
            the cap); the game's Classify budget, if smaller, wins (noted).
        focus: candidates beyond the N first that a round draws for (default 5).
        stop_alpha: the total error probability of the stopping decisions (default 0.05).
        alpha: the 1 − level of the reported intervals (as in the fixed mode).
        query_batch: images per Classify call.
        notes: receives remarks (budget cuts).

    Returns:
        :class:`AdaptiveSampling`.
    """
    c = len(candidates)
    n_chosen = knowledge.n_chosen
    per_draw = queries_per_draw(candidates, knowledge)
    total = c * max_draws * per_draw if budget is None else int(budget)
    game_budget = knowledge.classify_budget
    if game_budget is not None:
        left = max(0, game_budget - oracles.classify_queries)
        if left < total:
            if notes is not None:
                notes.append(f"the Classify budget left {left} queries for adaptive sampling (asked {total})")
            total = left
    rounds_max = -(-max_draws // round_draws)
    level = stop_alpha / (c * rounds_max)
    k = np.zeros(c, dtype=np.int64)
    n = np.zeros(c, dtype=np.int64)
    accepted = np.zeros(c, dtype=bool)
    rejected = np.zeros(c, dtype=bool)
    cache: dict[tuple[int, int], tuple[float, float]] = {}
    spent, rounds = 0, 0
    order = np.arange(c, dtype=np.int64)
    while True:
        open_ = ~accepted & ~rejected & (n < max_draws)
        window = order if rounds == 0 else order[: n_chosen + focus]
        draw = window[open_[window]]
        draws = np.minimum(round_draws, max_draws - n[draw])
        cost = np.cumsum(draws * per_draw)
        fits = int(np.searchsorted(cost, total - spent, side="right"))
        if fits < draw.size:
            if notes is not None and draw.size:
                notes.append(f"adaptive sampling stopped at its budget of {total} Classify queries")
            draw, draws = draw[:fits], draws[:fits]
        if draw.size == 0:
            break
        for d in np.unique(draws).tolist():
            sel = draw[draws == d]
            k[sel] += count_successes(oracles.classify, _subset(candidates, sel), knowledge, int(d), query_batch)
            n[sel] += d
        spent += int(draws.sum()) * per_draw
        rounds += 1
        low, high = _bounds(k, n, level, cache)
        sorted_high, sorted_low = np.sort(high), np.sort(low)
        above = c - np.searchsorted(sorted_high, low, side="right") - (high > low)
        below = c - np.searchsorted(sorted_low, high, side="right")
        accepted |= (above <= n_chosen - 1) & ~rejected
        rejected |= (below >= n_chosen) & ~accepted
        order = adaptive_order(SuccessEstimates.from_counts(k, n, alpha, "online"))
    estimates = SuccessEstimates.from_counts(k, n, alpha, "online")
    return AdaptiveSampling(estimates=estimates, accepted=accepted, rejected=rejected, rounds=rounds,
                            queries=spent, budget=total, test_alpha=level)


def select_adaptive(estimates: SuccessEstimates, sources: np.ndarray, n: int, rank_by: str, freshness: str
                    ) -> np.ndarray:
    """The top ``n`` after adaptive sampling: by the ranking score (p̂ or the lower bound),
    ties by more draws, then lower index; one per source under freshness "source"."""
    idx = np.arange(len(estimates))
    order = np.lexsort((idx, -estimates.draws, -estimates.scores(rank_by)))
    if freshness != "source":
        return order[:n].astype(np.int64)
    chosen: list[int] = []
    used: set[int] = set()
    for i in order.tolist():
        s = int(sources[i])
        if s not in used:
            used.add(s)
            chosen.append(i)
            if len(chosen) == n:
                break
    return np.asarray(chosen, dtype=np.int64)


@attrs.frozen(kw_only=True)
class GreedyAStar(Adversary):
    """The greedy adversary A* (seed 002 § 4.3, Eq. 6).

    Offline (``prepare``): craft one candidate per source — with an attack on the
    undefended model (graybox, as in the seed), or with any crafting adversary passed as
    ``attack`` (a :class:`GrayboxTransfer` or :class:`BPDAEOT` instance). Online
    (``play``): classify every candidate ``queries_per_candidate`` times, estimate p̂ᵢ
    with a Clopper–Pearson interval, rank by p̂ (or by the interval's lower bound, which
    prefers candidates measured as reliably successful), and submit the top N — one per
    source under freshness "source". The estimates are kept in the report.

    ``sampling="adaptive"`` draws in rounds instead (:func:`estimate_adaptive`): every
    candidate ``round_draws`` times, then only the open candidates near the top of the
    ranking, each at most ``queries_per_candidate`` times, until Clopper–Pearson bounds
    decide them (surely inside / outside the top N at total error ``stop_alpha``) or
    ``query_budget`` queries are spent. Measured on the demo's setting (benchmarks/
    bench_astar_adaptive.py) it reaches the true advantage of the fixed q = 200 selection
    within 0.01 with about a quarter of its queries.

    Args:
        attack: registry name (default "bim"), AttackSpec, attack function, or an object
            with ``craft(knowledge, sources)`` (GrayboxTransfer, BPDAEOT).
        params: overrides of the attack's parameters (attack names/specs only).
        targeting: as in :class:`GrayboxTransfer` (attack names/specs only).
        queries_per_candidate: Classify draws per candidate (default 200, seed 002 § 5.1);
            with adaptive sampling, the most a candidate gets.
        sampling: "fixed" (default: every candidate ``queries_per_candidate`` draws) or
            "adaptive".
        round_draws: adaptive: draws per candidate and round (default 10).
        query_budget: adaptive: total Classify queries for the estimation (default None:
            only the per-candidate cap bounds it).
        focus: adaptive: candidates beyond the N first drawn for in a round (default 5).
        stop_alpha: adaptive: total error probability of the stopping decisions (0.05).
        n_candidates: sources to craft from (default: every sample of X_D).
        rank_by: "estimate" (p̂, default) or "lower_bound" (the interval's low end).
        alpha: 1 − the intervals' level (default 0.05).
        source_order: "given" (default) or "random".
        round_to_grid: round x′ to the uint8 grid within ε.
        batch_size: images per attack call (default 256).
        query_batch: images per Classify call (default 10,000).

    With fewer candidates than N, the missing submissions count as failures (noted in the
    report). A Classify budget too small for ``queries_per_candidate`` draws per candidate
    cuts the draws (noted); with none left, candidates are submitted in crafting order.

    Raises:
        InvalidParameter: bad values; at ``prepare``, blackbox knowledge with an attack
            that needs the undefended model, or more candidates than samples in X_D.
    """

    attack: Any = attrs.field(default="bim", converter=_crafter_converter)
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=params_converter, validator=params_validator)
    targeting: str | None = attrs.field(default=None, validator=targeting_validator)
    queries_per_candidate: int = attrs.field(default=200, validator=positive_int())
    sampling: str = attrs.field(default="fixed", validator=one_of(SAMPLINGS))
    round_draws: int = attrs.field(default=10, validator=positive_int())
    query_budget: int | None = attrs.field(default=None, validator=positive_int(optional=True))
    focus: int = attrs.field(default=5, validator=positive_int(0))
    stop_alpha: float = attrs.field(default=0.05, validator=probability_open)
    n_candidates: int | None = attrs.field(default=None, validator=positive_int(optional=True))
    rank_by: str = attrs.field(default="estimate", validator=one_of(RANKINGS))
    alpha: float = attrs.field(default=0.05, validator=probability_open)
    source_order: str = attrs.field(default="given", validator=one_of(SOURCE_ORDERS))
    round_to_grid: bool = attrs.field(default=False, validator=is_bool)
    batch_size: int = attrs.field(default=256, validator=positive_int())
    query_batch: int = attrs.field(default=10_000, validator=positive_int())

    #: ``play_candidates`` uses no coins: it ranks and submits the prepared candidates (with
    #: Classify queries at most), so against a deterministic classifier every game of a
    #: prepared series is the same game (:attr:`PreparedAdversary.play_randomized`).
    candidates_randomized = False

    @property
    def knowledge_needed(self) -> str:
        """That of its crafter when it is an adversary (BPDA+EOT: whitebox), else graybox
        (an attack runs on the undefended model)."""
        if callable(getattr(self.attack, "craft", None)):
            return getattr(self.attack, "knowledge_needed", "blackbox")
        return "graybox"

    def check_rules(self, rules: Rules) -> None:
        super().check_rules(rules)
        check = getattr(self.attack, "check_rules", None)
        if callable(check):
            check(rules)

    def craft(self, knowledge: Knowledge, sources: np.ndarray) -> Candidates:
        """Candidates for ``sources`` (no oracle)."""
        if callable(getattr(self.attack, "craft", None)):
            return self.attack.craft(knowledge, sources)
        if knowledge.model is None:
            raise InvalidParameter(f"expected graybox or whitebox knowledge (the undefended model) for "
                                   f"{type(self).__name__} with attack {self.attack.name!r}, got {knowledge.level}")
        return craft_with_attack(self.attack, self.params, self.targeting, knowledge, sources, on=knowledge.model,
                                 round_to_grid=self.round_to_grid, batch_size=self.batch_size)

    def prepare(self, knowledge: Knowledge) -> PreparedAdversary:
        """Craft the candidates (offline)."""
        m = int(knowledge.samples.shape[0])
        sources = choose_sources(knowledge, self.n_candidates, self.source_order, m)
        return PreparedAdversary(self, self.craft(knowledge, sources), tuple(knowledge.image_shape), m)

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Prepare (if not prepared), estimate, select and submit."""
        return self.prepare(knowledge).play(oracles, knowledge)

    def play_candidates(self, candidates: Candidates, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Estimate p̂ with Classify, submit the top N."""
        notes: list[str] = []
        estimates, sampled = estimate_by_settings(self, oracles, candidates, knowledge, notes)
        if sampled is not None:
            notes.append(f"adaptive sampling: {sampled.queries} Classify queries in {sampled.rounds} rounds, "
                         f"{int(sampled.accepted.sum())} candidates surely in, {int(sampled.rejected.sum())} surely "
                         f"out of the top {knowledge.n_chosen}")
            order = select_adaptive(estimates, candidates.sources, knowledge.n_chosen, self.rank_by,
                                    knowledge.freshness)
        else:
            order = rank(estimates, candidates.sources, knowledge.n_chosen, self.rank_by, knowledge.freshness)
        if order.size < knowledge.n_chosen:
            notes.append(f"only {order.size} candidates for N = {knowledge.n_chosen}: the rest count as failures")
        done = submit(oracles, candidates, order, notes)
        return AdversaryReport(adversary=type(self).__name__, sources=candidates.sources, targets=candidates.targets,
                               submitted=done, health=candidates.health, failed=candidates.failed,
                               estimates=estimates, rank_by=self.rank_by, notes=tuple(notes))


def estimate_by_settings(settings: Any, oracles: Oracles, candidates: Candidates, knowledge: Knowledge,
                         notes: list[str]) -> tuple[SuccessEstimates, AdaptiveSampling | None]:
    """Classify-query estimates p̂ of ``candidates`` under an adversary's sampling settings.

    ``settings`` holds the fields :class:`GreedyAStar` has (and the evaluation's ensemble):
    ``sampling`` ("adaptive": :func:`estimate_adaptive` with ``queries_per_candidate`` as
    the most draws, ``round_draws``, ``query_budget``, ``focus``, ``stop_alpha``; "fixed":
    :func:`estimate_online`, ``queries_per_candidate`` draws each), ``alpha`` and
    ``query_batch``.

    Returns:
        (the estimates, one per candidate; the adaptive sampling's record, or None for
        fixed sampling). Notes are appended to ``notes``.

    Raises:
        whatever the oracles raise (BudgetExhausted past a Classify budget).
    """
    if settings.sampling == "adaptive":
        sampled = estimate_adaptive(oracles, candidates, knowledge, max_draws=settings.queries_per_candidate,
                                    round_draws=settings.round_draws, budget=settings.query_budget,
                                    focus=settings.focus, stop_alpha=settings.stop_alpha, alpha=settings.alpha,
                                    query_batch=settings.query_batch, notes=notes)
        return sampled.estimates, sampled
    return estimate_online(oracles, candidates, knowledge, settings.queries_per_candidate, alpha=settings.alpha,
                           query_batch=settings.query_batch, notes=notes), None
