"""``evcsa evaluate --estimate``: the predicted wall time of an evaluation on this machine,
from short timed runs (the project's cost model: :mod:`evcsa.attacks.cost`).

Method, as :func:`evcsa.reproduction.run.estimate_plan` does for a reproduction:

- every graybox attack is timed by the attacks' cost model
  (:func:`evcsa.attacks.cost.estimate_attack_time`: the attack at its full settings on the
  first ``probe`` natural samples, scaled linearly to |X_D|);
- every whitebox crafter (BPDA+EOT, APGD-EOT, DiscreteSearch) crafts all of X_D with 2 of
  its steps through the twin, scaled to its steps (the reproduction's whitebox timing); the
  unbounded attack and the 2× reruns of the checks are counted the same way;
- one batch of legitimate images is classified by the defense and by the model (the time
  per image includes the defense's own ensemble: crops, region samples), multiplied by the
  classifications of the evaluation: the games' submissions and Classify queries (A*'s and
  the ensemble's at their full budgets: an upper bound), the twins' offline ratings, the
  re-judging, the legitimate accuracy and the checks' re-judging.

Not counted: loading the data and the model (training a reference model the first time),
Python overhead between steps. Linear extrapolation's known errors are those of
:mod:`evcsa.attacks.cost` (within about 1.5× on the reference CNN).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping

import attrs
import numpy as np
import torch

from evcsa._text import duration
from evcsa.attacks.cost import estimate_attack_time
from evcsa.defenses.base import is_randomized
from evcsa.errors import TrivialEpsilonWarning
from evcsa.evaluation.budget import resolve_budget
from evcsa.evaluation.inputs import resolve_data, resolve_defense, resolve_rules
from evcsa.evaluation.measure import natural_samples
from evcsa.evaluation.suite import choose_suite, describe_defense
from evcsa.games import EVCSA
from evcsa.randomness import DerivedKeys

__all__ = ["EvaluationEstimate", "estimate_evaluation", "format_estimate"]


@attrs.frozen(kw_only=True)
class EvaluationEstimate:
    """A predicted evaluation time.

    Attributes:
        items: (what, count, seconds each, total seconds) per kind of work.
        total: the predicted seconds.
        probe_seconds: what the measurement took.
        method: how the per-item times were measured.
        budget: the budget's name.
    """

    items: tuple[tuple[str, int, float, float], ...]
    total: float
    probe_seconds: float
    method: str
    budget: str

    def text(self) -> str:
        """The estimate as lines (:func:`format_estimate`)."""
        return format_estimate(self)


def format_estimate(estimate: EvaluationEstimate) -> str:
    """One line per kind of work, largest first, and the total."""
    rows = sorted(estimate.items, key=lambda i: -i[3])
    width = max(len(r[0]) for r in rows)
    lines = [f"evcsa evaluate --estimate (budget {estimate.budget})"]
    lines += [f"  {what.ljust(width)}  {count:>10,} × {each * 1e3:10.3f} ms = {duration(total):>8}"
              for what, count, each, total in rows]
    lines.append(f"  predicted total: {duration(estimate.total)} (measured in {estimate.probe_seconds:.0f} s; "
                 f"{estimate.method})")
    return "\n".join(lines)


def estimate_evaluation(defense: Any, *, params: Mapping[str, Any] | None = None, model: Any = None,
                        data: Any = None, split: str = "test", rules: Any = None, budget: Any = "standard",
                        probe: int = 10, cache_dir: str | None = None, base_dir: str | None = None,
                        label: str | None = None, log: Callable[[str], None] | None = None) -> EvaluationEstimate:
    """Predict the wall time of ``evaluate(defense, …)`` with the same arguments (module
    docstring); nothing is written, no game is played.

    Args:
        defense, params, model, data, split, rules, budget, cache_dir, base_dir, label: as
            :func:`~evcsa.evaluation.evaluate`.
        probe: natural samples each graybox attack is timed on (default 10; the whitebox
            crafters are timed on all of X_D at 2 steps).
        log: receives a line per timing.

    Raises:
        InvalidParameter: as :func:`~evcsa.evaluation.evaluate`.
    """
    say = log or (lambda line: None)
    t_start = time.perf_counter()
    budget = resolve_budget(budget)
    rules = resolve_rules(rules)
    keys = DerivedKeys.from_seed(0, label="evaluate-estimate")
    resolved = resolve_defense(defense, params=params, model=model, keys=keys, cache_dir=cache_dir,
                               base_dir="." if base_dir is None else str(base_dir), label=label)
    full = resolve_data(data, split, base_dir="." if base_dir is None else str(base_dir))
    x_d, _ = natural_samples(full, resolved.model, budget.samples, rules.n_chosen, rules.freshness)
    legit = full if budget.legitimate_samples is None else full.head(budget.legitimate_samples)
    classifier, model_clf = resolved.classifier, resolved.model
    m = len(x_d)
    randomized = is_randomized(classifier)
    traits = describe_defense(classifier, x_d.images[:8], x_d.labels[:8], name=resolved.name)
    suite = choose_suite(traits, rules, budget, n_samples=m, image_shape=tuple(x_d.image_shape))
    k = min(probe, m)
    all_sources = np.arange(m, dtype=np.int64)
    game = EVCSA.from_rules(classifier, x_d.images, x_d.labels, rules, model=model_clf)
    knowledge = game.knowledge(0)
    items: list[tuple[str, int, float, float]] = []

    def per_image(clf: Any) -> float:
        batch = legit.images[: 8 if type(clf).__name__ == "RegionBasedClassification" else 200]
        t = time.perf_counter()
        with torch.no_grad():
            clf.predict(batch)
        return (time.perf_counter() - t) / max(1, int(batch.shape[0]))

    c_def, c_model = per_image(classifier), per_image(model_clf)
    whitebox_each: dict[str, float] = {}
    for member in suite.crafters:
        adv = member.adversary
        if member.role == "graybox":
            say(f"  timing {member.label} on {k} of {m} samples …")
            extra = dict(adv.params)
            if rules.epsilon is not None and "epsilon" in adv.attack.params and adv.attack.norm == rules.norm:
                extra.setdefault("epsilon", rules.epsilon)
            cost = estimate_attack_time(adv.attack, model_clf, x_d.images, x_d.labels, samples=m, probe=k, **extra)
            items.append((f"craft {member.label} ({m} samples)", 1, cost.predicted_seconds, cost.predicted_seconds))
            continue
        steps = adv.steps
        short = attrs.evolve(adv, steps=min(2, steps))
        say(f"  timing {member.label} ({min(2, steps)} of {steps} steps) on all {m} samples …")
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrivialEpsilonWarning)
            short.craft(knowledge, all_sources)
        each = (time.perf_counter() - t) * steps / min(2, steps)
        whitebox_each[member.label] = each
        items.append((f"craft {member.label} ({m} samples, {steps} steps)", 1, each, each))
    draws = budget.rejudge_draws if randomized else 1
    twin = budget.twin_draws if randomized else 1
    n = rules.n_chosen
    games = 0
    for member in suite.members:
        games += budget.runs * n
        if member.role == "a_star":
            games += budget.runs * (budget.astar_budget if randomized else m)
    games += budget.runs * (n + (budget.ensemble_queries if randomized else m))
    items.append((f"classify: the games' submissions and Classify queries ({budget.runs} games per adversary)",
                  games, c_def, games * c_def))
    whitebox = [mb for mb in suite.crafters if mb.role in ("whitebox", "search")]
    ratings = len(whitebox) * m * twin + (len(suite.crafters) - len(whitebox)) * m * twin + m * twin
    if suite.knowledge == "whitebox":
        items.append(("classify with the twins: offline ratings", ratings, c_def, ratings * c_def))
    judged = len(suite.crafters) * m * draws
    items.append((f"classify: re-judging every candidate ({draws} draws)", judged, c_def, judged * c_def))
    legit_draws = budget.legitimate_draws if randomized else 1
    items.append(("classify: legitimate accuracy", len(legit) * legit_draws, c_def, len(legit) * legit_draws * c_def))
    items.append(("classify: legitimate accuracy of the model", len(legit), c_model, len(legit) * c_model))
    pgd = next((mb for mb in suite.members if mb.role == "whitebox" and mb.adversary.method == "pgd"), None)
    if pgd is not None:
        mc = m if budget.check_samples is None else min(m, budget.check_samples)
        each = whitebox_each[pgd.label] * mc / m
        unbounded = each * budget.unbounded_steps / pgd.adversary.steps
        items.append((f"check: unbounded attack ({mc} samples, {budget.unbounded_steps} steps)", 1, unbounded,
                      unbounded))
        reruns = 2 if randomized else 1
        if budget.convergence_check:
            items.append((f"check: 2× reruns of {pgd.label} ({mc} samples)", reruns, 2 * each, reruns * 2 * each))
        judged = (1 + reruns) * mc * draws
        items.append(("check: re-judging", judged, c_def, judged * c_def))
    total = sum(i[3] for i in items)
    method = (f"timed on this machine: each graybox attack on {k} samples at full settings (evcsa.attacks.cost), "
              f"each whitebox crafter with 2 steps on all {m} samples, scaled linearly; one batch of classifications "
              "by the defense and the model; A*'s and the ensemble's queries at their full budgets (an upper bound)")
    return EvaluationEstimate(items=tuple(items), total=total, probe_seconds=time.perf_counter() - t_start,
                              method=method, budget=budget.name)
