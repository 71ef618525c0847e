"""The ensemble adversary: the best of every attack of a suite, per source, by A*'s rule.

Offline (``prepare``) every member crafts a candidate for every natural sample of X_D
(graybox transfer on the undefended model, BPDA+EOT and APGD-EOT through the twin,
DiscreteSearch, …); with whitebox knowledge each candidate is also rated by the
adversary's own twin (``twin_draws`` draws, no Classify query; the twin is the defense with
the adversary's keys, so its verdicts are draws of the same success probability).

Online (``play``), the greedy rule of seed 002 § 4.3 (A*, Eq. 6) over the union: keep per
source the ``per_source`` candidates the twin rates best (all of them without a twin),
estimate each kept candidate's success probability with Classify queries — the estimator
of A* itself, :func:`evcsa.adversaries.estimate_adaptive` (rounds of draws where they
decide the top N, within ``query_budget`` and the game's own Classify budget) or
:func:`evcsa.adversaries.estimate_online` — pool those counts with the twin's, and submit
the N best (one per source under freshness "source"). Given independent successes the top
N by probability maximise every tail Pr[S ≥ k] (seed 002 § 4.3), so with at least each
member's information about its own candidates the ensemble's advantage is, up to the
noise of the estimates, at least each member's: the number an evaluation leads with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import attrs
import numpy as np
import torch

from evcsa._validation import int_at_least, one_of, probability
from evcsa.adversaries import (RANKINGS, Adversary, AdversaryReport, Candidates, PreparedAdversary, SuccessEstimates,
                               rate_on_twin, submit)
from evcsa.adversaries.greedy import SAMPLINGS, estimate_by_settings, select_adaptive
from evcsa.attacks.gradients import GradientHealth
from evcsa.config import ComponentSpec
from evcsa.defenses.base import is_randomized
from evcsa.errors import InvalidParameter
from evcsa.experiments.registry import build_adversary

if TYPE_CHECKING:
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles
    from evcsa.games.rules import Rules

__all__ = ["Ensemble", "PreparedEnsemble", "union"]

_ORDER = ("blackbox", "graybox", "whitebox")


def _members(value: Any) -> tuple[Any, ...]:
    """Adversaries with ``craft(knowledge, sources)``; a mapping is an ``[[adversaries]]``
    table built through the registry (so that a configuration can name the members)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidParameter(f"expected members as a sequence of adversaries (or adversary tables), got "
                               f"{type(value).__name__}", key="members")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            table = dict(item)
            if "kind" not in table:
                raise InvalidParameter(f"expected members[{i}] to have a kind, got keys {sorted(table)}",
                                       key="members")
            kind, label = table.pop("kind"), table.pop("label", None)
            item = build_adversary(ComponentSpec(kind=kind, label=label, params=table), where=f"members[{i}]")
        if not callable(getattr(item, "craft", None)):
            raise InvalidParameter(f"expected members[{i}] to craft candidates (craft(knowledge, sources): "
                                   f"GrayboxTransfer, BPDAEOT, DiscreteSearch, GreedyAStar), got "
                                   f"{type(item).__name__}", key="members")
        out.append(item)
    if not out:
        raise InvalidParameter("expected at least one member, got none", key="members")
    return tuple(out)


def union(parts: Sequence[Candidates]) -> tuple[Candidates, np.ndarray]:
    """The candidates of every part in one :class:`~evcsa.adversaries.Candidates` (parts in
    order, each part's candidates in its order), and the part each comes from (int64 [C]).
    Offline estimates are kept where every part has them, else dropped (the ensemble
    rates the union itself).

    Raises:
        InvalidParameter: no parts, parts of other image shapes, or targets in some parts
            and not in others.
    """
    parts = list(parts)
    if not parts:
        raise InvalidParameter("expected at least one set of candidates, got none")
    shapes = {tuple(p.x_adv.shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise InvalidParameter(f"expected candidates of one image shape, got {sorted(shapes)}")
    with_targets = [p.targets is not None for p in parts]
    if any(with_targets) and not all(with_targets):
        raise InvalidParameter("expected every member's candidates to carry targets (a targeted game) or none, got "
                               "a mixture")
    origins = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)])
    offline: SuccessEstimates | None = None
    rated = [p.offline for p in parts if p.offline is not None]
    if len(rated) == len(parts):
        offline = SuccessEstimates.from_counts(np.concatenate([e.successes for e in rated]),
                                               np.concatenate([e.draws for e in rated]),
                                               rated[0].alpha, "offline")
    merged = Candidates(sources=np.concatenate([p.sources for p in parts]),
                        x_adv=torch.cat([p.x_adv for p in parts]),
                        targets=np.concatenate([p.targets for p in parts]) if all(with_targets) else None,
                        failed=np.concatenate([p.failed for p in parts]),
                        health=GradientHealth.concat(p.health for p in parts), offline=offline)
    return merged, origins


