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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import attrs
import numpy as np

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
from evcsa.adversaries.graybox import _params_converter, _params_validator, _targeting_validator, craft_with_attack
from evcsa.attacks.registry import get_attack
from evcsa.errors import InvalidParameter

if TYPE_CHECKING:
    from evcsa.games.game import Knowledge, Oracles
    from evcsa.games.rules import Rules

__all__ = ["GreedyAStar", "estimate_online"]


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

    Args:
        attack: registry name (default "bim"), AttackSpec, attack function, or an object
            with ``craft(knowledge, sources)`` (GrayboxTransfer, BPDAEOT).
        params: overrides of the attack's parameters (attack names/specs only).
        targeting: as in :class:`GrayboxTransfer` (attack names/specs only).
        queries_per_candidate: Classify draws per candidate (default 200, seed 002 § 5.1).
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
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_params_converter, validator=_params_validator)
    targeting: str | None = attrs.field(default=None, validator=_targeting_validator)
    queries_per_candidate: int = attrs.field(default=200, validator=positive_int())
    n_candidates: int | None = attrs.field(default=None, validator=positive_int(optional=True))
    rank_by: str = attrs.field(default="estimate", validator=one_of(RANKINGS))
    alpha: float = attrs.field(default=0.05, validator=probability_open)
    source_order: str = attrs.field(default="given", validator=one_of(SOURCE_ORDERS))
    round_to_grid: bool = attrs.field(default=False, validator=is_bool)
    batch_size: int = attrs.field(default=256, validator=positive_int())
    query_batch: int = attrs.field(default=10_000, validator=positive_int())

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
        estimates = estimate_online(oracles, candidates, knowledge, self.queries_per_candidate, alpha=self.alpha,
                                    query_batch=self.query_batch, notes=notes)
        order = rank(estimates, candidates.sources, knowledge.n_chosen, self.rank_by, knowledge.freshness)
        if order.size < knowledge.n_chosen:
            notes.append(f"only {order.size} candidates for N = {knowledge.n_chosen}: the rest count as failures")
        done = submit(oracles, candidates, order, notes)
        return AdversaryReport(adversary=type(self).__name__, sources=candidates.sources, targets=candidates.targets,
                               submitted=done, health=candidates.health, failed=candidates.failed,
                               estimates=estimates, rank_by=self.rank_by, notes=tuple(notes))
