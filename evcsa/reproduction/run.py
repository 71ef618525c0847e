"""Running a reproduction plan, and predicting how long it will take.

:func:`run_plan` runs every part of a :class:`~evcsa.reproduction.plans.Plan` through the
experiment engine's public entry points (``run_experiment`` for the tables, ``run_cell``
for Table 3's repetitions, ``run_sweep`` for Figures 5–7) and turns the results into
:class:`~evcsa.reproduction.compare.Comparison` rows beside the papers' numbers.
:func:`estimate_plan` times a short run of each kind of work the plan contains and
extrapolates to the plan's full amount.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any, Callable, Sequence

import attrs
import numpy as np

from evcsa.reproduction.compare import Comparison, format_comparisons
from evcsa.reproduction.plans import Part, Plan
from evcsa.reproduction.values import paper_values

__all__ = ["PartResult", "ReproductionResult", "WorkEstimate", "estimate_plan", "format_estimate",
           "format_result", "load_result", "run_plan", "save_result"]


@attrs.frozen(kw_only=True)
class PartResult:
    """One part's outcome: ``id``, ``title``, the ``comparisons`` (ours beside the paper),
    extra ``lines`` to print (e.g. Figure 5's matrix), the raw ``data`` written to
    ``<part>.json``, and ``seconds`` of wall time."""

    id: str
    title: str
    comparisons: tuple[Comparison, ...]
    lines: tuple[str, ...] = ()
    data: Any = None
    seconds: float = 0.0


@attrs.frozen(kw_only=True)
class ReproductionResult:
    """A plan's outcome: the plan, its :class:`PartResult` list and the wall time."""

    plan: Plan
    parts: tuple[PartResult, ...]
    seconds: float


def _paper_dataset(plan: Plan) -> str:
    return "mnist"  # both seeds' MNIST rows; on "digits" they are printed for shape only


def _by_id(plan: Plan, table: str, row: str, delta: float, column: str) -> Any:
    found = paper_values(paper=_paper_for(plan), table=table, dataset=_paper_dataset(plan), row=row, delta=delta,
                         column=column)
    return found[0] if found else None


def _paper_for(plan: Plan) -> str:
    return "mix-n-squeeze" if plan.paper == "002" else "randomized-squeezing"


def _squeezer_of(spec: Any) -> tuple[str | None, float]:
    """(squeezer spec, δ) of a defense table, ("none", 0) for the undefended model."""
    if spec.kind == "none":
        return "none", 0.0
    if spec.kind == "feature_squeezing":
        return str(spec.params["squeezers"]), 0.0
    if spec.kind == "randomized_squeezing":
        return str(spec.params["squeezer"]), float(spec.params["delta"])
    return None, 0.0


def _pooled(estimates: Sequence[Any]) -> Any:
    from evcsa.stats import BinomialEstimate

    k = sum(int(e.successes) for e in estimates)
    n = sum(int(e.trials) for e in estimates)
    return BinomialEstimate.from_counts(k, n) if n else None


def _cells_part(plan: Plan, part: Part, *, cache_dir: str | None, out: pathlib.Path | None,
                log: Callable[[str], None]) -> PartResult:
    from evcsa.experiments import run_experiment

    (config,) = part.configs
    start = time.perf_counter()
    result = run_experiment(config, progress=False, cache_dir=cache_dir, log=lambda line: log(f"    {line}"))
    if out is not None:
        from evcsa.report import write_results

        write_results(result, out / config.name, overwrite=True, figures=False)
    table = part.id if part.id in ("table1", "table2") else None
    rows: list[Comparison] = []
    by_cell = {(c.defense, c.adversary): c for c in result.cells}
    for spec in config.defenses:
        squeezer, delta = _squeezer_of(spec)
        accs = []
        for adv in config.adversaries:
            cell = by_cell[(spec.name, adv.name)]
            acc = cell.adversarial_accuracy
            accs.append(acc)
            paper = _by_id(plan, table, squeezer, delta, adv.params["attack"]) if table and squeezer else None
            rows.append(Comparison(label=f"{spec.name} × {adv.name}", ours=acc, paper=paper, units="percent"))
        all_attacks = _pooled([a for a in accs if a is not None])
        rows.append(Comparison(label=f"{spec.name} × all attacks", ours=all_attacks,
                               paper=_by_id(plan, table, squeezer, delta, "all_attacks") if table and squeezer else None,
                               note="pooled over the attacks", units="percent"))
        legit = result.legitimate[spec.name]
        rows.append(Comparison(label=f"{spec.name} legitimate", ours=legit,
                               paper=_by_id(plan, table, squeezer, delta, "legitimate") if table and squeezer else None,
                               note=f"{legit.trials} classifications", units="percent"))
    lines = []
    if any(s.kind == "region_based" for s in config.defenses):
        lines.append(_region_rule(config, result))
    data = {"config": config.name, "cells": [{"defense": c.defense, "adversary": c.adversary,
                                              "adversarial_accuracy": _est(c.adversarial_accuracy),
                                              "success_rate": _est(c.success_rate)} for c in result.cells],
            "legitimate": {k: _est(v) for k, v in result.legitimate.items()}}
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), lines=tuple(lines), data=data,
                      seconds=time.perf_counter() - start)


