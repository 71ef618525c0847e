"""What a results directory holds, as documents and tables: results.json
(:func:`to_json`, its schema :func:`results_schema`), the summary rows and table
(:func:`summary_rows`, :func:`format_table`) and the CSV files (:func:`csv_text`,
:func:`game_rows`, :func:`sweep_rows`). :mod:`evcsa.report` is the public face."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import attrs

from evcsa import __version__
from evcsa._text import counted, printable
from evcsa.config import config_to_dict
from evcsa.stats import format_interval, format_number

if TYPE_CHECKING:  # (evcsa.experiments imports the engine; the result record is only a type here)
    from evcsa.experiments.results import ExperimentResult

__all__ = ["DIGESTS", "FORMAT", "READABLE", "SCHEMA_VERSION", "csv_text", "finite_json", "format_table",
           "game_rows", "reproducibility_notice", "results_schema", "summary_rows", "sweep_rows", "to_json"]

#: The ``format`` of the results.json this version writes, and its schema version.
SCHEMA_VERSION = 2
FORMAT = f"evcsa-results/{SCHEMA_VERSION}"
#: Formats :func:`read_results` reads (version 1 lacks created/command/evcsa_version).
READABLE = ("evcsa-results/1", FORMAT)
#: The digests of a results directory's files (``sha256sum`` format).
DIGESTS = "SHA256SUMS"


def _est(e: Any) -> dict[str, Any] | None:
    if e is None:
        return None
    return e.to_dict() if hasattr(e, "to_dict") else attrs.asdict(e)


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, as shipped in the package."""
    return json.loads(files("evcsa").joinpath("schemas/results.schema.json").read_text(encoding="utf-8"))


def reproducibility_notice(config: object) -> str | None:
    """The one-line notice for a run whose numbers cannot be repeated — the defenses' keys
    drawn from OS entropy (``reproducible = false``) — saying how to make them repeatable;
    None for a reproducible run."""
    if getattr(config, "reproducible", True):
        return None
    if hasattr(config, "master_key"):
        how = ("set reproducible = true: the keys then derive from master_key (drawn once and recorded "
               "in the results' config.toml when absent), and rerunning that config.toml repeats every number")
    else:
        how = "set reproducible = true (the keys then derive from seed): the same configuration repeats every number"
    return f"evcsa: notice: defense keys come from OS entropy (reproducible = false): these numbers cannot be repeated; {how}"


def finite_json(value: Any) -> Any:
    """JSON has no inf/NaN: map them to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def to_json(result: ExperimentResult, *, command: Sequence[str] | None = None,
            created: str | None = None) -> dict[str, Any]:
    """The JSON document of an :class:`~evcsa.experiments.ExperimentResult` (no images),
    valid against :func:`results_schema`.

    Args:
        result: the run.
        command: the command line that made it (``evcsa play …``), or None (the Python API).
        created: ISO 8601 UTC time stamp; default: now.
    """
    cells = [attrs.asdict(c, recurse=True) for c in result.cells]
    sweep = [attrs.asdict(p, recurse=True) for p in result.sweep]
    ex = result.examples
    if created is None:
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": created,
        "command": None if command is None else [str(a) for a in command],
        "evcsa_version": __version__,
        "name": result.config.name,
        "seconds": round(result.seconds, 2),
        "environment": dict(result.environment),
        "config": config_to_dict(result.config),
        "model": dict(result.model),
        "data": dict(result.data),
        "legitimate_accuracy": {k: _est(v) for k, v in result.legitimate.items()},
        "cells": cells,
        "sweep": sweep,
        "examples": None if ex is None else {
            "defense": ex.defense, "squeezer": ex.squeezer, "delta": ex.delta,
            "count": int(ex.original.shape[0]),
            "attack": result.config.figures.attack, "epsilon": result.config.game.epsilon,
            "norm": result.config.game.norm,
            "labels": {k: [int(v) for v in vs] for k, vs in ex.labels.items()},
        },
    }
    return finite_json(doc)


def _headline_tau(result: ExperimentResult) -> str:
    return repr(float(result.config.figures.taus[0]))


def summary_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    """One flat row per cell: the summary table's numbers (CSV-ready)."""
    tau = _headline_tau(result)
    rows = []
    for c in result.cells:
        legit = result.legitimate.get(c.defense)
        adv = c.advantage.get(tau)
        acc = c.adversarial_accuracy
        rows.append({
            "defense": c.defense, "adversary": c.adversary, "runs": c.runs, "n_chosen": c.n_chosen,
            "tau": float(tau),
            "legitimate_accuracy": None if legit is None else legit.value,
            "legitimate_accuracy_low": None if legit is None else legit.low,
            "legitimate_accuracy_high": None if legit is None else legit.high,
            "adversarial_accuracy": None if acc is None else acc.value,
            "adversarial_accuracy_low": None if acc is None else acc.low,
            "adversarial_accuracy_high": None if acc is None else acc.high,
            "success_rate": c.success_rate.value, "success_rate_low": c.success_rate.low,
            "success_rate_high": c.success_rate.high,
            "advantage": None if adv is None else adv.value,
            "advantage_low": None if adv is None else adv.low,
            "advantage_high": None if adv is None else adv.high,
            "plugin_advantage": c.advantage_exact.get(tau),
            **_expected_columns(c, float(tau)),
            "classify_queries_per_game": c.classify_queries,
            "gradient_flagged": c.gradient_flagged,
            "seconds": round(c.seconds, 2),
        })
    return rows


