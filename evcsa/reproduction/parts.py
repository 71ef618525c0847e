"""Running a plan's parts: Tables 1–2 and seed 000's parts (:func:`cells_part`: one row per
defense × adversary, "all attacks" and legitimate), Table 3's repetitions
(:func:`repetitions_part`) and Figures 5–7's δ sweep (:func:`sweep_part`), each turned into
:class:`~evcsa.reproduction.compare.Comparison` rows beside the papers' numbers."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.errors import DataError
from evcsa.experiments import build_defense, load_inputs
from evcsa.experiments.seeds import key_source
from evcsa.reproduction.compare import Comparison
from evcsa.reproduction.directory import key_label
from evcsa.reproduction.engine import PlanEngine
from evcsa.reproduction.estimates import add_samples, advantage_estimate, cell_estimate, counts_dict, \
    sample_interval
from evcsa.reproduction.estimates import pooled as pooled_estimate
from evcsa.reproduction.plans import Part, Plan
from evcsa.reproduction.records import PartResult
from evcsa.reproduction.values import PaperValue, paper_values
from evcsa.stats import BinomialEstimate, IntervalEstimate

__all__ = ["PART_RUNNERS", "cells_part", "repetitions_part", "sweep_part", "xd_accuracy"]


def _paper_dataset(plan: Plan) -> str:
    return "mnist"  # both seeds' MNIST rows; on "digits" they are printed for shape only


def _by_id(plan: Plan, table: str, row: str | None, delta: float, column: str | None) -> PaperValue | None:
    found = paper_values(paper=_paper_for(plan), table=table, dataset=_paper_dataset(plan), row=row, delta=delta,
                         column=column)
    return found[0] if found else None


def _paper_for(plan: Plan) -> str:
    return "mix-n-squeeze" if plan.paper == "002" else "randomized-squeezing"


def _squeezer_of(spec: ComponentSpec) -> tuple[str | None, float]:
    """(squeezer spec, δ) of a defense table, ("none", 0) for the undefended model."""
    if spec.kind == "none":
        return "none", 0.0
    if spec.kind == "feature_squeezing":
        return str(spec.params["squeezers"]), 0.0
    if spec.kind == "randomized_squeezing":
        return str(spec.params["squeezer"]), float(spec.params["delta"])
    return None, 0.0


def cells_part(plan: Plan, part: Part, *, engine: PlanEngine) -> PartResult:
    """Every configuration of ``part`` (each its own run directory), in turn: one row per
    defense × adversary, "all attacks" and legitimate per defense."""
    start = time.perf_counter()
    table = part.id if part.id in ("table1", "table2") else None
    rows: list[Comparison] = []
    cells: list[dict[str, Any]] = []
    legitimate: dict[str, Any] = {}
    region = None
    for config in part.configs:
        result = engine.run(config, config.name)
        by_cell = {(c.defense, c.adversary): c for c in result.cells}
        legitimate.update(result.legitimate)
        for spec in config.defenses:
            squeezer, delta = _squeezer_of(spec)

            def paper(column: str | None) -> PaperValue | None:
                return _by_id(plan, table, squeezer, delta, column) if table and squeezer else None

            accs = []
            samples: list[Any] = [0, 0]  # per sample, counts summed over the attacks
            for adv in config.adversaries:
                cell = by_cell[(spec.name, adv.name)]
                accs.append(cell.adversarial_accuracy)
                add_samples(samples, cell.sample_correct, cell.sample_submissions)
                rows.append(Comparison(label=f"{spec.name} × {adv.name}", ours=cell_estimate(cell),
                                       paper=paper(adv.params.get("attack")), units="percent"))
            pooled: IntervalEstimate | BinomialEstimate | None
            if samples[1] is not None and np.ndim(samples[1]):
                pooled, how = sample_interval(*samples), "each sample's draws over the attacks"
            else:
                pooled, how = pooled_estimate([a for a in accs if a is not None]), "pooled over the attacks"
            rows.append(Comparison(label=f"{spec.name} × all attacks", ours=pooled, paper=paper("all_attacks"),
                                   note=how, units="percent"))
            legit = result.legitimate[spec.name]
            rows.append(Comparison(label=f"{spec.name} legitimate", ours=legit, paper=paper("legitimate"),
                                   note=f"{legit.trials} classifications", units="percent"))
        cells += [{"defense": c.defense, "adversary": c.adversary, "adversarial_accuracy": counts_dict(c.adversarial_accuracy),
                   "success_rate": counts_dict(c.success_rate),
                   "sample_correct": None if c.sample_correct is None else list(c.sample_correct),
                   "sample_submissions": None if c.sample_submissions is None else list(c.sample_submissions)}
                  for c in result.cells]
        if any(s.kind == "region_based" for s in config.defenses):
            region = config
    rule = None if region is None else _region_rule(region, legitimate)
    lines = [] if rule is None else [rule]
    data = {"config": part.configs[0].name if len(part.configs) == 1 else [c.name for c in part.configs],
            "cells": cells, "legitimate": {k: counts_dict(v) for k, v in legitimate.items()}}
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), lines=tuple(lines), data=data,
                      seconds=time.perf_counter() - start)


def _region_rule(config: ExperimentConfig, legitimate: dict[str, Any]) -> str | None:
    """Seed 000 § 4.2 / DEEPSEC: the largest radius whose legitimate accuracy stays within
    1 point of the undefended model's (``legitimate``: defense name → accuracy); None in a
    part without the undefended model (the whitebox part)."""
    base = legitimate.get("none")
    if base is None:
        return None
    ok = [float(s.params["radius"]) for s in config.defenses if s.kind == "region_based"
          and base.value - legitimate[s.name].value <= 0.01]
    chosen = f"r = {max(ok):g}" if ok else "none of the grid"
    return (f"region radius rule (largest r with a legitimate-accuracy drop ≤ 1 point, on the grid "
            f"{[float(s.params['radius']) for s in config.defenses if s.kind == 'region_based']}): {chosen}")


def xd_accuracy(config: ExperimentConfig, index: int, cache_dir: str | None) -> tuple[int, int, list[int]]:
    """(correct, classified, per sample 1 if correct else 0) of defense ``index`` on X_D
    itself, one classification each (keys derived from the configuration's master key)."""
    spec = config.defenses[index]
    inputs = load_inputs(config, cache_dir=cache_dir)
    classifier = build_defense(spec, inputs.model, key_source(config, "reproduce/x_d", spec.name),
                               where=f"defenses[{index}]")
    pred = classifier.predict(inputs.samples.images).cpu()
    hits = (pred == inputs.samples.labels).to(torch.int64)
    return int(hits.sum()), int(pred.numel()), [int(v) for v in hits]


def repetitions_part(plan: Plan, part: Part, *, engine: PlanEngine) -> PartResult:
    """Table 3 (seed 002 § 5.2.2): every repetition of ``part`` in its own run directory
    under a key derived from the plan's, the adaptive attacks' adversarial accuracy and X_D's
    own accuracy per defense, with the interval over the samples (counts summed over the
    repetitions) and the spread of the repetitions' rates."""
    start = time.perf_counter()
    first = part.configs[0]
    columns = ["non_adversarial"] + [f"adversarial {a.name}" for a in first.adversaries]
    per: dict[str, dict[str, list[tuple[int, int]]]] = {s.name: {c: [] for c in columns} for s in first.defenses}
    # per sample, counts summed over the repetitions (for the interval over the samples)
    by_sample: dict[str, dict[str, list[Any]]] = {s.name: {c: [0, 0] for c in columns} for s in first.defenses}
    for i, config in enumerate(part.configs):
        result = engine.run(config, f"{config.name}-{i + 1:02d}", key_label=key_label(part.id, part.run, i))
        by_cell = {(c.defense, c.adversary): c for c in result.cells}
        keyed = result.config  # with the repetition's master key
        for d, spec in enumerate(config.defenses):
            for adv in config.adversaries:
                cell = by_cell[(spec.name, adv.name)]
                acc = cell.adversarial_accuracy
                if acc is None:
                    raise DataError(f"expected the adversarial accuracy of {spec.name} × {adv.name} in "
                                    f"{config.name}, got none")
                per[spec.name][f"adversarial {adv.name}"].append((acc.successes, acc.trials))
                add_samples(by_sample[spec.name][f"adversarial {adv.name}"], cell.sample_correct,
                             cell.sample_submissions)
            correct, classified, hits = xd_accuracy(keyed, d, engine.cache_dir)
            per[spec.name]["non_adversarial"].append((correct, classified))
            add_samples(by_sample[spec.name]["non_adversarial"], hits, [1] * len(hits))
        engine.log(f"    repetition {i + 1}/{len(part.configs)} ({time.perf_counter() - start:.0f} s)")
    rows = []
    for spec in first.defenses:
        squeezer, delta = _squeezer_of(spec)
        for column in columns:
            counts = per[spec.name][column]
            rates = np.array([k / n for k, n in counts])
            k_s, n_s = by_sample[spec.name][column]
            pooled = sample_interval(k_s, n_s) if n_s is not None and np.ndim(n_s) else \
                BinomialEstimate.from_counts(sum(k for k, _ in counts), sum(n for _, n in counts))
            spread = float(rates.std(ddof=1)) if len(rates) > 1 else None
            paper_column = "non_adversarial" if column == "non_adversarial" else "adversarial"
            rows.append(Comparison(label=f"{spec.name} {column.replace('_', '-')}", ours=pooled,
                                   paper=_by_id(plan, "table3", squeezer, delta, paper_column), spread=spread,
                                   note=f"{len(counts)} repetitions", units="percent"))
    data = {k: {c: [list(t) for t in v] for c, v in cols.items()} for k, cols in per.items()}
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), data=data,
                      seconds=time.perf_counter() - start)