def _region_rule(config: Any, result: Any) -> str:
    """Seed 000 § 4.2 / DEEPSEC: the largest radius whose legitimate accuracy stays within
    1 point of the undefended model's."""
    base = result.legitimate.get("none")
    if base is None:
        return "region radius rule: no undefended baseline in this configuration"
    ok = [float(s.params["radius"]) for s in config.defenses if s.kind == "region_based"
          and base.value - result.legitimate[s.name].value <= 0.01]
    chosen = f"r = {max(ok):g}" if ok else "none of the grid"
    return (f"region radius rule (largest r with a legitimate-accuracy drop ≤ 1 point, on the grid "
            f"{[float(s.params['radius']) for s in config.defenses if s.kind == 'region_based']}): {chosen}")


def _est(e: Any) -> Any:
    if e is None:
        return None
    return {"value": e.value, "low": e.low, "high": e.high, "successes": e.successes, "trials": e.trials}


def _xd_accuracy(config: Any, index: int, cache_dir: str | None) -> tuple[int, int]:
    """(correct, classified) of defense ``index`` on X_D itself, one classification each."""
    from evcsa.experiments import build_defense, load_inputs
    from evcsa.randomness import DerivedKeys

    spec = config.defenses[index]
    inputs = load_inputs(config, cache_dir=cache_dir)
    keys = DerivedKeys.from_seed(config.seed, label=f"reproduce/x_d/{spec.name}")
    classifier = build_defense(spec, inputs.model, keys, where=f"defenses[{index}]")
    pred = classifier.predict(inputs.samples.images).cpu()
    return int((pred == inputs.samples.labels).sum()), int(pred.numel())


def _repetitions_part(plan: Plan, part: Part, *, cache_dir: str | None, out: pathlib.Path | None,
                      log: Callable[[str], None]) -> PartResult:
    from evcsa.experiments import run_cell
    from evcsa.stats import BinomialEstimate

    start = time.perf_counter()
    first = part.configs[0]
    columns = ["non_adversarial"] + [f"adversarial {a.name}" for a in first.adversaries]
    per: dict[str, dict[str, list[tuple[int, int]]]] = {s.name: {c: [] for c in columns} for s in first.defenses}
    for i, config in enumerate(part.configs):
        for d, spec in enumerate(config.defenses):
            for a, adv in enumerate(config.adversaries):
                cell = run_cell(config, d, a, progress=False, cache_dir=cache_dir)
                acc = cell.adversarial_accuracy
                per[spec.name][f"adversarial {adv.name}"].append((acc.successes, acc.trials))
            per[spec.name]["non_adversarial"].append(_xd_accuracy(config, d, cache_dir))
        log(f"    repetition {i + 1}/{len(part.configs)} ({time.perf_counter() - start:.0f} s)")
    rows = []
    for spec in first.defenses:
        squeezer, delta = _squeezer_of(spec)
        for column in columns:
            counts = per[spec.name][column]
            rates = np.array([k / n for k, n in counts])
            pooled = BinomialEstimate.from_counts(sum(k for k, _ in counts), sum(n for _, n in counts))
            spread = float(rates.std(ddof=1)) if len(rates) > 1 else None
            paper_column = "non_adversarial" if column == "non_adversarial" else "adversarial"
            rows.append(Comparison(label=f"{spec.name} {column.replace('_', '-')}", ours=pooled,
                                   paper=_by_id(plan, "table3", squeezer, delta, paper_column), spread=spread,
                                   note=f"{len(counts)} repetitions", units="percent"))
    data = {k: {c: [list(t) for t in v] for c, v in cols.items()} for k, cols in per.items()}
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), data=data,
                      seconds=time.perf_counter() - start)


