"""An evaluation on disk and on the terminal: the run directory, the Markdown report, the
per-sample figure and the short summary.

Files (:func:`write_evaluation`; written into a temporary sibling directory and renamed
into place, so a failed write leaves nothing):

- ``report.md`` — the page people read: the worst-case Adv(N, τ) with its exact interval,
  the checks, per adversary the success rate and Adv, the per-sample distribution, the
  legitimate accuracy and its cost, the defense's traits and the suite, the budget, the
  rules, the environment;
- ``success_probability_distribution.png`` — per adversary, the distribution of the
  per-sample success probabilities (fresh-key classifications of every candidate);
- ``per_sample.csv`` — those probabilities, one row per natural sample;
- ``summary.txt`` — the terminal summary;
- what ``evcsa play`` writes for the same games (:func:`evcsa.report.write_results`):
  ``results.json`` (play's layout, with an ``evaluation`` section added: the budget, the
  suite, the traits, the checks, the worst case), ``results.csv``, ``games.csv``,
  ``config.toml``, ``table.txt`` (play's table) and its figures; ``evcsa show DIR`` reads
  the directory back.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import attrs
import numpy as np
from matplotlib.figure import Figure

from evcsa._files import atomic_write, umask_mode
from evcsa._text import counted
from evcsa.errors import InvalidParameter
from evcsa.config import ComponentSpec
from evcsa.evaluation import checks as chk
from evcsa.evaluation.budget import Budget
from evcsa.evaluation.checks import summarize
from evcsa.evaluation.records import ENSEMBLE_LABEL, AdversaryRow
from evcsa.evaluation.suite import Suite
from evcsa.games.rules import Rules
from evcsa.report import finite_json, check_output, move_into_place, write_digests, write_results
from evcsa.stats import BinomialEstimate, format_interval, format_number

if TYPE_CHECKING:
    from evcsa.experiments.results import ExperimentResult

__all__ = ["FIGURE", "Evaluation", "evaluation_json", "markdown", "plot_success_probabilities", "summary_text",
           "write_evaluation"]

#: The evaluation's own figure.
FIGURE = "success_probability_distribution.png"

_COLORS = ("black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan")


def _est(e: Any) -> str:
    return format_interval(e.value, e.low, e.high)


def _norm(norm: str) -> str:
    return {"linf": "L∞", "l2": "L2", "l0": "L0"}.get(norm, norm)


def _rules_text(evaluation: Evaluation) -> str:
    r = evaluation.rules
    eps = "unbounded (ε = None)" if r.epsilon is None else f"ε = {r.epsilon:g} ({_norm(r.norm)})"
    if r.goal == "targeted":
        goal = "targeted (success: C(x′) = y_t)"
    elif r.untargeted_reference == "prediction":
        goal = "untargeted (success: C(x′) ≠ C(x), seed 000)"
    else:
        goal = "untargeted (success: C(x′) ≠ y)"
    return (f"N = {r.n_chosen}, τ = {evaluation.tau:g}, {eps}, {goal}, freshness per {r.freshness}, "
            f"{r.knowledge} knowledge")


def _headline(evaluation: Evaluation) -> str:
    n, tau = evaluation.n_chosen, evaluation.tau
    worst, ens, best = evaluation.worst_case, evaluation.ensemble, evaluation.best_single
    head = f"worst-case Adv({n}, {tau:g}) = {_est(worst.advantage)}"
    crafters = len(evaluation.suite.crafters)
    if worst is ens:
        if best.advantage.value > ens.advantage.value:
            relation = "above the ensemble's, within noise"
        elif best.advantage.value == ens.advantage.value:
            relation = "equal"
        else:
            relation = "below"
        return (f"{head}, the ensemble's (per source the best of {crafters} crafters); the best single adversary, "
                f"{best.label}, measured {_est(best.advantage)} ({relation})")
    return (f"{head}, {worst.label}'s: above the ensemble's {_est(ens.advantage)} beyond noise (the ensemble's "
            "Classify estimates were too few to pick as well: raise ensemble_budget)")


def summary_text(evaluation: Evaluation) -> str:
    """The short terminal summary: the headline, one line per adversary, the legitimate
    accuracy and its cost, the checks."""
    n, tau = evaluation.n_chosen, evaluation.tau
    lines = [f"evcsa evaluate: {evaluation.defense}",
             f"  {_rules_text(evaluation)}; X_D = {evaluation.data['samples']}; budget {evaluation.budget.name} "
             f"({evaluation.budget.runs} games per adversary)",
             f"  {_headline(evaluation)}"]
    width = max(len(r.label) for r in evaluation.rows)
    lines.append(f"  {'adversary'.ljust(width)}  {'success rate [95% CI]':>22}  {f'Adv({n},{tau:g}) [95% CI]':>22}"
                 f"  {'queries/game':>12}")
    for r in evaluation.rows:
        lines.append(f"  {r.label.ljust(width)}  {_est(r.cell.success_rate):>22}  {_est(r.advantage):>22}"
                     f"  {r.cell.classify_queries:12.0f}")
    lines.append(f"  legitimate accuracy {_pct(evaluation.legitimate)} (undefended {_pct(evaluation.undefended)}: "
                 f"cost {_cost(evaluation)}; {_time_ratio(evaluation)})")
    lines.append(f"  {summarize(evaluation.checks)}")
    for c in evaluation.warnings:
        lines.append(f"  WARNING {c.name}: {c.finding}")
        lines.append(f"    what to do: {c.advice}")
    lines.append(f"  {evaluation.seconds:.0f} s")
    return "\n".join(lines)


def _pct(e: Any) -> str:
    return f"{100 * e.value:.1f} % [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _cost(evaluation: Evaluation) -> str:
    return f"{100 * (evaluation.undefended.value - evaluation.legitimate.value):+.1f} points"


def _time_ratio(evaluation: Evaluation) -> str:
    t = evaluation.seconds_per_image
    if t["model"] <= 0:
        return f"{1e3 * t['defense']:.3f} ms per image"
    return (f"{1e3 * t['defense']:.3f} ms per image, {t['defense'] / t['model']:.1f}× the model's "
            f"{1e3 * t['model']:.3f} ms")


# -- the figure -----------------------------------------------------------------------------

def plot_success_probabilities(evaluation: Evaluation) -> Figure:
    """Per adversary, the distribution of the per-sample success probabilities pᵢ (every
    natural sample's candidate classified ``rejudge_draws`` times on fresh keys): left, the
    fraction of samples in each bin of p; right, the samples sorted by p, best first, with
    N marked — the N best are what a selection at exact p would submit, and Π of them is
    Adv(N, 1) (seed 002 Eq. 6). A* shares its candidates with the first graybox attack; the
    ensemble's curve is the best of the suite per sample."""
    rows = [r for r in evaluation.rows if r.per_sample is not None and (r.role != "a_star")]
    n = evaluation.n_chosen
    m = int(evaluation.data["n_samples"])
    draws = evaluation.budget.rejudge_draws if evaluation.suite.traits.randomized else 1
    fig = Figure(figsize=(11.0, 4.9), layout="constrained")
    left, right = fig.subplots(1, 2)
    bins = np.linspace(0.0, 1.0, 21)
    for i, r in enumerate(rows):
        color = _COLORS[i % len(_COLORS)]
        p = np.asarray(r.per_sample, dtype=np.float64)
        name = "ensemble (best of the suite per sample)" if r.role == "ensemble" else r.label
        weights = np.full(p.shape, 1.0 / max(1, p.size))
        left.hist(np.clip(p, 0, 1 - 1e-9), bins=bins, weights=weights, histtype="step", linewidth=2.2 if i == 0
                  else 1.4, color=color, label=f"{name}: mean {p.mean():.3f}")
        top = np.sort(p)[::-1]
        log_adv = float(np.sum(np.log(np.clip(top[:n], 1e-300, 1.0)))) if top.size >= n else float("-inf")
        right.plot(np.arange(1, top.size + 1), top, "-", color=color, linewidth=2.2 if i == 0 else 1.4,
                   label=f"{name}: Π of the best {n} = {format_number(float(np.exp(log_adv)))}")
    left.set_xlabel(f"per-sample success probability p (fresh-key classifications: {draws} per sample)", fontsize=9)
    left.set_ylabel(f"fraction of the {m} natural samples", fontsize=9)
    left.set_xlim(0, 1)
    left.grid(alpha=0.3)
    left.legend(fontsize=7.5, loc="upper left")
    right.axvline(n, color="tab:red", linestyle="--", linewidth=1)
    right.text(n, 0.02, f" N = {n}", color="tab:red", fontsize=8, va="bottom")
    right.set_xlabel("natural samples, sorted by p (best first)", fontsize=9)
    right.set_ylabel("per-sample success probability p", fontsize=9)
    right.set_ylim(-0.02, 1.02)
    right.set_xlim(0.5, m + 0.5)
    right.grid(alpha=0.3)
    right.legend(fontsize=7.5, loc="lower left")
    fig.suptitle(f"{evaluation.defense}: per-sample success probability of each adversary's candidates\n"
                 f"{_rules_text(evaluation)}", fontsize=10)
    return fig


# -- the page -------------------------------------------------------------------------------

def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":--" if a == "l" else "--:" for a in align]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def markdown(evaluation: Evaluation, *, files: Sequence[str] = ()) -> str:
    """The report as Markdown (figures linked by file name, beside it)."""
    ev = evaluation
    n, tau = ev.n_chosen, ev.tau
    traits = ev.suite.traits
    lines = [f"# Evaluation of {ev.defense}", ""]
    lines += [f"**{_headline(ev)}.**", ""]
    lines += [f"Rules: {_rules_text(ev)}. X_D = {ev.data['samples']} ({ev.data['n_samples']} natural samples; "
              f"{counted(ev.data['skipped_misclassified'], 'misclassified one')} skipped). "
              f"{counted(ev.budget.runs, 'game')} per "
              f"adversary, each against its own draw of the defense's randomness. Budget: **{ev.budget.name}** "
              "(every setting below).", ""]
    lines += [f"Adv({n}, {tau:g}) = Pr[succ ≥ τ] over the games (seed 002 Eq. 4), with its exact 95 % Clopper–Pearson "
              "interval; succ = n / N is one game's success rate. The ensemble submits, per game, the N best "
              "candidates of the whole suite by A*'s rule (p̂ from Classify queries within the game's budget, pooled "
              "with its twin's draws where whitebox).", ""]
    lines += ["## Checks", "", f"{summarize(ev.checks)}.", ""]
    for c in ev.checks:
        tag = {"warning": "**WARNING**", "passed": "passed", "skipped": "skipped"}[c.status]
        lines.append(f"- {tag} `{c.name}`: {c.finding}.")
        if c.fired:
            lines.append(f"  **What to do:** {c.advice}.")
        lines.append(f"  *It fires when {c.title}. Source: {c.source}.*")
    lines.append("")
    lines += ["## Adversaries", ""]
    header = ["adversary", "role", "success rate [95 % CI]", f"Adv({n}, {tau:g}) [95 % CI]",
              "E[Adv] submitted [95 %]", "mean p per sample", "queries / game", "craft s", "games s"]
    table = []
    for r in ev.rows:
        e = next(iter(r.cell.expected_advantage.values()), None)
        table.append([f"**{r.label}**" if r is ev.worst_case else r.label, r.role, _est(r.cell.success_rate),
                      _est(r.advantage), "—" if e is None else _est(e),
                      "—" if r.per_sample is None else f"{float(np.mean(r.per_sample)):.3f}",
                      f"{r.cell.classify_queries:.0f}", f"{r.craft_seconds:.1f}", f"{r.play_seconds:.1f}"])
    lines += _md_table(header, table, "ll" + "r" * 7)
    lines += ["", "E[Adv] submitted: the Poisson-binomial tail at the fresh-key success probabilities of the N samples "
              "the adversary submitted in its first game (Bonferroni–Clopper–Pearson 95 %). Mean p: the mean "
              "per-sample success probability of its candidates over X_D (the ensemble: the best of the suite per "
              "sample).", ""]
    for r in ev.rows:
        lines.append(f"- **{r.label}** — {r.why}.")
    lines.append("")
    lines += ["## Per-sample success probabilities", ""]
    if FIGURE in files:
        lines += [f"![per-sample success probabilities]({FIGURE})", ""]
    draws = ev.budget.rejudge_draws if traits.randomized else 1
    lines += [f"Every candidate was classified {counted(draws, 'time')} on fresh keys, independent of the games' "
              "(its success probability p). Adv(N, 1) of N samples succeeding independently is Π pᵢ (seed 002 "
              "Eq. 6): a defense holds when few samples have p near 1. The per-sample numbers are in "
              "`per_sample.csv`.", ""]
    lines += ["## Legitimate accuracy and its cost", ""]
    legit_draws = ev.budget.legitimate_draws if traits.randomized else 1
    lines += [f"On {ev.data['legitimate']} ({ev.data['n_legitimate']} images, {counted(legit_draws, 'draw')} each): "
              f"the defense {_pct(ev.legitimate)}, the undefended model {_pct(ev.undefended)}: a cost of "
              f"{_cost(ev)}. Time per classification: {_time_ratio(ev)}.", ""]
    lines += ["## The defense and the suite", ""]
    lines += [f"- randomized: **{'yes' if traits.randomized else 'no'}** "
              f"({'EOT over its randomness, fresh keys per game' if traits.randomized else 'no EOT'})",
              f"- gradients (`surrogate_logits` on {traits.gradients.samples} natural samples): "
              f"**{traits.gradients.status}** — {traits.gradients.detail}",
              f"- gradient approximation the whitebox attacks rely on: {traits.approximation}",
              f"- quantizing: **{'yes' if traits.quantizing else 'no'}**"
              + (f" (DiscreteSearch: {'in the suite' if traits.discrete else traits.discrete_reason})"
                 if traits.quantizing else ""),
              f"- squeezers found: {', '.join(traits.squeezers) or 'none'}"]
    for note in (*ev.suite.notes, *ev.notes):
        lines.append(f"- {note}")
    lines.append("")
    lines += ["## Budget", ""]
    lines += _md_table(["setting", "value"], ev.budget.rows(), "lr")
    lines += ["", "## Rules", ""]
    lines += _md_table(["rule", "value"], [(k, "None" if v is None else v) for k, v in
                                           _plain(ev.rules).items()] + [("tau", ev.tau)], "lr")
    lines += ["", "## Environment", ""]
    env = dict(ev.environment)
    lines += _md_table(["", ""], [(k, v) for k, v in env.items()] +
                       [("model", ev.model.get("architecture") or ev.model.get("config", {}).get("architecture", "?")),
                        ("seconds", f"{ev.seconds:.1f}"),
                        ("steps", ", ".join(f"{k} {v:.1f} s" for k, v in ev.timings.items()))], "lr")
    lines += ["", "The adversaries' coins derive from the seed in `config.toml`, the defense's keys (when evaluate "
              "built it) from its `master_key`: with both, the same command repeats every number.", ""]
    if files:
        lines += ["## Files", ""]
        lines += [f"- `{f}`" for f in files]
        lines.append("")
    return "\n".join(lines)