def _expected_columns(cell: Any, tau: float) -> dict[str, Any]:
    """expected_advantage(_low, _high) of the submitted samples at τ, when the cell has it."""
    from evcsa.plots import expected_advantage_at

    e = expected_advantage_at(cell, tau)
    return {"expected_advantage": None if e is None else e.value,
            "expected_advantage_low": None if e is None else e.low,
            "expected_advantage_high": None if e is None else e.high}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or low is None or high is None:  # (the rows give all three or none)
        return "—"
    return format_interval(value, low, high)


def format_table(result: ExperimentResult) -> str:
    """The summary table as aligned text: per defense × adversary, the legitimate accuracy,
    the adversarial accuracy, the success rate (mean, 95 % CI), Adv(N, τ) of the games
    (estimate, 95 % CI), the expected advantage of the submitted samples where the run
    measured it, and the plug-in Π p̂ where the adversary estimated p̂."""
    rows = summary_rows(result)
    tau = float(_headline_tau(result))
    n = result.config.game.n_chosen
    expected = any(r["expected_advantage"] is not None for r in rows)
    header = ["defense", "adversary", "legit acc %", "adv acc %", "success rate [95% CI]",
              f"Adv({n},{tau:g}) [95% CI]"] + (["E[Adv] submitted [95%]"] if expected else []) + \
             ["Π p̂ (own)", "queries/game"]
    lines = []
    for r in rows:
        lines.append([
            printable(r["defense"]), printable(r["adversary"]), _pct(r["legitimate_accuracy"]),
            _pct(r["adversarial_accuracy"]),
            _ci(r["success_rate"], r["success_rate_low"], r["success_rate_high"]),
            _ci(r["advantage"], r["advantage_low"], r["advantage_high"]),
        ] + ([_ci(r["expected_advantage"], r["expected_advantage_low"], r["expected_advantage_high"])]
             if expected else []) + [
            "—" if r["plugin_advantage"] is None else format_number(r["plugin_advantage"]),
            f"{r['classify_queries_per_game']:.0f}",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(line) for line in lines]
    runs = result.config.runs
    out.append("")
    out.append(f"{counted(runs, 'game')} per cell, N = {n}, τ = {tau:g}; "
               f"X_D = {printable(str(result.data.get('samples')))}; "
               f"legitimate accuracy on {printable(str(result.data.get('legitimate')))} "
               f"({counted(result.config.legitimate_draws, 'draw')} per image for randomized defenses).")
    out.append("Intervals are exact Clopper–Pearson (95 %); the success-rate interval pools the "
               "runs × N submissions.")
    if expected:
        out.append("E[Adv] submitted: the Poisson-binomial tail Pr[S ≥ ⌈τN⌉] at the fresh-key success "
                   "rates of the samples actually submitted (Bonferroni 95 %).")
    out.append("Π p̂ (own): a plug-in, seed 002 Eq. 6 at the adversary's own p̂ of its N best candidates "
               "pooled over all games (what it would reach if its p̂ were exact; biased up by the selection); "
               "— where the adversary estimates no p̂.")
    if any(r["gradient_flagged"] for r in rows):
        out.append("! a gradient check flagged zero, NaN or missing gradients in some cell "
                   "(see results.json notes): a low success there says nothing about robustness.")
    return "\n".join(out)


def _cell_text(v: Any) -> Any:
    """A CSV field: None → empty, a float with 4 significant digits, the rest as is."""
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.4g}"
    return v


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell_text(v) for k, v in row.items()})
    return buf.getvalue()


def game_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    rows = []
    for c in result.cells:
        for run, n in enumerate(c.successes):
            rows.append({"defense": c.defense, "adversary": c.adversary, "run": run, "successes": n,
                         "n_chosen": c.n_chosen, "success_rate": n / c.n_chosen})
    return rows


def sweep_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    rows = []
    for p in result.sweep:
        row = {"squeezer": p.squeezer, "delta": p.delta,
               "legitimate_accuracy": p.legitimate_accuracy.value,
               "legitimate_accuracy_low": p.legitimate_accuracy.low,
               "legitimate_accuracy_high": p.legitimate_accuracy.high,
               "adversarial_accuracy": p.adversarial_accuracy.value,
               "adversarial_accuracy_low": p.adversarial_accuracy.low,
               "adversarial_accuracy_high": p.adversarial_accuracy.high}
        for n, v in p.advantage_exact.items():
            row[f"plugin_advantage_N{n}"] = v
        rows.append(row)
    return rows
