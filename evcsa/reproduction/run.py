"""Running a reproduction plan, and predicting how long it will take.

:func:`run_plan` runs every part of a :class:`~evcsa.reproduction.plans.Plan` through the
experiment engine's public entry points (``run_experiment`` for the tables, ``run_cell``
for Table 3's repetitions, ``run_sweep`` for Figures 5–7) and turns the results into
:class:`~evcsa.reproduction.compare.Comparison` rows beside the papers' numbers.
:func:`estimate_plan` times a short run of each kind of work the plan contains and
extrapolates to the plan's full amount.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
import time
from typing import Any, Callable, Sequence

import attrs
import numpy as np

from evcsa._text import duration
from evcsa.errors import InvalidParameter
from evcsa.reproduction.compare import Comparison, format_comparisons
from evcsa.reproduction.plans import Part, Plan
from evcsa.reproduction.values import paper_values

#: estimates in whole minutes under 2 hours
_duration = functools.partial(duration, minute_digits=0)

__all__ = ["PartResult", "ReproductionResult", "WorkEstimate", "estimate_plan", "format_estimate",
           "format_result", "load_result", "run_plan", "sample_interval", "save_result"]


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
    """A plan's outcome: the plan, its :class:`PartResult` list, the wall time (seconds),
    the ``environment`` it ran in (evcsa, torch, the git commit when run from a
    checkout, the CPU, its cores, the workers, when it finished) and the ``model``'s
    provenance (its ``info``: name, source, weights SHA-256, where the weights come from;
    empty for runs stored before it was recorded)."""

    plan: Plan
    parts: tuple[PartResult, ...]
    seconds: float
    environment: dict[str, Any] = attrs.field(factory=dict)
    model: dict[str, Any] = attrs.field(factory=dict)


def _run_environment(executor: Any) -> dict[str, Any]:
    import os
    import platform
    import subprocess

    from evcsa.experiments.provenance import run_environment as _environment

    env = _environment()
    env.pop("threads", None)
    try:
        here = pathlib.Path(__file__).resolve().parent
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        env["commit"] = (commit + ("+changes" if dirty else "")) if commit else None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env.update(cpu=cpu or "unknown", cores=os.cpu_count() or 1,
               executor=getattr(executor, "name", "serial") if executor is not None else "serial",
               workers=int(getattr(executor, "workers", 1)) if executor is not None else 1,
               finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    return env


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


def sample_interval(correct: Sequence[int], draws: Sequence[int] | int) -> Any:
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
    from evcsa.stats import per_sample_estimate

    k = np.asarray(correct, dtype=np.int64).reshape(-1)
    n = np.broadcast_to(np.asarray(draws, dtype=np.int64), k.shape) if np.ndim(draws) == 0 else \
        np.asarray(draws, dtype=np.int64).reshape(-1)
    if n.shape != k.shape:
        raise InvalidParameter(f"expected one draw count per sample ({k.size}), got {n.size}")
    keep = n > 0
    if not keep.any():
        return None
    return per_sample_estimate(k[keep], n[keep])


def _cell_estimate(cell: Any) -> Any:
    """The cell's adversarial accuracy over its samples (:func:`sample_interval`), or the
    pooled one for a cell without per-sample counts."""
    if getattr(cell, "sample_correct", None) is None or cell.adversarial_accuracy is None:
        return cell.adversarial_accuracy
    return sample_interval(cell.sample_correct, cell.sample_submissions)


def _pooled(estimates: Sequence[Any]) -> Any:
    from evcsa.stats import BinomialEstimate

    k = sum(int(e.successes) for e in estimates)
    n = sum(int(e.trials) for e in estimates)
    return BinomialEstimate.from_counts(k, n) if n else None


class _Engine:
    """Runs a plan's configurations through the experiment engine: one run directory (a
    :class:`~evcsa.experiments.store.RunStore`) per configuration under ``root``, so a
    killed reproduction resumes where it stopped; one executor for the whole plan; and the
    finished units of the plan's other run directories shared (the same content key is the
    same work: Table 1, Table 2 and Figures 5–7 evaluate one adversarial set per attack).

    Every configuration gets the plan's master key (``master-key`` in ``root``, drawn from OS
    entropy once and kept for resumption), or for a repetition a key derived from it, so
    units that share a key were computed under the same keys."""

    def __init__(self, root: pathlib.Path, *, executor: Any, cache_dir: str | None, overwrite: bool,
                 log: Callable[[str], None], recompute_corrupt: bool = False) -> None:
        self.root, self.executor, self.cache_dir, self.overwrite, self.log = root, executor, cache_dir, overwrite, log
        self.recompute_corrupt = recompute_corrupt
        if overwrite:
            self._discard()
        self.master_key = self._plan_key()
        self.reused = self.computed = 0

    def _discard(self) -> None:
        """Remove the run directories and the key of an earlier reproduction in ``root``
        (the caller holds the reproduction's lock): only in a reproduction directory, only
        evcsa run directories, none a run is writing (every lock is taken before anything
        is deleted) and never the working directory or a parent of it."""
        import shutil

        from evcsa.experiments.store import DATABASE, LOCK, check_removable, hold_lock, release_lock

        runs = sorted({p.parent for p in self.root.glob(f"*/{DATABASE}")} | {p.parent for p in self.root.glob(
            f"*/{MARKER_RUN}")})
        if runs and not is_reproduction_directory(self.root):
            raise InvalidParameter(f"{self.root}: expected a reproduction directory to overwrite (with "
                                   f"{MARKER} or master-key), got a directory holding {len(runs)} other run "
                                   "director(ies); refusing to delete them — choose another --output",
                                   path=str(self.root))
        for run in runs:
            check_removable(run)
        held: list[int] = []
        try:
            for run in runs:
                held.append(hold_lock(run / LOCK))
            for run in runs:
                shutil.rmtree(run)
        finally:
            for fd in held:
                release_lock(fd)
        (self.root / "master-key").unlink(missing_ok=True)

    def _plan_key(self) -> str:
        from evcsa.randomness import MasterKey

        path = self.root / "master-key"
        if path.is_file():
            text = path.read_text(encoding="ascii").strip()
            return MasterKey.from_hex(text).hex()
        key = MasterKey.generate().hex()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(key + "\n", encoding="ascii")
        tmp.replace(path)
        return key

    def key_for(self, label: str | None) -> str:
        """The plan's master key (``label`` None) or the key derived from it for ``label``
        (HKDF-SHA256 via :class:`~evcsa.randomness.DerivedKeys`)."""
        from evcsa.randomness import DerivedKeys, MasterKey

        if label is None:
            return self.master_key
        keys = DerivedKeys(MasterKey.from_hex(self.master_key), "reproduce").derive(label)
        return (keys.next_key() + keys.next_key()).hex()

    def run(self, config: Any, directory: str, *, key_label: str | None = None) -> Any:
        """``run_experiment`` on ``config`` in ``root/directory`` (resumed when it holds an
        unfinished run of the same configuration), its results files published there."""
        from evcsa.experiments import run_experiment
        from evcsa.report import publish_results
        from evcsa.experiments.store import DATABASE, FinishedUnits, RunStore

        config = attrs.evolve(config, master_key=self.key_for(key_label))
        path = self.root / directory
        others = sorted(p.parent for p in self.root.glob(f"*/{DATABASE}") if p.parent != path)
        store = RunStore.open(path, config, overwrite=self.overwrite, recompute_corrupt=self.recompute_corrupt)
        try:
            if store.attempt > 1:
                self.log(f"    {directory}: resuming ({len(store.done())} units stored)")
            lines: list[str] = []
            result = run_experiment(store.config, progress=False, executor=self.executor, cache_dir=self.cache_dir,
                                    log=lines.append, store=store, shared=FinishedUnits(others))
            counts = result.environment["units"]
            self.reused += counts["reused"]
            self.computed += counts["computed"]
            self.log(f"    {directory}: {counts['units']} units ({counts['reused']} finished before or shared, "
                     f"{counts['computed']} computed) in {result.seconds:.0f} s")
            publish_results(result, path, figures=False, store=store)
            store.close("complete")
        except BaseException as exc:
            store.close("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
            raise
        return result


def _cells_part(plan: Plan, part: Part, *, engine: _Engine) -> PartResult:
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

            def paper(column: str | None) -> Any:
                return _by_id(plan, table, squeezer, delta, column) if table and squeezer else None

            accs = []
            samples: list[Any] = [0, 0]  # per sample, counts summed over the attacks
            for adv in config.adversaries:
                cell = by_cell[(spec.name, adv.name)]
                accs.append(cell.adversarial_accuracy)
                _add_samples(samples, cell.sample_correct, cell.sample_submissions)
                rows.append(Comparison(label=f"{spec.name} × {adv.name}", ours=_cell_estimate(cell),
                                       paper=paper(adv.params.get("attack")), units="percent"))
            if samples[1] is not None and np.ndim(samples[1]):
                pooled, how = sample_interval(*samples), "each sample's draws over the attacks"
            else:
                pooled, how = _pooled([a for a in accs if a is not None]), "pooled over the attacks"
            rows.append(Comparison(label=f"{spec.name} × all attacks", ours=pooled, paper=paper("all_attacks"),
                                   note=how, units="percent"))
            legit = result.legitimate[spec.name]
            rows.append(Comparison(label=f"{spec.name} legitimate", ours=legit, paper=paper("legitimate"),
                                   note=f"{legit.trials} classifications", units="percent"))
        cells += [{"defense": c.defense, "adversary": c.adversary, "adversarial_accuracy": _est(c.adversarial_accuracy),
                   "success_rate": _est(c.success_rate),
                   "sample_correct": None if c.sample_correct is None else list(c.sample_correct),
                   "sample_submissions": None if c.sample_submissions is None else list(c.sample_submissions)}
                  for c in result.cells]
        if any(s.kind == "region_based" for s in config.defenses):
            region = config
    rule = None if region is None else _region_rule(region, legitimate)
    lines = [] if rule is None else [rule]
    data = {"config": part.configs[0].name if len(part.configs) == 1 else [c.name for c in part.configs],
            "cells": cells, "legitimate": {k: _est(v) for k, v in legitimate.items()}}
    return PartResult(id=part.id, title=part.title, comparisons=tuple(rows), lines=tuple(lines), data=data,
                      seconds=time.perf_counter() - start)


def _region_rule(config: Any, legitimate: Any) -> str | None:
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


def _est(e: Any) -> Any:
    if e is None:
        return None
    return {"value": e.value, "low": e.low, "high": e.high, "successes": e.successes, "trials": e.trials}


def _xd_accuracy(config: Any, index: int, cache_dir: str | None) -> tuple[int, int, list[int]]:
    """(correct, classified, per sample 1 if correct else 0) of defense ``index`` on X_D
    itself, one classification each (keys derived from the configuration's master key)."""
    import torch

    from evcsa.experiments import build_defense, load_inputs
    from evcsa.experiments.seeds import _keys

    spec = config.defenses[index]
    inputs = load_inputs(config, cache_dir=cache_dir)
    classifier = build_defense(spec, inputs.model, _keys(config, "reproduce/x_d", spec.name),
                               where=f"defenses[{index}]")
    pred = classifier.predict(inputs.samples.images).cpu()
    hits = (pred == inputs.samples.labels).to(torch.int64)
    return int(hits.sum()), int(pred.numel()), [int(v) for v in hits]


def _repetitions_part(plan: Plan, part: Part, *, engine: _Engine) -> PartResult:
    from evcsa.stats import BinomialEstimate

    start = time.perf_counter()
    first = part.configs[0]
    columns = ["non_adversarial"] + [f"adversarial {a.name}" for a in first.adversaries]
    per: dict[str, dict[str, list[tuple[int, int]]]] = {s.name: {c: [] for c in columns} for s in first.defenses}
    # per sample, counts summed over the repetitions (for the interval over the samples)
    by_sample: dict[str, dict[str, list[Any]]] = {s.name: {c: [0, 0] for c in columns} for s in first.defenses}
    for i, config in enumerate(part.configs):
        label = f"{part.id}/repetition-{i + 1}"
        result = engine.run(config, f"{config.name}-{i + 1:02d}", key_label=label)
        by_cell = {(c.defense, c.adversary): c for c in result.cells}
        keyed = result.config  # with the repetition's master key
        for d, spec in enumerate(config.defenses):
            for adv in config.adversaries:
                cell = by_cell[(spec.name, adv.name)]
                acc = cell.adversarial_accuracy
                per[spec.name][f"adversarial {adv.name}"].append((acc.successes, acc.trials))
                _add_samples(by_sample[spec.name][f"adversarial {adv.name}"], cell.sample_correct,
                             cell.sample_submissions)
            correct, classified, hits = _xd_accuracy(keyed, d, engine.cache_dir)
            per[spec.name]["non_adversarial"].append((correct, classified))
            _add_samples(by_sample[spec.name]["non_adversarial"], hits, [1] * len(hits))
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


def _add_samples(total: list[Any], correct: Sequence[int] | None, draws: Sequence[int] | None) -> None:
    """Add one cell's per-sample counts (an attack's, or a repetition's) to ``total``
    ([correct, draws] int arrays [S], starting from [0, 0]; draws None once a cell lacks
    them)."""
    if correct is None or draws is None or total[1] is None:
        total[1] = None
        return
    total[0] = total[0] + np.asarray(correct, dtype=np.int64)
    total[1] = total[1] + np.asarray(draws, dtype=np.int64)


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


def _sweep_part(plan: Plan, part: Part, *, engine: _Engine) -> PartResult:
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
            adv = _advantage_estimate(pt.p_hat, config.figures.draws, n_show)
            data.append({"attack": attack, "squeezer": pt.squeezer, "delta": pt.delta,
                         "legitimate_accuracy": _est(pt.legitimate_accuracy),
                         "adversarial_accuracy": _est(pt.adversarial_accuracy), "p_hat": list(pt.p_hat),
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


_RUNNERS = {"cells": _cells_part, "repetitions": _repetitions_part, "sweep": _sweep_part}


#: A reproduction directory's marker and lock (held by the reproduction running there).
MARKER = "evcsa-reproduction.marker"
LOCK = "evcsa-reproduction.lock"
MARKER_RUN = "evcsa-run.marker"


def is_reproduction_directory(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is a directory ``evcsa reproduce`` made: it holds the marker or, made
    by an older evcsa, the plan's ``master-key``."""
    path = pathlib.Path(path)
    return path.is_dir() and ((path / MARKER).is_file() or (path / "master-key").is_file())


def run_plan(plan: Plan, *, output: str | pathlib.Path | None = None, cache_dir: str | None = None,
             parts: Sequence[str] | None = None, log: Callable[[str], None] | None = None,
             executor: Any = None, overwrite: bool = False, recompute_corrupt: bool = False) -> ReproductionResult:
    """Run ``plan`` (or only the parts named in ``parts``), part after part, through the
    experiment engine.

    Every configuration runs in its own run directory under ``output`` (its store, its
    results files), and a rerun of the same command on the same directory resumes: finished
    units are kept, only the missing ones run. Units shared by several configurations (a
    graybox set, a sweep's legitimate accuracy) run once for the whole plan.

    Args:
        plan: from :func:`~evcsa.reproduction.plans.build_plan`.
        output: the reproduction's directory: ``master-key`` (the plan's secret, kept for
            resumption), one run directory per configuration, ``<part>.json`` with the raw
            numbers, ``reproduction.json`` and ``reproduction.txt`` with the printed tables;
            None runs in a temporary directory that is removed afterwards (no resumption).
        cache_dir: the model cache.
        parts: part ids to run (default: all).
        log: receives one line per finished step.
        executor: where the units run (an executor of :mod:`evcsa.experiments.executors`,
            e.g. ``make_executor("processes", jobs=2)``); None runs them in this process.
        overwrite: discard what ``output`` holds and start over (only in a reproduction
            directory, never while another reproduction runs there: it holds the
            directory's lock, ``evcsa-reproduction.lock``).
        recompute_corrupt: compute again a finished unit whose stored file is corrupt.

    Raises:
        ConfigError, DataError, InvalidParameter: from the engine, before a part's work
        (e.g. ``output`` holds a run of other settings and ``overwrite`` is false).
    """
    import tempfile

    say = log or (lambda line: None)
    temporary = tempfile.TemporaryDirectory(prefix="evcsa-reproduce-") if output is None else None
    out = pathlib.Path(temporary.name if temporary is not None else output)  # type: ignore[arg-type]
    lock = None
    try:
        from evcsa.experiments.store import hold_lock

        if out.exists() and not out.is_dir():
            raise InvalidParameter(f"{out}: expected a reproduction directory, got an existing file", path=str(out))
        out.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(out / LOCK, what="a reproduction")  # before anything is discarded or written
        engine = _Engine(out, executor=executor, cache_dir=cache_dir, overwrite=overwrite, log=say,
                         recompute_corrupt=recompute_corrupt)
        (out / MARKER).write_text("an evcsa reproduction directory (evcsa reproduce --overwrite may empty it)\n",
                                  encoding="utf-8")
        environment = _run_environment(executor)  # the commit that runs: read before any work
        start = time.perf_counter()
        chosen = [plan.part(p) for p in parts] if parts is not None else list(plan.parts)
        results = []
        for part in chosen:
            say(f"  {part.id}: {len(part.configs)} configuration(s)")
            res = _RUNNERS[part.run](plan, part, engine=engine)
            say(f"  {part.id}: done in {res.seconds:.1f} s")
            results.append(res)
            if temporary is None:
                _write_json(out / f"{part.id}.json", _part_to_dict(res))
        environment["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result = ReproductionResult(plan=plan, parts=tuple(results), seconds=time.perf_counter() - start,
                                    environment=environment, model=_model_provenance(plan, cache_dir))
        if temporary is None:
            save_result(result, out)
        return result
    finally:
        if lock is not None:
            from evcsa.experiments.store import release_lock

            release_lock(lock)
        if temporary is not None:
            temporary.cleanup()


def _model_provenance(plan: Plan, cache_dir: str | None) -> dict[str, Any]:
    """The plan's model ``info`` (:func:`evcsa.models.reference_model`): what every run
    directory's results.json records as its model, once for the reproduction."""
    from evcsa.models import reference_model

    return json.loads(json.dumps(reference_model(plan.model, cache_dir=cache_dir).info))


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
    run, the wall time, the environment, the model and its provenance), one
    ``<part>.json`` per part (its comparison rows, extra lines and raw counts) and
    ``reproduction.txt`` (:func:`format_result`) into ``path``.
    :func:`load_result` reads them back."""
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    plan = result.plan
    for part in result.parts:
        _write_json(out / f"{part.id}.json", _part_to_dict(part))
    _write_json(out / "reproduction.json", {"name": plan.name, "scale": plan.scale.name, "data": plan.data,
                                            "cw_schedule": plan.scale.cw_schedule,
                                            "parts": [p.id for p in result.parts], "seconds": result.seconds,
                                            "environment": result.environment,
                                            "model": {"reference": plan.model, **result.model}})
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
        model = dict(meta.get("model") or {})
        # runs stored before the model was recorded ran evcsa's own model of their data set
        reference = model.pop("reference", meta["data"])
        plan = build_plan(meta["name"], scale=meta["scale"], data=meta["data"], model=reference,
                          cw_schedule=meta["cw_schedule"])
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
    return ReproductionResult(plan=plan, parts=tuple(parts), seconds=float(meta["seconds"]),
                              environment=dict(meta.get("environment", {})), model=model)


def format_result(result: ReproductionResult, *, markdown: bool = False) -> str:
    """Every part's comparison table (and its extra lines), then the plan's gaps."""
    plan = result.plan
    head = (f"evcsa reproduce {plan.name} (seed {plan.paper}), scale {plan.scale.name}, data {plan.data}, "
            f"{result.seconds:.0f} s")
    env = result.environment
    if env:
        head += (f"\nran on {env.get('cpu', '?')} ({env.get('cores', '?')} cores), {env.get('workers', 1)} "
                 f"worker(s) ({env.get('executor', '?')}); evcsa {env.get('evcsa', '?')}, commit "
                 f"{env.get('commit') or 'unknown'}, torch {env.get('torch', '?')}; finished {env.get('finished', '?')}")
    if result.model:
        m = result.model
        head += (f"\nmodel {plan.model}: {m.get('source', '?')} weights {m.get('weights_file', '?')} (SHA-256 "
                 f"{m.get('weights_sha256', '?')})")
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
    the cost of randomized squeezing). A graybox set is crafted once for the whole plan and
    a sweep's legitimate accuracy once per squeezer and δ (the engine shares these units).
    Each whitebox adversary (BPDA+EOT, APGD-EOT) is timed with 2 steps against the first
    defense of each kind it meets and scaled to its steps. The games count the re-judging of
    each cell's submitted samples. A determined cell (a deterministic defense, by
    :func:`~evcsa.defenses.base.is_randomized`, and an adversary that declares its prepared
    play coin-free) counts one game per play unit, as the engine plays it
    (:func:`evcsa.experiments.work.is_determined`; all games with ``EVCSA_COLLAPSE=0``). Not counted: model training, loading, Python overhead
    between units.

    Raises:
        ConfigError, DataError: the plan's data or model cannot be loaded.
    """
    from evcsa.attacks import get_attack
    from evcsa.defenses.base import is_randomized
    from evcsa.experiments import build_adversary, build_defense, load_inputs
    from evcsa.experiments.units import chunks
    from evcsa.experiments.work import collapsing
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

    randomized_of: dict[str, bool] = {}

    def classify_cost(config: Any, spec: Any, index: int) -> float:
        if spec.name not in per_image:
            clf = build_defense(spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"), where=f"defenses[{index}]")
            randomized_of[spec.name] = is_randomized(clf)
            batch = inputs.legitimate.images[: 8 if spec.kind == "region_based" else 500]
            t = time.perf_counter()
            clf.predict(batch)
            per_image[spec.name] = (time.perf_counter() - t) / len(batch)
        return per_image[spec.name]

    collapse = collapsing()
    coin_free: dict[str, bool] = {}

    def plays_without_coins(spec: Any) -> bool:
        """Whether the adversary's prepared play uses no coins (its declaration, as the
        engine reads it: :func:`evcsa.experiments.work.is_determined`)."""
        key = repr(spec)
        if key not in coin_free:
            adversary = build_adversary(spec, base_dir=first.base_dir)
            coin_free[key] = getattr(adversary, "candidates_randomized", True) is False
        return coin_free[key]

    crafts: dict[str, int] = {}
    classifications: dict[str, int] = {}
    whitebox: dict[tuple[str, str], list[Any]] = {}  # (adversary, defense kind) → [count, config, adv, defense]
    sweep_legitimate: set[tuple[str, float]] = set()
    for part in plan.parts:
        for config in part.configs:
            n = config.data.samples
            for d, spec in enumerate(config.defenses):
                if part.run in ("cells", "repetitions"):
                    classify_cost(config, spec, d)
                    randomized = randomized_of[spec.name]
                    rejudged = config.figures.draws if randomized else 1  # the submitted samples, re-judged
                    count = 0
                    for adv in config.adversaries:
                        # a determined cell plays one game per play unit (the engine's collapse)
                        once = collapse and not randomized and plays_without_coins(adv)
                        count += ((chunks(config.runs) if once else config.runs) + rejudged) * n
                    if part.run == "cells":
                        count += (config.legitimate_draws if randomized else 1) * n_legit
                    else:
                        count += n
                    classifications[spec.name] = classifications.get(spec.name, 0) + count
            if part.run in ("cells", "repetitions"):
                for adv in config.adversaries:
                    if adv.kind == "graybox_transfer":
                        crafts[adv.params["attack"]] = 1  # one craft for the whole plan (shared units)
                    elif adv.kind == "bpda_eot":
                        for spec in config.defenses:
                            entry = whitebox.setdefault((adv.name, spec.kind), [0, config, adv, spec])
                            entry[0] += 1
            else:  # sweep: the graybox set of the same attack, every squeezer × δ point classified
                from evcsa.config import ComponentSpec

                crafts[config.figures.attack] = 1
                for d, spec in enumerate(config.defenses):
                    squeezer = str(spec.params["squeezers"])
                    noisy = ComponentSpec(kind="randomized_squeezing", label=f"{squeezer} δ>0",
                                          params={"squeezer": squeezer, "delta": 0.5})
                    for delta in config.figures.deltas:
                        count = (config.figures.draws if delta > 0 else 1) * n
                        if (squeezer, delta) not in sweep_legitimate:  # shared by the sweeps of every attack
                            sweep_legitimate.add((squeezer, delta))
                            count += (config.legitimate_draws if delta > 0 else 1) * n_legit
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
    if whitebox:
        from evcsa.games import EVCSA

        for (name, kind), (count, config, adv, d_spec) in sorted(whitebox.items(), key=lambda kv: kv[0]):
            steps = int(adv.params.get("steps", 100))
            probe_adv = attrs.evolve(adv, params={**adv.params, "steps": min(2, steps)})
            clf = build_defense(d_spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"))
            game = EVCSA.from_rules(clf, x, y, config.game, model=inputs.model, num_classes=inputs.model.num_classes)
            say(f"  timing {name} against {d_spec.name} ({min(2, steps)} of {steps} steps) …")
            t = time.perf_counter()
            build_adversary(probe_adv).craft(game.knowledge(0), np.arange(len(x)))
            each = (time.perf_counter() - t) * steps / min(2, steps)
            what = kind.replace("_", " ")
            items.append((f"craft {name} vs {what} ({len(x)} samples, {steps} steps × "
                          f"{adv.params.get('eot_samples', 30)} draws)", count, each, count * each))
    for name, count in classifications.items():
        items.append((f"classify with {name}", count, per_image[name], count * per_image[name]))
    total = sum(i[3] for i in items)
    method = (f"timed on this machine: each attack on {min(probe, len(x))} samples at full settings, scaled "
              f"linearly (evcsa.attacks.cost), one batch of classifications per defense; a graybox set "
              f"crafted once for the whole plan (shared by every table and figure)")
    return WorkEstimate(items=tuple(items), total=total, probe_seconds=time.perf_counter() - t0, method=method)


def format_estimate(plan: Plan, estimate: WorkEstimate, *, jobs: int = 1) -> str:
    """The estimate as text: one line per kind of work, largest first, and the total; with
    ``jobs`` > 1, the total shared by that many workers (the work divided evenly, never less
    than the longest single unit: a lower bound that the pool reaches within its measured
    1.9× on 2 cores, docs/running-at-scale.md)."""
    rows = sorted(estimate.items, key=lambda i: -i[3])
    width = max(len(r[0]) for r in rows)
    lines = [f"evcsa reproduce {plan.name} --estimate (scale {plan.scale.name}, data {plan.data}, "
             f"{'one process' if jobs == 1 else f'timed at the threads of one of {jobs} workers'})"]
    lines += [f"  {what.ljust(width)}  {count:>10,} × {each * 1e3:10.3f} ms = {_duration(total):>8}"
              for what, count, each, total in rows]
    lines.append(f"  predicted total: {_duration(estimate.total)} in one process (measured in "
                 f"{estimate.probe_seconds:.0f} s; {estimate.method})")
    if jobs > 1:
        longest = max(each for _, _, each, _ in rows)
        lines.append(f"  with --jobs {jobs}: about {_duration(max(estimate.total / jobs, longest))} (the work shared "
                     f"evenly by {jobs} workers; the longest single unit takes {_duration(longest)})")
    return "\n".join(lines)