def _plain(rules: Any) -> dict[str, Any]:
    return attrs.asdict(rules)


# -- results.json's evaluation section -----------------------------------------------------------

def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The ``evaluation`` section of results.json (JSON-ready)."""
    ev = evaluation
    traits = ev.suite.traits
    worst = ev.worst_case

    def est(e: Any) -> dict[str, Any]:
        return e.to_dict() if hasattr(e, "to_dict") else attrs.asdict(e)

    return {
        "defense": ev.defense, "tau": ev.tau, "budget": ev.budget.to_dict(),
        "worst_case": {"adversary": worst.label, "advantage": est(worst.advantage)},
        "ensemble": {"advantage": est(ev.ensemble.advantage)},
        "best_single": {"adversary": ev.best_single.label, "advantage": est(ev.best_single.advantage)},
        "traits": {"randomized": traits.randomized, "gradients": attrs.asdict(traits.gradients),
                   "approximation": traits.approximation, "quantizing": traits.quantizing,
                   "squeezers": list(traits.squeezers), "discrete": traits.discrete},
        "suite": [{"label": r.label, "role": r.role, "why": r.why, "craft_seconds": round(r.craft_seconds, 3),
                   "play_seconds": round(r.play_seconds, 3)} for r in ev.rows],
        "suite_notes": list(ev.suite.notes) + list(ev.notes),
        "legitimate_accuracy": est(ev.legitimate), "undefended_accuracy": est(ev.undefended),
        "seconds_per_image": dict(ev.seconds_per_image),
        "per_sample": {r.label: [float(v) for v in r.per_sample] for r in ev.rows if r.per_sample is not None},
        "per_sample_draws": ev.budget.rejudge_draws if traits.randomized else 1,
        "checks": [c.to_dict() for c in ev.checks],
        "check_runs": {k: v for k, v in ev.extras.items()},
        "timings": {k: round(v, 3) for k, v in ev.timings.items()},
        "seconds": round(ev.seconds, 2),
    }


def _per_sample_csv(evaluation: Evaluation) -> str:
    rows = [(r.label, r.per_sample) for r in evaluation.rows if r.per_sample is not None]
    lines = ["sample," + ",".join(label for label, _ in rows)]
    for i in range(int(evaluation.data["n_samples"])):
        lines.append(f"{i}," + ",".join(f"{float(per_sample[i]):.4g}" for _, per_sample in rows))
    return "\n".join(lines) + "\n"


def _write_text(path: pathlib.Path, text: str) -> None:
    """``text`` into ``path`` through the one atomic writer, with the mode ``open`` would give."""
    atomic_write(path, lambda fh: fh.write(text), mode="w", permissions=umask_mode())


def write_evaluation(evaluation: Evaluation, path: Any, *, overwrite: bool = False, figures: bool = True,
                     command: Sequence[str] | None = None, dpi: int = 110) -> list[str]:
    """Write the evaluation's run directory ``path`` (module docstring), atomically.

    Args:
        evaluation: an :class:`~evcsa.evaluation.Evaluation`.
        path: the directory; an existing one is refused unless ``overwrite`` (then replaced).
        figures: draw the figures.
        command: the command line recorded in results.json.
        dpi: the figures' resolution.

    Returns:
        The names of the files written.

    Raises:
        InvalidParameter: ``path`` exists (without ``overwrite``) or cannot be written.
    """
    path = check_output(path, overwrite=overwrite)
    keep = False
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".evaluate", dir=path.parent))
    try:
        inner = staging / "run"
        names: list[str] = []
        write_results(evaluation.experiment, inner, figures=figures, progress=names.append, command=command)
        os.replace(inner / "summary.txt", inner / "table.txt")
        names = ["table.txt" if n == "summary.txt" else n for n in names]
        doc = json.loads((inner / "results.json").read_text(encoding="utf-8"))
        doc["evaluation"] = finite_json(evaluation_json(evaluation))
        _write_text(inner / "results.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
        if figures:
            plot_success_probabilities(evaluation).savefig(inner / FIGURE, dpi=dpi)
            names.append(FIGURE)
        _write_text(inner / "per_sample.csv", _per_sample_csv(evaluation))
        _write_text(inner / "summary.txt", summary_text(evaluation) + "\n")
        names += ["per_sample.csv", "summary.txt", "report.md"]
        _write_text(inner / "report.md", markdown(evaluation, files=sorted(names)))
        write_digests(inner)  # results.json gained its evaluation section: digest what is there now
        try:
            move_into_place(inner, path, overwrite=overwrite)
        except InvalidParameter as exc:
            keep = "written" in exc.details  # path appeared meanwhile: the new report stays where it was written
            raise
    finally:
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(names)


@attrs.frozen(kw_only=True, eq=False)
class Evaluation:
    """What :func:`evaluate` measured (see :mod:`evcsa.evaluation.report` for its files).

    Attributes:
        defense: the defense's description; spec: its ``[[defenses]]`` table.
        rules: the rules the games were played under; tau: τ.
        budget: the :class:`~evcsa.evaluation.budget.Budget`.
        suite: the :class:`~evcsa.evaluation.suite.Suite` (traits, members, notes).
        rows: one :class:`AdversaryRow` per adversary, the ensemble first.
        legitimate: the defense's accuracy on the legitimate images (pooled draws).
        undefended: the undefended model's accuracy on the same images.
        seconds_per_image: {"defense": …, "model": …}, wall time of one classification.
        checks: the :class:`~evcsa.evaluation.checks.CheckResult` records.
        extras: the check runs' numbers (the unbounded attack's and the reruns' per-sample
            probabilities).
        data: X_D and the legitimate set, described.
        model: the model's description.
        environment: versions, threads, platform, device.
        experiment: the same results as an :class:`~evcsa.experiments.ExperimentResult`
            (what ``evcsa play`` writes; ``evcsa show`` reads it back).
        seconds: wall time; timings: per step.
        notes: remarks (graybox fallback, …).
    """

    defense: str
    spec: ComponentSpec
    rules: Rules
    tau: float
    budget: Budget
    suite: Suite = attrs.field(repr=False)
    rows: tuple[AdversaryRow, ...] = attrs.field(repr=False)
    legitimate: BinomialEstimate
    undefended: BinomialEstimate
    seconds_per_image: Mapping[str, float]
    checks: tuple[chk.CheckResult, ...]
    extras: Mapping[str, Any] = attrs.field(repr=False)
    data: Mapping[str, Any]
    model: Mapping[str, Any] = attrs.field(repr=False)
    environment: Mapping[str, Any]
    experiment: ExperimentResult = attrs.field(repr=False)
    seconds: float
    timings: Mapping[str, float]
    notes: tuple[str, ...] = ()

    @property
    def ensemble(self) -> AdversaryRow:
        """The ensemble's row."""
        return self.row(ENSEMBLE_LABEL)

    def row(self, label: str) -> AdversaryRow:
        """The row of the adversary ``label``.

        Raises:
            InvalidParameter: no such adversary.
        """
        for r in self.rows:
            if r.label == label:
                return r
        raise InvalidParameter(f"expected an adversary of the evaluation {[r.label for r in self.rows]}, got "
                               f"{label!r}")

    @property
    def best_single(self) -> AdversaryRow:
        """The single adversary with the highest Adv (ties: the higher mean success rate, then
        the one that knows more: whitebox, search, A*, graybox)."""
        knows = {"whitebox": 3, "search": 2, "a_star": 1, "graybox": 0}
        singles = [r for r in self.rows if r.label != ENSEMBLE_LABEL]
        return max(singles, key=lambda r: (r.advantage.value, r.cell.success_rate.value, knows.get(r.role, 0)))

    @property
    def worst_case(self) -> AdversaryRow:
        """The adversary whose Adv the report leads with: the ensemble's, unless a single
        adversary measured a higher Adv beyond noise (its 95 % interval entirely above the
        ensemble's) — the worst case for the defense is then that adversary's."""
        best, ens = self.best_single, self.ensemble
        return best if best.advantage.low > ens.advantage.high else ens

    @property
    def warnings(self) -> tuple[chk.CheckResult, ...]:
        """The checks that fired."""
        return tuple(c for c in self.checks if c.fired)

    @property
    def n_chosen(self) -> int:
        return self.rules.n_chosen

    def summary(self) -> str:
        """The short terminal summary (:func:`summary_text`)."""
        return summary_text(self)

    def write(self, path: Any, *, overwrite: bool = False, figures: bool = True,
              command: Sequence[str] | None = None) -> list[str]:
        """Write the run directory (:func:`write_evaluation`).

        Returns:
            The names of the files written.
        """
        return write_evaluation(self, path, overwrite=overwrite, figures=figures, command=command)