def _advantage_estimate(p_hat: Sequence[float], draws: int, n: int) -> Any:
    """The sweep's Adv(N, 1) with an interval when evcsa.stats.expected_advantage exists
    (successes of the N best samples over ``draws`` each), else the point value."""
    from evcsa import stats

    p = np.asarray(p_hat, dtype=np.float64)
    top = p[stats.select_top_n(p, n)]
    if hasattr(stats, "expected_advantage"):
        successes = np.rint(top * draws).astype(np.int64)
        return stats.expected_advantage(successes, draws, 1.0)
    return float(math.exp(stats.log_advantage_exact(top, 1.0)))


def _sweep_part(plan: Plan, part: Part, *, cache_dir: str | None, out: pathlib.Path | None,
                log: Callable[[str], None]) -> PartResult:
    from evcsa.experiments import run_sweep

    start = time.perf_counter()
    rows: list[Comparison] = []
    lines: list[str] = []
    data = []
    stated = [v for v in paper_values(paper="mix-n-squeeze", table="stated") if v.id.startswith("stated/fig6-")]
    for config in part.configs:
        attack = config.figures.attack
        points = run_sweep(config, progress=False, cache_dir=cache_dir)
        n_show = 25 if 25 <= config.data.samples else max(v for v in config.figures.n_values
                                                           if v <= config.data.samples)
        for pt in points:
            adv = _advantage_estimate(pt.p_hat, config.figures.draws, n_show)
            data.append({"attack": attack, "squeezer": pt.squeezer, "delta": pt.delta,
                         "legitimate_accuracy": _est(pt.legitimate_accuracy),
                         "adversarial_accuracy": _est(pt.adversarial_accuracy), "p_hat": list(pt.p_hat),
                         "advantage_exact": dict(pt.advantage_exact)})
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
        log(f"    sweep {attack}: {len(points)} points ({time.perf_counter() - start:.0f} s)")
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), lines=tuple(lines), data=data,
                      seconds=time.perf_counter() - start)


_RUNNERS = {"cells": _cells_part, "repetitions": _repetitions_part, "sweep": _sweep_part}


def run_plan(plan: Plan, *, output: str | pathlib.Path | None = None, cache_dir: str | None = None,
             parts: Sequence[str] | None = None,
             log: Callable[[str], None] | None = None) -> ReproductionResult:
    """Run ``plan`` (or only the parts named in ``parts``), part after part.

    Args:
        plan: from :func:`~evcsa.reproduction.plans.build_plan`.
        output: a directory for the results: each table's experiment results directory,
            ``<part>.json`` with the raw numbers, ``reproduction.txt`` with the printed
            tables; None writes nothing.
        cache_dir: the model cache.
        parts: part ids to run (default: all).
        log: receives one line per finished step.

    Raises:
        ConfigError, DataError, InvalidParameter: from the engine, before a part's work.
    """
    say = log or (lambda line: None)
    out = None if output is None else pathlib.Path(output)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    chosen = [plan.part(p) for p in parts] if parts is not None else list(plan.parts)
    results = []
    for part in chosen:
        say(f"  {part.id}: {len(part.configs)} configuration(s)")
        res = _RUNNERS[part.run](plan, part, cache_dir=cache_dir, out=out, log=say)
        say(f"  {part.id}: done in {res.seconds:.1f} s")
        results.append(res)
        if out is not None:
            _write_json(out / f"{part.id}.json", _part_to_dict(res))
    result = ReproductionResult(plan=plan, parts=tuple(results), seconds=time.perf_counter() - start)
    if out is not None:
        save_result(result, out)
    return result


# -- stored results ---------------------------------------------------------------------------