def _take(candidates: Candidates, idx: np.ndarray) -> Candidates:
    """The candidates ``idx`` (without offline estimates)."""
    return attrs.evolve(candidates, sources=candidates.sources[idx], x_adv=candidates.x_adv[torch.as_tensor(idx)],
                        targets=None if candidates.targets is None else candidates.targets[idx],
                        failed=candidates.failed[idx], health=candidates.health.select(idx), offline=None)


def _best_per_source(sources: np.ndarray, scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` best-scored candidates of every source (ties: lower index),
    in index order."""
    idx = np.arange(sources.shape[0])
    order = np.lexsort((idx, -scores, sources))  # by source, then score descending, then index
    chosen, last, count = [], None, 0
    for i in order.tolist():
        s = int(sources[i])
        if s != last:
            last, count = s, 0
        if count < keep:
            chosen.append(i)
            count += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


@attrs.frozen(kw_only=True)
class Ensemble(Adversary):
    """The best of every member, per source, by A*'s rule (module docstring).

    Args:
        members: adversaries that craft (``craft(knowledge, sources)``): GrayboxTransfer,
            BPDAEOT, DiscreteSearch, GreedyAStar (its crafter's candidates) — or
            ``[[adversaries]]`` tables (mappings with a ``kind``).
        labels: the members' names for the report (default: their class names).
        sampling: "adaptive" (default: :func:`~evcsa.adversaries.estimate_adaptive`) or
            "fixed" (every kept candidate ``queries_per_candidate`` draws).
        queries_per_candidate: the most Classify draws a candidate gets (default 200).
        query_budget: Classify queries per game for the estimation (default 5,000, the
            demo's A*); the game's Classify budget, if smaller, wins.
        round_draws, focus, stop_alpha: adaptive sampling (as in GreedyAStar).
        twin_draws: offline draws of the twin per candidate with whitebox knowledge
            (default 100; 0: none; 1 suffices for a deterministic twin).
        per_source: candidates kept per source for the Classify queries, best by the
            twin first (default 1; with no twin every candidate is kept).
        rank_by: "estimate" (p̂, default) or "lower_bound".
        alpha: 1 − the intervals' level (default 0.05).
        query_batch: images per Classify call (default 10,000).

    Raises:
        InvalidParameter: bad values, members that do not craft.
    """

    members: tuple[Any, ...] = attrs.field(converter=_members)
    labels: tuple[str, ...] | None = attrs.field(default=None, converter=lambda v: None if v is None else tuple(v))
    sampling: str = attrs.field(default="adaptive", validator=one_of(SAMPLINGS))
    queries_per_candidate: int = attrs.field(default=200, validator=int_at_least(1))
    query_budget: int | None = attrs.field(default=5000, validator=int_at_least(1, optional=True))
    round_draws: int = attrs.field(default=10, validator=int_at_least(1))
    focus: int = attrs.field(default=5, validator=int_at_least(0))
    stop_alpha: float = attrs.field(default=0.05, validator=probability(open_low=True, open_high=True))
    twin_draws: int = attrs.field(default=100, validator=int_at_least(0))
    per_source: int = attrs.field(default=1, validator=int_at_least(1))
    rank_by: str = attrs.field(default="estimate", validator=one_of(RANKINGS))
    alpha: float = attrs.field(default=0.05, validator=probability(open_low=True, open_high=True))
    query_batch: int = attrs.field(default=10_000, validator=int_at_least(1))

    def __attrs_post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.members):
            raise InvalidParameter(f"expected one label per member ({len(self.members)}), got {len(self.labels)}",
                                   key="labels")

    @property
    def member_labels(self) -> tuple[str, ...]:
        """The members' names."""
        return self.labels if self.labels is not None else tuple(type(m).__name__ for m in self.members)

    @property
    def knowledge_needed(self) -> str:
        """The most any member needs."""
        levels = [getattr(m, "knowledge_needed", "blackbox") for m in self.members]
        return max(levels, key=_ORDER.index)

    def check_rules(self, rules: Rules) -> None:
        super().check_rules(rules)
        for m in self.members:
            check = getattr(m, "check_rules", None)
            if callable(check):
                check(rules)

    def prepare(self, knowledge: Knowledge) -> PreparedEnsemble:
        """Every member crafts a candidate for every natural sample (no oracle); then the
        union is rated by the twin (whitebox)."""
        m = int(knowledge.samples.shape[0])
        sources = np.arange(m, dtype=np.int64)
        parts = [member.craft(knowledge, sources) for member in self.members]
        return self.from_candidates(parts, knowledge)

    def from_candidates(self, parts: Sequence[Candidates], knowledge: Knowledge) -> PreparedEnsemble:
        """The prepared ensemble over candidates the members already crafted (an evaluation
        crafts once for the members' own games and the ensemble): each part's offline
        estimates are kept, the parts without are rated by the twin (whitebox knowledge,
        ``twin_draws`` > 0).

        Args:
            parts: one :class:`~evcsa.adversaries.Candidates` per member, in member order.
            knowledge: the ensemble's knowledge (its twin rates; X_D's shape is checked).

        Raises:
            InvalidParameter: not one part per member, or the union's checks.
        """
        parts = list(parts)
        if len(parts) != len(self.members):
            raise InvalidParameter(f"expected one set of candidates per member ({len(self.members)}), got "
                                   f"{len(parts)}")
        twin = knowledge.defense if knowledge.level == "whitebox" else None
        if twin is None or self.twin_draws == 0:
            merged, origins = union([attrs.evolve(p, offline=None) for p in parts])
            return PreparedEnsemble(self, merged, tuple(knowledge.image_shape), int(knowledge.samples.shape[0]),
                                    origins, np.arange(len(merged), dtype=np.int64), None)
        draws = self.twin_draws if is_randomized(twin) else 1
        parts = [p if p.offline is not None else rate_on_twin(twin, p, knowledge, draws, self.alpha, self.query_batch)
                 for p in parts]
        merged, origins = union(parts)
        assert merged.offline is not None  # every part carries its rating (above), so the union does
        keep = _best_per_source(merged.sources, merged.offline.values, self.per_source)
        # the kept candidates rated afresh: the first rating chose them (a maximum of noisy
        # estimates is biased up), fresh draws of the twin are not
        prior = rate_on_twin(twin, _take(merged, keep), knowledge, draws, self.alpha, self.query_batch).offline
        return PreparedEnsemble(self, merged, tuple(knowledge.image_shape), int(knowledge.samples.shape[0]), origins,
                                keep, prior)

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Prepare (if not prepared), estimate, select and submit."""
        return self.prepare(knowledge).play(oracles, knowledge)

    def play_candidates(self, candidates: Candidates, oracles: Oracles, knowledge: Knowledge,
                        origins: np.ndarray | None = None, keep: np.ndarray | None = None,
                        prior: SuccessEstimates | None = None) -> AdversaryReport:
        """Estimate p̂ of the kept candidates with Classify (A*'s estimator), pool with the
        twin's fresh counts ``prior``, submit the top N.

        Args:
            candidates: the union of the members' candidates (C).
            oracles, knowledge: the game's.
            origins: int64 [C], the member of each candidate (for the report's note).
            keep: int64 [K], the candidates the twin kept (default: all).
            prior: the twin's fresh estimates of the kept candidates (K), or None.
        """
        notes: list[str] = []
        c = len(candidates)
        keep = np.arange(c, dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64)
        kept = _take(candidates, keep)
        online, sampled = estimate_by_settings(self, oracles, kept, knowledge, notes)
        if sampled is not None:
            notes.append(f"adaptive sampling: {sampled.queries} Classify queries in {sampled.rounds} rounds over "
                         f"{len(keep)} of {c} candidates")
        k = online.successes + (0 if prior is None else prior.successes)
        n = online.draws + (0 if prior is None else prior.draws)
        scores = SuccessEstimates.from_counts(k, n, self.alpha, "online" if prior is None else "pooled")
        order = keep[select_adaptive(scores, kept.sources, knowledge.n_chosen, self.rank_by, knowledge.freshness)]
        if order.size < knowledge.n_chosen:
            notes.append(f"only {order.size} candidates for N = {knowledge.n_chosen}: the rest count as failures")
        done = submit(oracles, candidates, order, notes)
        if origins is not None and done.size:
            names = self.member_labels
            counts = np.bincount(origins[done], minlength=len(names))
            notes.append("submitted from: " + ", ".join(f"{names[i]} {int(m)}" for i, m in enumerate(counts) if m))
        k_all, n_all = np.zeros(c, dtype=np.int64), np.zeros(c, dtype=np.int64)
        k_all[keep], n_all[keep] = k, n
        estimates = SuccessEstimates.from_counts(k_all, n_all, self.alpha, scores.mode)
        return AdversaryReport(adversary=type(self).__name__, sources=candidates.sources, targets=candidates.targets,
                               submitted=done, health=candidates.health, failed=candidates.failed,
                               estimates=estimates, rank_by=self.rank_by, notes=tuple(notes))


@attrs.frozen(eq=False)
class PreparedEnsemble(PreparedAdversary):
    """The ensemble with the union of its members' candidates. ``EVCSA.repeat`` plays it in
    every game.

    Attributes:
        origins: int64 [C], the member each candidate comes from.
        keep: int64 [K], the candidates kept for the Classify queries (the twin's best per
            source; all without a twin).
        prior: the twin's fresh estimates of the kept candidates (K), or None.
    """

    origins: np.ndarray = attrs.field(repr=False)
    keep: np.ndarray = attrs.field(repr=False)
    prior: SuccessEstimates | None = attrs.field(repr=False)

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        if tuple(knowledge.image_shape) != tuple(self.image_shape) or knowledge.samples.shape[0] != self.n_samples:
            raise InvalidParameter(f"expected the game this adversary was prepared for (X_D of "
                                   f"{self.n_samples} images {self.image_shape}), got "
                                   f"{knowledge.samples.shape[0]} images {tuple(knowledge.image_shape)}")
        return self.strategy.play_candidates(self.candidates, oracles, knowledge, self.origins, self.keep,
                                              self.prior)