def sweep_part(plan: Plan, part: Part, *, engine: PlanEngine) -> PartResult:
    """Figures 5–7 (seed 002 § 5.2.1): each attack's δ sweep, one line per squeezer and δ
    (legitimate and adversarial accuracy, A*'s Adv(25, 1)), and the Figure 6 values the
    paper's text states as comparison rows."""
    start = time.perf_counter()
    rows: list[Comparison] = []
    lines: list[str] = []
    data = []
    stated = [v for v in paper_values(paper="mix-n-squeeze", table="stated") if v.id.startswith("stated/fig6-")]
    for config in part.configs:
        attack = config.figures.attack
        points = engine.run(config, config.name).sweep
        n_show = 25 if 25 <= config.data.samples else max(v for v in config.figures.n_values
                                                           if v <= config.data.samples)
        for pt in points:
            adv = advantage_estimate(pt.p_hat, config.figures.draws, n_show)
            data.append({"attack": attack, "squeezer": pt.squeezer, "delta": pt.delta,
                         "legitimate_accuracy": counts_dict(pt.legitimate_accuracy),
                         "adversarial_accuracy": counts_dict(pt.adversarial_accuracy), "p_hat": list(pt.p_hat),
                         "advantage_exact": dict(pt.advantage_exact),
                         "sample_correct": None if pt.sample_correct is None else list(pt.sample_correct),
                         "sample_draws": pt.sample_draws})
            lines.append(f"{attack:>13} {pt.squeezer:>11} δ={pt.delta:<4g} legitimate "
                         f"{100 * pt.legitimate_accuracy.value:5.1f} %  adversarial "
                         f"{100 * pt.adversarial_accuracy.value:5.1f} %  Adv({n_show}, 1) "
                         f"{adv if isinstance(adv, float) else adv.value:.3g}")
            if attack.startswith("cw_linf") and pt.squeezer == "median-2x2" and n_show == 25:
                for v in stated:
                    if v.delta is not None and abs(v.delta - pt.delta) < 1e-9:
                        rows.append(Comparison(label=f"Fig. 6 {attack} median-2x2 δ={pt.delta:g} Adv(25, 1)",
                                               ours=adv, paper=v,
                                               note="misclassification counted; p̂ from the draws that chose the N"))
        engine.log(f"    sweep {attack}: {len(points)} points ({time.perf_counter() - start:.0f} s)")
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), lines=tuple(lines), data=data,
                      seconds=time.perf_counter() - start)


#: The function that runs each kind of part (:attr:`~evcsa.reproduction.plans.Part.run`).
PART_RUNNERS: dict[str, Callable[..., PartResult]] = {"cells": cells_part, "repetitions": repetitions_part,
                                                      "sweep": sweep_part}