def _write_json(path: pathlib.Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _estimate_to_dict(e: Any) -> Any:
    if e is None:
        return None
    if getattr(e, "low", None) is None:
        return {"type": "point", "value": float(e.value)}
    if hasattr(e, "successes") and hasattr(e, "trials"):
        return {"type": "binomial", "successes": int(e.successes), "trials": int(e.trials),
                "alpha": float(getattr(e, "alpha", 0.05)), "value": float(e.value), "low": float(e.low),
                "high": float(e.high)}
    return {"type": "interval", "value": float(e.value), "low": float(e.low), "high": float(e.high),
            "alpha": float(getattr(e, "alpha", 0.05)), "method": str(getattr(e, "method", ""))}


def _estimate_from_dict(d: Any) -> Any:
    from evcsa.reproduction.compare import Point
    from evcsa.stats import BinomialEstimate, IntervalEstimate

    if d is None:
        return None
    if d["type"] == "point":
        return Point(d["value"])
    if d["type"] == "binomial":
        return BinomialEstimate.from_counts(d["successes"], d["trials"], d["alpha"])
    return IntervalEstimate(d["value"], d["low"], d["high"], d["alpha"], d["method"])


def _part_to_dict(part: PartResult) -> dict[str, Any]:
    return {"id": part.id, "title": part.title, "seconds": part.seconds, "lines": list(part.lines),
            "comparisons": [{"label": c.label, "ours": _estimate_to_dict(c.ours),
                             "paper": None if c.paper is None else c.paper.id, "spread": c.spread,
                             "note": c.note, "units": c.units} for c in part.comparisons],
            "data": part.data}


def save_result(result: ReproductionResult, path: str | pathlib.Path) -> pathlib.Path:
    """Write ``reproduction.json`` (the plan's name, scale, data, C&W schedule, the parts
    run, the wall time), one ``<part>.json`` per part (its comparison rows, extra lines and
    raw counts) and ``reproduction.txt`` (:func:`format_result`) into ``path``.
    :func:`load_result` reads them back."""
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    plan = result.plan
    for part in result.parts:
        _write_json(out / f"{part.id}.json", _part_to_dict(part))
    _write_json(out / "reproduction.json", {"name": plan.name, "scale": plan.scale.name, "data": plan.data,
                                            "cw_schedule": plan.scale.cw_schedule,
                                            "parts": [p.id for p in result.parts], "seconds": result.seconds})
    (out / "reproduction.txt").write_text(format_result(result) + "\n", encoding="utf-8")
    return out


def load_result(path: str | pathlib.Path) -> ReproductionResult:
    """A :class:`ReproductionResult` from a directory :func:`run_plan` (``output=``) or
    :func:`save_result` wrote: the same comparison rows, so :func:`format_result` prints
    the same tables (how the docs' tables are regenerated from a stored run).

    Raises:
        DataError: a missing or malformed file.
    """
    from evcsa.errors import DataError
    from evcsa.reproduction.compare import Comparison
    from evcsa.reproduction.plans import build_plan
    from evcsa.reproduction.values import paper_value

    root = pathlib.Path(path)
    try:
        meta = json.loads((root / "reproduction.json").read_text(encoding="utf-8"))
        plan = build_plan(meta["name"], scale=meta["scale"], data=meta["data"], cw_schedule=meta["cw_schedule"])
        parts = []
        for pid in meta["parts"]:
            d = json.loads((root / f"{pid}.json").read_text(encoding="utf-8"))
            rows = tuple(Comparison(label=c["label"], ours=_estimate_from_dict(c["ours"]),
                                    paper=None if c["paper"] is None else paper_value(c["paper"]),
                                    spread=c["spread"], note=c["note"], units=c["units"])
                         for c in d["comparisons"])
            parts.append(PartResult(id=d["id"], title=d["title"], comparisons=rows, lines=tuple(d["lines"]),
                                    data=d["data"], seconds=float(d["seconds"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{root}: expected a reproduction results directory, got {type(exc).__name__}: {exc}") \
            from exc
    return ReproductionResult(plan=plan, parts=tuple(parts), seconds=float(meta["seconds"]))


def format_result(result: ReproductionResult, *, markdown: bool = False) -> str:
    """Every part's comparison table (and its extra lines), then the plan's gaps."""
    plan = result.plan
    head = (f"evcsa reproduce {plan.name} (seed {plan.paper}), scale {plan.scale.name}, data {plan.data}, "
            f"{result.seconds:.0f} s")
    blocks = [head]
    if plan.scale.name != "full" or plan.data != "mnist":
        blocks.append("NOTE: not the papers' setting (scale or data reduced): the numbers check the pipeline "
                      "and are not comparable to the papers'.")
    for part in result.parts:
        text = format_comparisons(part.comparisons, title=part.title, markdown=markdown) if part.comparisons \
            else part.title
        if part.lines:
            text += "\n" + "\n".join(part.lines)
        blocks.append(text)
    blocks.append("Known gaps (what the plan does instead):\n" + "\n".join(
        f"- [{g.part}] {g.missing} → {g.instead}" + (f" ({g.owner})" if g.owner else "") for g in plan.gaps))
    return "\n\n".join(blocks)


# -- the estimate ---------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class WorkEstimate:
    """A predicted run time: ``items`` as (what, count, seconds each, total seconds), the
    ``total`` in seconds, the ``probe_seconds`` the measurement took, and ``method``
    (how the per-item times were measured)."""

    items: tuple[tuple[str, int, float, float], ...]
    total: float
    probe_seconds: float
    method: str


def estimate_plan(plan: Plan, *, cache_dir: str | None = None, probe: int = 10,
                  log: Callable[[str], None] | None = None) -> WorkEstimate:
    """Predict the wall time of ``plan`` on this machine from a short timed run.

    Method: every graybox attack is timed by the attacks' cost model
    (:func:`evcsa.attacks.cost.estimate_attack_time`: the attack at the plan's full
    parameters on the first ``probe`` samples of X_D, scaled linearly to |X_D|; within
    about 1.5× on the reference CNN by its benchmark). A graybox set is crafted once per
    configuration (the engine's craft unit is shared by every defense). Every defense
    classifies a batch of legitimate images (the time per image includes its own ensemble:
    crops, region samples), multiplied by the classifications of the plan (games × N,
    legitimate draws × test set, sweep draws × N per point; the sweep's δ > 0 points at
    the cost of randomized squeezing). BPDA+EOT is timed with 2 steps against one
    randomized and one deterministic defense of the plan and scaled to the plan's steps.
    Not counted: model training, loading, Python overhead between units.

    Raises:
        ConfigError, DataError: the plan's data or model cannot be loaded.
    """
    from evcsa.attacks import get_attack
    from evcsa.experiments import build_defense, load_inputs
    from evcsa.randomness import DerivedKeys

    say = log or (lambda line: None)
    t0 = time.perf_counter()
    first = plan.parts[0].configs[0]
    inputs = load_inputs(first, cache_dir=cache_dir)
    x, y = inputs.samples.images, inputs.samples.labels
    n_legit = len(inputs.legitimate)
    attack_seconds: dict[str, float] = {}
    per_image: dict[str, float] = {}
    items: list[tuple[str, int, float, float]] = []

    def classify_cost(config: Any, spec: Any, index: int) -> float:
        if spec.name not in per_image:
            clf = build_defense(spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"), where=f"defenses[{index}]")
            batch = inputs.legitimate.images[: 8 if spec.kind == "region_based" else 500]
            t = time.perf_counter()
            clf.predict(batch)
            per_image[spec.name] = (time.perf_counter() - t) / len(batch)
        return per_image[spec.name]

    crafts: dict[str, int] = {}
    classifications: dict[str, int] = {}
    bpda_crafts: dict[bool, int] = {}
    bpda_spec = None
    for part in plan.parts:
        for config in part.configs:
            n = config.data.samples
            for d, spec in enumerate(config.defenses):
                randomized = spec.kind != "none" and spec.kind != "feature_squeezing"
                if part.run in ("cells", "repetitions"):
                    games = config.runs
                    count = len(config.adversaries) * games * n
                    if part.run == "cells":
                        count += (config.legitimate_draws if randomized else 1) * n_legit
                    else:
                        count += n
                    classifications[spec.name] = classifications.get(spec.name, 0) + count
                    classify_cost(config, spec, d)
            if part.run in ("cells", "repetitions"):
                for adv in config.adversaries:
                    if adv.kind == "graybox_transfer":
                        crafts[adv.params["attack"]] = crafts.get(adv.params["attack"], 0) + 1  # shared by defenses
                    elif adv.kind == "bpda_eot":
                        for spec in config.defenses:
                            randomized = spec.kind not in ("none", "feature_squeezing")
                            bpda_crafts[randomized] = bpda_crafts.get(randomized, 0) + 1
                        bpda_spec = (config, adv)
            else:  # sweep: one craft per configuration, every squeezer × δ point classified
                from evcsa.config import ComponentSpec

                crafts[config.figures.attack] = crafts.get(config.figures.attack, 0) + 1
                for d, spec in enumerate(config.defenses):
                    squeezer = str(spec.params["squeezers"])
                    noisy = ComponentSpec(kind="randomized_squeezing", label=f"{squeezer} δ>0",
                                          params={"squeezer": squeezer, "delta": 0.5})
                    for delta in config.figures.deltas:
                        count = (config.figures.draws if delta > 0 else 1) * n \
                            + (config.legitimate_draws if delta > 0 else 1) * n_legit
                        which = noisy if delta > 0 else spec
                        key = f"sweep {which.name}"
                        classifications[key] = classifications.get(key, 0) + count
                        per_image[key] = classify_cost(config, which, d)
    params_of: dict[str, dict[str, Any]] = {a: plan.scale.params_of(a) for a in crafts}
    from evcsa.attacks.cost import estimate_attack_time

    for attack in crafts:
        say(f"  timing {attack} on {min(probe, len(x))} of {len(x)} samples …")
        cost = estimate_attack_time(get_attack(attack), inputs.model, x, y, samples=len(x), probe=probe,
                                    **params_of[attack])
        attack_seconds[attack] = cost.predicted_seconds
        items.append((f"craft {attack} ({len(x)} samples)", crafts[attack], attack_seconds[attack],
                      crafts[attack] * attack_seconds[attack]))
    if bpda_spec is not None:
        from evcsa.experiments import build_adversary
        from evcsa.games import EVCSA

        config, adv = bpda_spec
        steps = int(adv.params.get("steps", 100))
        bpda_probe = attrs.evolve(adv, params={**adv.params, "steps": min(2, steps)})
        for randomized, count in sorted(bpda_crafts.items()):
            d_spec = next(s for s in config.defenses
                          if (s.kind not in ("none", "feature_squeezing")) == randomized)
            clf = build_defense(d_spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"))
            game = EVCSA.from_rules(clf, x, y, config.game, model=inputs.model, num_classes=inputs.model.num_classes)
            t = time.perf_counter()
            build_adversary(bpda_probe).craft(game.knowledge(0), np.arange(len(x)))
            each = (time.perf_counter() - t) * steps / min(2, steps)
            what = "randomized" if randomized else "deterministic"
            items.append((f"craft {adv.name} vs {what} ({len(x)} samples, {steps} steps)", count, each,
                          count * each))
    for name, count in classifications.items():
        items.append((f"classify with {name}", count, per_image[name], count * per_image[name]))
    total = sum(i[3] for i in items)
    method = (f"timed on this machine: each attack on {min(probe, len(x))} samples at full settings, scaled "
              f"linearly (evcsa.attacks.cost), one batch of classifications per defense; a graybox set "
              f"crafted once per configuration (shared by its defenses)")
    return WorkEstimate(items=tuple(items), total=total, probe_seconds=time.perf_counter() - t0, method=method)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimate(plan: Plan, estimate: WorkEstimate) -> str:
    """The estimate as text: one line per kind of work, largest first, and the total."""
    rows = sorted(estimate.items, key=lambda i: -i[3])
    width = max(len(r[0]) for r in rows)
    lines = [f"evcsa reproduce {plan.name} --estimate (scale {plan.scale.name}, data {plan.data}, one process)"]
    lines += [f"  {what.ljust(width)}  {count:>10,} × {each * 1e3:10.3f} ms = {_duration(total):>8}"
              for what, count, each, total in rows]
    lines.append(f"  predicted total: {_duration(estimate.total)} (measured in {estimate.probe_seconds:.0f} s; "
                 f"{estimate.method})")
    return "\n".join(lines)
