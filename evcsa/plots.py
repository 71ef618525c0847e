"""The figures of a run, after seed 002 (Mix'n'Squeeze) § 4–5, and the distributions the
games produce.

Each function takes results records (:mod:`evcsa.experiments`, or the same records read
back by :func:`evcsa.report.read_results`) and returns a matplotlib ``Figure`` (built
without pyplot: no global state, no display needed); :func:`save_figures` writes them as
PNG. Nothing here plays a game or classifies an image: every number drawn is stored in
the results (statistics such as a Clopper–Pearson interval or a Poisson-binomial pmf are
computed from the stored counts).

Per cell (defense × adversary; one panel each, defenses in rows, adversaries in columns):

- :func:`plot_success_rate_distribution` — the success rate n/N of each of the R games
  as a histogram, with the exact Poisson-binomial distribution of the submitted samples
  overlaid where their success probabilities are known.
- :func:`plot_advantage_vs_tau` — the empirical Adv(N, τ) = Pr[n/N ≥ τ] over the games for
  every τ = k/N, with its 95 % Clopper–Pearson band (and the Poisson-binomial tail where
  known).

Run level:

- :func:`plot_games_advantage_vs_n` — the games' Adv(N, τ) with 95 % intervals for every N
  the run played, one series per adversary, one panel per defense.

Seed 002's figures (the δ sweep: one graybox attack on the undefended model, its samples
classified ``figures.draws`` times per δ):

- :func:`plot_examples` — Fig. 4: original, adversarial, randomized and squeezed images,
  each with the label the model gives it.
- :func:`plot_accuracy_vs_delta` — Fig. 5: accuracy on legitimate and adversarial samples
  vs δ, and the plug-in Adv(N, 1) = Π p̂ of the sweep's N best samples vs δ beside the
  games' Adv.
- :func:`plot_advantage_vs_n` — Fig. 6: the sweep's plug-in Adv(N, 1) vs N, one curve per δ.
- :func:`plot_error_heatmap` — Fig. 7: per-sample error probability p̂ with its draws.

Seed 002's figures as the paper draws them (§ 5.2.1), from the sweeps of every attack
(attack name → its sweep points; :func:`evcsa.reproduction.document.sweep_points`):

- :func:`plot_paper_accuracy_vs_delta` — Fig. 5: per squeezer, accuracy vs δ for every
  attack and legitimate, and A*'s Adv(25, 1) vs δ for every attack.
- :func:`plot_paper_advantage_vs_n` — Fig. 6 of one squeezer: Adv(N, 1) vs N per δ, one
  panel per attack.
- :func:`plot_paper_error_heatmap` — Fig. 7: median 3×3, one row per attack, δ = 0 and 0.5.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from evcsa.errors import DataError

__all__ = [
    "ATTACK_LABELS",
    "FIGURES",
    "plot_accuracy_vs_delta",
    "plot_advantage_vs_n",
    "plot_advantage_vs_tau",
    "plot_error_heatmap",
    "plot_examples",
    "plot_games_advantage_vs_n",
    "plot_paper_accuracy_vs_delta",
    "plot_paper_advantage_vs_n",
    "plot_paper_error_heatmap",
    "plot_success_rate_distribution",
    "save_figures",
]

#: File names of the figures :func:`save_figures` writes (when the run has what they show).
FIGURES = ("fig4_examples.png", "fig5_accuracy_vs_delta.png", "fig6_advantage_vs_n.png",
           "fig7_error_heatmap.png", "success_rate_distribution.png", "advantage_vs_tau.png",
           "games_advantage_vs_n.png")

_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray")


# -- what the stored records hold -------------------------------------------------------------

def _tau_key(mapping: Mapping[str, Any], tau: float) -> Any:
    """The entry of a τ-keyed mapping ("1.0" → …) for ``tau``, or None."""
    for key, value in (mapping or {}).items():
        try:
            if math.isclose(float(key), tau, abs_tol=1e-9):
                return value
        except (TypeError, ValueError):
            continue
    return None


def _headline_tau(config: Any) -> float:
    return float(config.figures.taus[0]) if config is not None else 1.0


def _expected(cell: Any, tau: float) -> Any:
    """The cell's expected advantage of its submitted samples at τ (an
    :class:`~evcsa.stats.IntervalEstimate`), when the run measured it."""
    value = getattr(cell, "expected_advantage", None)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _tau_key(value, tau)
    return value if math.isclose(tau, 1.0) else None


def _submitted(cell: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(successes int [N], draws int [N], what they are) of the samples the cell's
    adversary submitted, as far as the results know them:

    - the fresh-key successes of the submitted samples (``submitted_successes`` /
      ``submitted_draws``, :func:`evcsa.games.rejudge`), when the run counted them;
    - else the adversary's own p̂ of its N best candidates pooled over the games
      (A*, BPDA+EOT's offline selection) — what it believes, biased upwards by the
      selection;
    - else None (a graybox transfer estimates nothing).
    """
    k = getattr(cell, "submitted_successes", None)
    n = getattr(cell, "submitted_draws", None)
    if k is not None and n is not None:
        k = np.asarray(k, dtype=np.int64)
        n = np.broadcast_to(np.asarray(n, dtype=np.int64), k.shape)
        if k.size and n.min() >= 1:
            return k, n, f"fresh classifications of the submitted samples ({_draws_text(n)} each)"
    p = getattr(cell, "p_hat", None)
    draws = getattr(cell, "p_hat_draws", None)
    if p is None or not draws or len(p) < cell.n_chosen:
        return None
    top = np.sort(np.asarray(p, dtype=np.float64))[::-1][: cell.n_chosen]
    n = np.full(top.shape, int(draws), dtype=np.int64)
    return (np.rint(top * n).astype(np.int64), n,
            f"the adversary's own p̂ of its top {cell.n_chosen} ({_draws_text(n)} pooled over the games)")


def _draws_text(n: np.ndarray) -> str:
    lo, hi = int(np.min(n)), int(np.max(n))
    return f"{lo} draws" if lo == hi else f"{lo}–{hi} draws"


def _pmf(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    from evcsa.stats import poisson_binomial_pmf

    return poisson_binomial_pmf(k / n)


def _tail_band(k: np.ndarray, n: np.ndarray, taus: Sequence[float]) -> tuple[np.ndarray, ...] | None:
    """Pr[S ≥ ⌈τN⌉] at p = k/n for each τ, with the Bonferroni interval of
    :func:`evcsa.stats.expected_advantage` when it is available."""
    from evcsa import stats

    fn = getattr(stats, "expected_advantage", None)
    if fn is not None:
        est = [fn(k, n, t) for t in taus]
        return (np.array([e.value for e in est]), np.array([e.low for e in est]), np.array([e.high for e in est]))
    tail = np.cumsum(_pmf(k, n)[::-1])[::-1]
    return (np.array([tail[stats.threshold_count(t, k.size)] for t in taus]), None, None)


def _grid(cells: Sequence[Any]) -> tuple[list[str], list[str], dict[tuple[str, str], Any]]:
    defenses = list(dict.fromkeys(c.defense for c in cells))
    adversaries = list(dict.fromkeys(c.adversary for c in cells))
    return defenses, adversaries, {(c.defense, c.adversary): c for c in cells}


def _cell_figure(cells: Sequence[Any], *, height: float = 2.1) -> tuple[Figure, Any, list[str], list[str], dict]:
    defenses, adversaries, by = _grid(cells)
    if not by:
        raise ValueError("expected cells, got none")
    # at least 9.5 inches wide, so that the title and the legend's lines fit beside two panels
    fig = Figure(figsize=(max(9.5, 0.6 + 3.3 * len(adversaries)), 1.5 + height * len(defenses)),
                 layout="constrained")
    axes = fig.subplots(len(defenses), len(adversaries), squeeze=False, sharex=True, sharey=True)
    for i, d in enumerate(defenses):
        for j, a in enumerate(adversaries):
            ax = axes[i][j]
            if i == 0:
                ax.set_title(a, fontsize=9, fontweight="bold")
            if j == 0:
                ax.set_ylabel(d, fontsize=9, fontweight="bold")
            if (d, a) not in by:
                ax.text(0.5, 0.5, "not played", ha="center", va="center", transform=ax.transAxes, color="0.5")
    return fig, axes, defenses, adversaries, by


def _suptitle(fig: Figure, text: str, fontsize: float = 10) -> None:
    """The figure's title, each line wrapped to the figure's width (so that a figure of few
    panels does not cut it off)."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 72 / (0.56 * fontsize)) - 2)
    lines = [part for line in text.split("\n") for part in textwrap.wrap(line, width) or [""]]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def _legend(fig: Figure, handles: Sequence[Any], *, ncols: int, **kwargs: Any) -> None:
    """A figure legend under the panels, in as many columns (≤ ``ncols``) as fit its width."""
    longest = max((len(h.get_label()) for h in handles), default=1)
    fit = max(1, int(fig.get_figwidth() * 72 / (0.55 * 8 * longest + 40)))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=min(ncols, fit), **kwargs)


def _label_outer(fig: Figure, axes: Any, xlabel: str, ylabel: str) -> None:
    """The x label under each bottom panel (a figure-level one would sit under the legend),
    the y label once for the figure."""
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=10)


def _shape_text(cells: Sequence[Any]) -> str:
    """"R = 40 games of N = 25 submissions" when every cell has the same R and N, else ""."""
    runs = {int(c.runs) for c in cells}
    ns = {int(c.n_chosen) for c in cells}
    if len(runs) == 1 and len(ns) == 1:
        return f"R = {runs.pop()} games of N = {ns.pop()} submissions per cell"
    return "R games of N submissions per cell (R, N in each panel)"


# -- per cell ---------------------------------------------------------------------------------

def plot_success_rate_distribution(cells: Sequence[Any], config: Any = None) -> Figure:
    """The distribution of the success rate succ = n/N over each cell's R games (bars: the
    fraction of games with n successes), with the Poisson-binomial pmf Pr[S = n] of the
    submitted samples overlaid where their success probabilities are known (seed 002
    Eq. 6: the N submissions succeed independently). The dashed line is the headline τ:
    the games to its right make up Adv(N, τ).

    Args:
        cells: :class:`~evcsa.experiments.CellResult` records.
        config: the run's configuration (for τ; optional).

    Raises:
        ValueError: no cells.
    """
    fig, axes, defenses, adversaries, by = _cell_figure(cells)
    tau = _headline_tau(config)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    overlays = set()
    for i, d in enumerate(defenses):
        for j, a in enumerate(adversaries):
            c = by.get((d, a))
            if c is None:
                continue
            ax = axes[i][j]
            n_chosen = int(c.n_chosen)
            counts = np.bincount(np.asarray(c.successes, dtype=np.int64), minlength=n_chosen + 1)
            rates = np.arange(n_chosen + 1) / n_chosen
            ax.bar(rates, counts / max(1, c.runs), width=0.8 / n_chosen, color="tab:blue", alpha=0.75,
                   zorder=2)
            sub = _submitted(c)
            if sub is not None:
                pmf = _pmf(sub[0], sub[1])
                pmf = np.where(pmf < 1e-4, np.nan, pmf)  # no line along the axis where it is ~0
                own = sub[2].startswith("the adversary")
                style = "tab:orange" if own else "black"
                ax.plot(rates, pmf, "-", marker=".", color=style, linewidth=1.2, markersize=4, zorder=3)
                overlays.add((own, style))
            ax.axvline(tau, color="tab:red", linestyle="--", linewidth=1, zorder=1)
            uniform = bool(_shape_text(cells).startswith("R ="))
            ax.text(0.5, 0.97, ("" if uniform else f"R = {c.runs}, N = {n_chosen}: ") + f"mean {c.success_rate}",
                    transform=ax.transAxes, fontsize=7.5, va="top", ha="center")
            ax.set_xlim(-0.05, 1.05)
            ax.set_ylim(0, 1.22)  # the band above 1 holds the text
            ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.grid(alpha=0.3, zorder=0)
    handles = [Patch(color="tab:blue", alpha=0.75, label="fraction of the R games with success rate n/N")]
    for own, style in sorted(overlays):
        handles.append(Line2D([], [], color=style, marker=".", label=(
            "Poisson-binomial Pr[S = n] at the adversary's own p̂ of its top N (believed; biased up)" if own
            else "Poisson-binomial Pr[S = n] of the submitted samples (fresh classifications)")))
    handles.append(Line2D([], [], color="tab:red", linestyle="--", label=f"τ = {tau:g} (Adv counts the games at or right of it)"))
    _legend(fig, handles, ncols=2)
    _label_outer(fig, axes, "success rate succ = n / N", "fraction of games")
    _suptitle(fig, f"Success rate over the games of each cell (rows: defense; columns: adversary)\n"
                 f"{_shape_text(cells)}, judged by the defense on fresh randomness; "
                 f"mean with its pooled 95 % Clopper–Pearson interval", fontsize=10)
    return fig


def plot_advantage_vs_tau(cells: Sequence[Any], config: Any = None) -> Figure:
    """The empirical advantage Adv(N, τ) = #{games with n ≥ ⌈τN⌉} / R (seed 002 Eq. 4) vs
    τ for each cell, at every τ = k/N (k = 1..N), with its exact 95 % Clopper–Pearson band;
    the Poisson-binomial tail Pr[S ≥ ⌈τN⌉] of the submitted samples is drawn where known
    (with its Bonferroni interval, :func:`evcsa.stats.expected_advantage`).

    Args:
        cells: :class:`~evcsa.experiments.CellResult` records.
        config: the run's configuration (optional; marks the headline τ).

    Raises:
        ValueError: no cells.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from evcsa.stats import clopper_pearson

    fig, axes, defenses, adversaries, by = _cell_figure(cells)
    tau0 = _headline_tau(config)
    overlays = set()
    measured = False
    for i, d in enumerate(defenses):
        for j, a in enumerate(adversaries):
            c = by.get((d, a))
            if c is None:
                continue
            ax = axes[i][j]
            n_chosen = int(c.n_chosen)
            s = np.asarray(c.successes, dtype=np.int64)
            ks = np.arange(1, n_chosen + 1)
            taus = ks / n_chosen
            wins = np.array([(s >= k).sum() for k in ks])
            band = np.array([clopper_pearson(int(w), int(c.runs)) for w in wins])
            # Adv(N, τ) = Pr[n ≥ k] for every τ in ((k − 1)/N, k/N]: a step drawn "pre" from τ = 0
            x = np.concatenate(([0.0], taus))
            ax.fill_between(x, np.concatenate((band[:1, 0], band[:, 0])), np.concatenate((band[:1, 1], band[:, 1])),
                            step="pre", color="tab:blue", alpha=0.2, zorder=1)
            ax.step(x, np.concatenate((wins[:1], wins)) / c.runs, where="pre", color="tab:blue", linewidth=1.5,
                    zorder=3)
            sub = _submitted(c)
            if sub is not None:
                value, low, high = _tail_band(sub[0], sub[1], list(taus))
                own = sub[2].startswith("the adversary")
                style = "tab:orange" if own else "black"
                ax.plot(taus, value, "--", color=style, linewidth=1.2, zorder=4)
                if low is not None:
                    ax.fill_between(taus, low, high, color=style, alpha=0.12, zorder=0)
                overlays.add((own, style, low is not None))
            exp = _expected(c, tau0)
            if exp is not None:
                measured = True
                ax.errorbar([tau0], [exp.value], yerr=[[exp.value - exp.low], [exp.high - exp.value]],
                            fmt="D", color="black", markersize=4, capsize=3, zorder=5)
            if not _shape_text(cells).startswith("R ="):
                ax.text(0.03, 0.05, f"R = {c.runs}, N = {n_chosen}", transform=ax.transAxes, fontsize=7)
            ax.set_xlim(0, 1.02)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color="tab:blue", label="games: Adv(N, τ) = fraction with n/N ≥ τ"),
               Patch(color="tab:blue", alpha=0.2, label="its 95 % Clopper–Pearson interval")]
    for own, style, banded in sorted(overlays):
        text = ("Pr[S ≥ ⌈τN⌉] at the adversary's own p̂ of its top N (believed; biased up)" if own
                else "Pr[S ≥ ⌈τN⌉] of the submitted samples (fresh classifications)")
        handles.append(Line2D([], [], color=style, linestyle="--",
                              label=text + (", band: Bonferroni 95 %" if banded else "")))
    if measured:
        handles.append(Line2D([], [], color="black", marker="D", linestyle="none",
                              label=f"expected advantage at τ = {tau0:g} (95 %)"))
    _legend(fig, handles, ncols=2)
    _label_outer(fig, axes, "τ (success-rate threshold)", "Adv(N, τ) = Pr[succ ≥ τ]")
    _suptitle(fig, f"Advantage vs τ for each cell (rows: defense; columns: adversary)\n"
                 f"from the games' success counts ({_shape_text(cells)}); a step at every τ = k/N", fontsize=10)
    return fig


# -- run level --------------------------------------------------------------------------------

def _ticks_for(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Log scale with a labelled tick at every decade and at 2× and 5× it within the
    range of ``values``; plain numbers ("1, 2, 5, 10, 20, 50"), no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    lo, hi = min(values), max(values)
    ticks = [m * 10 ** e for e in range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1)
             for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]
    ticks = sorted(set(ticks) | {lo, hi})
    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    which.set_major_locator(FixedLocator(ticks))
    which.set_minor_locator(NullLocator())
    which.set_minor_formatter(NullFormatter())
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks, [f"{t:g}" for t in ticks])


def plot_games_advantage_vs_n(cells: Sequence[Any], config: Any = None) -> Figure:
    """The games' empirical Adv(N, τ) (headline τ) with its exact 95 % interval for every N
    the run played: one panel per defense, one series per adversary (its own colour and
    marker; the series are nudged sideways so that equal values do not hide each other).
    Hollow diamonds: the expected advantage of the submitted samples where the run
    measured it. A log N axis only when the N span a factor above 10.

    Raises:
        ValueError: no cells.
    """
    from matplotlib.lines import Line2D

    defenses, adversaries, by = _grid(cells)
    if not by:
        raise ValueError("expected cells, got none")
    tau = _headline_tau(config)
    ns = sorted({int(c.n_chosen) for c in cells})
    log = len(ns) > 2 and ns[-1] / ns[0] > 10
    cols = min(len(defenses), 4)
    rows = math.ceil(len(defenses) / cols)
    fig = Figure(figsize=(0.8 + 3.2 * cols, 1.8 + 2.8 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False, sharey=True)).ravel()
    width = 0.5 / max(1, len(adversaries))
    measured = False
    for ax, d in zip(axes, defenses):
        for k, a in enumerate(adversaries):
            series = sorted((c for c in cells if c.defense == d and c.adversary == a), key=lambda c: c.n_chosen)
            est = [(c.n_chosen, _tau_key(c.advantage, tau), _expected(c, tau)) for c in series]
            est = [e for e in est if e[1] is not None]
            if not est:
                continue
            shift = (k - (len(adversaries) - 1) / 2) * width
            if log:
                x = [n * 10 ** (0.04 * shift / width * 0.5) for n, _, _ in est]
            else:
                x = [ns.index(n) + shift for n, _, _ in est]
            v = np.array([e.value for _, e, _ in est])
            yerr = [v - np.array([e.low for _, e, _ in est]), np.array([e.high for _, e, _ in est]) - v]
            color = _COLORS[k % len(_COLORS)]
            ax.errorbar(x, v, yerr=yerr, fmt=_MARKERS[k % len(_MARKERS)] + "-", color=color, capsize=3,
                        markersize=6, markeredgecolor="black", linewidth=1)
            for xi, (_, _, exp) in zip(x, est):
                if exp is not None:
                    measured = True
                    ax.errorbar([xi + (0 if log else width / 3)], [exp.value],
                                yerr=[[exp.value - exp.low], [exp.high - exp.value]], fmt="D",
                                markerfacecolor="none", color=color, capsize=2, markersize=5)
        if log:
            _ticks_for(ax, ns)
        else:
            ax.set_xticks(range(len(ns)), [str(n) for n in ns])
            ax.set_xlim(-0.6, len(ns) - 0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(d, fontsize=9, fontweight="bold")
        ax.grid(alpha=0.3)
    for ax in axes[len(defenses):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=_COLORS[k % len(_COLORS)], marker=_MARKERS[k % len(_MARKERS)],
                      markeredgecolor="black", label=f"{a}: games' Adv, 95 % Clopper–Pearson")
               for k, a in enumerate(adversaries)]
    if measured:
        handles.append(Line2D([], [], color="0.3", marker="D", markerfacecolor="none", linestyle="none",
                              label="expected advantage of the submitted samples (95 %)"))
    _legend(fig, handles, ncols=3)
    _label_outer(fig, [list(axes[(rows - 1) * cols:len(defenses)])], "N (chosen samples per game)",
                 f"Adv(N, τ = {tau:g})")
    runs = sorted({int(c.runs) for c in cells})
    played = f"N = {', '.join(map(str, ns))}" if len(ns) > 1 else f"this run played N = {ns[0]} only"
    _suptitle(fig, f"The games' advantage vs N, per defense (τ = {tau:g}; {'/'.join(map(str, runs))} games per "
                 f"point; {played})", fontsize=10)
    return fig


# -- seed 002's figures (the δ sweep) --------------------------------------------------------

def _by_squeezer(sweep: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for p in sweep:
        out.setdefault(p.squeezer, []).append(p)
    for points in out.values():
        points.sort(key=lambda p: p.delta)
    return out


def _sweep_draws(point: Any, config: Any) -> int:
    """Classifications behind each p̂ of a sweep point: 1 at δ = 0 (deterministic), else
    ``figures.draws``."""
    stored = getattr(point, "draws", None)
    if stored:
        return int(stored)
    if point.delta == 0.0:
        return 1
    return int(config.figures.draws) if config is not None else 0


def _attack_text(config: Any) -> str:
    if config is None:
        return "the sweep's attack"
    eps = config.game.epsilon
    norm = {"linf": "L∞", "l2": "L2", "l0": "L0"}.get(str(config.game.norm), str(config.game.norm))
    bound = "unbounded" if eps is None else f"{norm} ε = {eps:g}"
    return f"{config.figures.attack}, {bound}"


def plot_examples(examples: Any, config: Any = None) -> Figure:
    """Fig. 4: rows original / adversarial / randomized / squeezed, one column per sample;
    each image titled with the label the undefended model gives it (red: not the true
    label). The squeezed row's label is the defense's answer for that draw of the noise;
    the randomized row's is the model's on the noisy image before squeezing (when stored).

    Args:
        examples: an :class:`~evcsa.experiments.ExampleImages`.
        config: the run's configuration (names the attack and ε; optional).
    """
    labels = examples.labels
    rows = [("original\n(natural x)", examples.original, labels.get("original")),
            (f"adversarial x′\n{_attack_text(config)}", examples.adversarial, labels.get("adversarial")),
            (f"randomized\nclip(x′ + r), δ = {examples.delta:g}", examples.randomized, labels.get("randomized")),
            (f"squeezed\n{examples.squeezer}(clip(x′ + r))", examples.squeezed, labels.get("squeezed"))]
    k = int(examples.original.shape[0])
    fig = Figure(figsize=(1.35 * k + 2.2, 7.0), layout="constrained")
    axes = fig.subplots(4, k, squeeze=False)
    true = labels.get("true")
    for r, (name, images, row_labels) in enumerate(rows):
        for i in range(k):
            ax = axes[r][i]
            img = np.asarray(images[i].detach().cpu() if hasattr(images[i], "detach") else images[i])
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(np.transpose(img, (1, 2, 0)).clip(0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row_labels is not None:
                wrong = true is not None and row_labels[i] != true[i]
                ax.set_title(f"→ {row_labels[i]}", fontsize=9, color="tab:red" if wrong else "black",
                             fontweight="bold" if wrong else "normal")
            elif r == 2:
                ax.set_title("(not stored)", fontsize=7, color="0.5")
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
    truth = "" if true is None else "true labels " + " ".join(str(t) for t in true) + "; "
    _suptitle(fig, f"Fig. 4 — examples against {examples.defense}: → the undefended model's label of each "
                 f"image; x′ crafted on the undefended model\n{truth}red = misclassified; the squeezed row's "
                 f"label is the defense's answer for this draw of r", fontsize=9)
    return fig


def plot_accuracy_vs_delta(sweep: Sequence[Any], n_chosen: int, cells: Sequence[Any] = (),
                           config: Any = None) -> Figure:
    """Fig. 5: per squeezer (columns), accuracy on legitimate samples and on the sweep's
    adversarial samples vs δ with 95 % Clopper–Pearson bands (top); below, the plug-in
    Adv(N, 1) = Π p̂ of the sweep's N samples with the highest p̂ (seed 002 Eq. 6), for the
    largest N of ``figures.n_values`` not above ``n_chosen``, with its Bonferroni 95 %
    interval (:func:`evcsa.stats.expected_advantage`; none at δ = 0, where p̂ is exact),
    and the games' Adv(N, 1) of every cell whose defense is this squeezer at a δ, as
    markers (one per adversary) — different adversaries, drawn side by side.

    Args:
        sweep: :class:`~evcsa.experiments.SweepPoint` records.
        n_chosen: the game's N.
        cells: the run's cells (optional; their markers).
        config: the run's configuration (optional; draws, attack, cell placement).

    Raises:
        ValueError: an empty sweep.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    groups = _by_squeezer(sweep)
    if not groups:
        raise ValueError("expected sweep points, got none")
    fig = Figure(figsize=(max(7.0, 4.4 * len(groups)), 7.2), layout="constrained")
    axes = fig.subplots(2, len(groups), squeeze=False, sharex="col")
    adversaries = list(dict.fromkeys(c.adversary for c in cells))
    n_used = None
    samples = None
    for col, (squeezer, points) in enumerate(groups.items()):
        deltas = [p.delta for p in points]
        ax = axes[0][col]
        for attr, color in (("legitimate_accuracy", "tab:blue"), ("adversarial_accuracy", "tab:red")):
            est = [getattr(p, attr) for p in points]
            ax.fill_between(deltas, [100 * e.low for e in est], [100 * e.high for e in est],
                            color=color, alpha=0.2, zorder=1)
            ax.plot(deltas, [100 * e.value for e in est], "o-", color=color, zorder=2, markersize=5)
        ax.set_ylim(-2, 102)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(squeezer, fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
        ax = axes[1][col]
        ns = sorted({int(n) for p in points for n in p.advantage_exact})
        usable = [n for n in ns if n <= n_chosen] or ns[:1]
        if usable:
            n = n_used = usable[-1]
            values, lows, highs = [], [], []
            for p in points:
                samples = len(p.p_hat)
                draws = _sweep_draws(p, config)
                pv = np.asarray(p.p_hat, dtype=np.float64)
                if n > pv.size:
                    values.append(np.nan), lows.append(np.nan), highs.append(np.nan)
                    continue
                top = np.sort(pv)[::-1][:n]
                if draws > 1:
                    k = np.rint(top * draws).astype(np.int64)
                    v, lo, hi = _tail_band(k, np.full(k.shape, draws), [1.0])
                    values.append(float(v[0]))
                    lows.append(float(lo[0]) if lo is not None else np.nan)
                    highs.append(float(hi[0]) if hi is not None else np.nan)
                else:
                    exact = float(np.prod(top))
                    values.append(exact), lows.append(exact), highs.append(exact)
            ax.fill_between(deltas, lows, highs, color="tab:purple", alpha=0.2, zorder=1)
            ax.plot(deltas, values, "s-", color="tab:purple", zorder=2, markersize=5)
        for c in cells:
            sq, delta = _squeezer_of(c, config)
            est = _tau_key(c.advantage, 1.0)
            if sq != squeezer or est is None or c.n_chosen != n_used:
                continue
            k = adversaries.index(c.adversary)
            x = delta + (k - (len(adversaries) - 1) / 2) * 0.022 * max(0.1, max(deltas) - min(deltas))
            ax.errorbar([x], [est.value], yerr=[[est.value - est.low], [est.high - est.value]],
                        fmt=_MARKERS[k % len(_MARKERS)], color=_COLORS[k % len(_COLORS)], markeredgecolor="black",
                        capsize=3, markersize=6, zorder=4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("δ (noise magnitude, pixel scale)")
        ax.set_ylabel(f"Adv(N = {n_used}, τ = 1)" if n_used else "advantage")
        ax.grid(alpha=0.3)
    draws = config.figures.draws if config is not None else "?"
    top = [Line2D([], [], color="tab:blue", marker="o", label="legitimate test images"),
           Line2D([], [], color="tab:red", marker="o", label=f"the sweep's adversarial samples ({draws} draws each)"),
           Patch(color="0.5", alpha=0.3, label="band: 95 % interval")]
    bottom = [Line2D([], [], color="tab:purple", marker="s",
                     label=f"sweep: plug-in Π p̂ of its best {n_used} of {samples} samples (Bonferroni 95 %)")]
    bottom += [Line2D([], [], linestyle="none", marker=_MARKERS[k % len(_MARKERS)], color=_COLORS[k % len(_COLORS)],
                      markeredgecolor="black", label=f"games: {a} (95 % CI)") for k, a in enumerate(adversaries)
               if any(_squeezer_of(c, config)[0] in groups and c.adversary == a for c in cells)]
    _legend(fig, top + bottom, ncols=2)
    _suptitle(fig, f"Fig. 5 — accuracy vs δ (top) and Adv(N, 1) vs δ (bottom); sweep samples: "
                 f"{_attack_text(config)} on the undefended model\n"
                 f"(graybox, one per X_D sample, the same at every δ); δ = 0 is deterministic feature "
                 f"squeezing", fontsize=9)
    return fig


def _squeezer_of(cell: Any, config: Any) -> tuple[str | None, float | None]:
    """(squeezer spec, δ) of the cell's defense when it is a (randomized) squeezing one."""
    return _squeezer_of_defense(cell.defense, config)


def _squeezer_of_defense(name: str, config: Any) -> tuple[str | None, float | None]:
    if config is None:
        return None, None
    for spec in config.defenses:
        if spec.name == name and spec.kind in ("feature_squeezing", "randomized_squeezing"):
            from evcsa.defenses import squeezer_from_spec

            value = spec.params.get("squeezer", spec.params.get("squeezers"))
            try:
                return squeezer_from_spec(value).spec, float(spec.params.get("delta", 0.0))
            except Exception:  # a joint detector of several squeezers: no single column
                return None, None
    return None, None


def plot_advantage_vs_n(sweep: Sequence[Any], cells: Sequence[Any] = (), config: Any = None) -> Figure:
    """Fig. 6: per squeezer (columns), the sweep's plug-in Adv(N, 1) = Π of the N largest
    p̂ (seed 002 Eq. 6) vs N, one curve per δ (δ = 0 black and dashed, drawn on top, so
    that it shows where curves coincide), with the Bonferroni 95 % band
    (:func:`evcsa.stats.expected_advantage`) at the δ of the configured defenses. The
    games' Adv is in ``games_advantage_vs_n.png`` (other adversaries; not mixed in here).
    ``cells`` is accepted for compatibility and unused.

    Raises:
        ValueError: an empty sweep.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    groups = _by_squeezer(sweep)
    if not groups:
        raise ValueError("expected sweep points, got none")
    deltas = sorted({p.delta for p in sweep})
    positive = [d for d in deltas if d > 0]
    cmap = colormaps["viridis"]
    color = {d: cmap(0.05 + 0.85 * i / max(1, len(positive) - 1)) for i, d in enumerate(positive)}
    color[0.0] = "black"
    fig = Figure(figsize=(4.4 * len(groups) + 2.6, 4.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    all_n: list[int] = []
    samples = None
    banded = False
    played = set() if config is None else {
        sd for sd in (_squeezer_of_defense(spec.name, config) for spec in config.defenses) if sd[0] is not None}
    for ax, (squeezer, points) in zip(axes, groups.items()):
        for p in sorted(points, key=lambda p: (p.delta == 0.0, p.delta)):
            ns = sorted(int(n) for n in p.advantage_exact)
            all_n += ns
            samples = len(p.p_hat)
            zero = p.delta == 0.0
            ax.plot(ns, [p.advantage_exact[str(n)] for n in ns], "--" if zero else "-", color=color[p.delta],
                    linewidth=2.2 if zero else 1.4, marker="" if zero else ".", markersize=4,
                    zorder=5 if zero else 2)
            draws = _sweep_draws(p, config)
            if draws > 1 and (squeezer, p.delta) in played:  # δ = 0: p̂ exact; bands only at the run's δ
                pv = np.sort(np.asarray(p.p_hat, dtype=np.float64))[::-1]
                bands = [_tail_band(np.rint(pv[:n] * draws).astype(np.int64), np.full(n, draws), [1.0])
                         for n in ns]
                if bands and bands[0][1] is not None:
                    banded = True
                    ax.fill_between(ns, [b[1][0] for b in bands], [b[2][0] for b in bands], color=color[p.delta],
                                    alpha=0.08, zorder=1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("N (chosen samples)")
        ax.set_title(squeezer, fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
    for ax in axes:
        if all_n:
            _ticks_for(ax, all_n)
    axes[0].set_ylabel("plug-in Adv(N, τ = 1) = Π p̂")
    handles = [Line2D([], [], color=color[d], linestyle="--" if d == 0 else "-", linewidth=2,
                      label="δ = 0 (feature squeezing)" if d == 0 else f"δ = {d:g}") for d in deltas]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="noise δ", title_fontsize=8)
    draws = config.figures.draws if config is not None else "?"
    band_text = "; bands: Bonferroni 95 % at the δ of the run's defenses"
    _suptitle(fig, f"Fig. 6 — the sweep's plug-in advantage vs N at τ = 1: Π p̂ of the N samples with the "
                 f"highest p̂ of {samples}\n({_attack_text(config)} on the undefended model; p̂ from {draws} "
                 f"draws per δ{band_text if banded else ''}; the games' Adv: "
                 f"games_advantage_vs_n.png)", fontsize=9)
    return fig


def plot_error_heatmap(cells: Sequence[Any] = (), sweep: Sequence[Any] = (), config: Any = None) -> Figure:
    """Fig. 7: the estimated probability p̂ that each adversarial sample is misclassified
    (colour, 0 to 1). Rows: the cells whose adversary estimated p̂ (A*, BPDA+EOT), labelled
    "defense × adversary (draws)"; without such cells, the sweep's squeezer × δ. Columns:
    the natural samples in X_D order (grey: not a candidate). Cells whose adversary
    estimates no p̂ (graybox transfer) are named below the map. A deterministic defense
    gives only 0 and 1; randomness spreads the probabilities (seed 002 § 5.2.1).

    Raises:
        ValueError: nothing with p̂ to show.
    """
    rows: list[tuple[str, np.ndarray, np.ndarray]] = []
    for c in cells:
        if c.p_hat is not None:
            sources = np.asarray(c.p_hat_sources if c.p_hat_sources is not None else range(len(c.p_hat)))
            draws = f"{c.p_hat_draws} draws" if c.p_hat_draws else "draws ?"
            rows.append((f"{c.defense} × {c.adversary}\n({draws} pooled over {c.runs} games)",
                         np.asarray(c.p_hat, dtype=float), sources))
    missing: dict[str, int] = {}
    for c in cells:
        if c.p_hat is None:
            missing[c.adversary] = missing.get(c.adversary, 0) + 1
    source = "each adversary's own estimates (its Classify queries, or its twin of the defense)"
    if not rows:
        for p in sweep:
            d = _sweep_draws(p, config)
            rows.append((f"{p.squeezer}, δ = {p.delta:g} ({d} draw{'s' if d != 1 else ''})",
                         np.asarray(p.p_hat, dtype=float), np.arange(len(p.p_hat))))
        source = f"the δ sweep ({_attack_text(config)} on the undefended model)"
    if not rows:
        raise ValueError("expected cells or sweep points with p̂, got none")
    width = int(max(r[2].max() for r in rows)) + 1
    grid = np.full((len(rows), width), np.nan)
    for i, (_, values, sources) in enumerate(rows):
        grid[i, sources] = values
    per_row = 0.5 if "\n" in rows[0][0] else 0.3
    height = 1.5 + per_row * len(rows) + (0.25 if missing else 0)
    fig = Figure(figsize=(min(16.0, 5.0 + 0.1 * width), height), layout="constrained")
    ax = fig.subplots()
    from matplotlib import colormaps

    cmap = colormaps["magma"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.set_xlabel("natural sample (index in X_D); grey: not a candidate")
    fig.colorbar(image, ax=ax, label="p̂ = Pr[success]", fraction=0.03, pad=0.01)
    title = f"Fig. 7 — per-sample success probability p̂, from {source}"
    if missing:
        names = ", ".join(f"{a} ({n} cell{'s' if n != 1 else ''})" for a, n in missing.items())
        title += f"\nnot shown, as it estimates no p̂: {names}"
    _suptitle(fig, title, fontsize=9)
    return fig


def save_figures(result: Any, directory: str | pathlib.Path, *, dpi: int = 110) -> list[pathlib.Path]:
    """Write the figures a run supports into ``directory`` as PNG (names in
    :data:`FIGURES`).

    Returns:
        The paths written: the example strip when there are examples; the per-cell and
        run-level figures when there are cells; the sweep figures when there is a sweep;
        the heatmap when anything has p̂.
    """
    directory = pathlib.Path(directory)
    written = []
    config = result.config

    def save(fig: Figure, name: str) -> None:
        path = directory / name
        fig.savefig(path, dpi=dpi)
        written.append(path)

    if result.examples is not None:
        save(plot_examples(result.examples, config), FIGURES[0])
    if result.sweep:
        save(plot_accuracy_vs_delta(result.sweep, config.game.n_chosen, result.cells, config), FIGURES[1])
        save(plot_advantage_vs_n(result.sweep, result.cells, config), FIGURES[2])
    if result.sweep or any(c.p_hat is not None for c in result.cells):
        save(plot_error_heatmap(result.cells, result.sweep, config), FIGURES[3])
    if result.cells:
        save(plot_success_rate_distribution(result.cells, config), FIGURES[4])
        save(plot_advantage_vs_tau(result.cells, config), FIGURES[5])
        save(plot_games_advantage_vs_n(result.cells, config), FIGURES[6])
    return written


# -- seed 002's Figures 5–7 as the paper draws them: every attack of the δ sweep ------------------

#: Display names of the sweep's attacks (evcsa.attacks.registry names → the paper's column heads).
ATTACK_LABELS = {"fgsm": "FGSM", "bim": "BIM", "cw_linf_next": "C&W L∞ next", "cw_linf_ll": "C&W L∞ LL",
                 "cw_l2_next": "C&W L2 next", "cw_l2_ll": "C&W L2 LL", "cw_l0_next": "C&W L0 next",
                 "cw_l0_ll": "C&W L0 LL", "jsma_next": "JSMA next", "jsma_ll": "JSMA LL"}


def _attack_styles(attacks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One colour and marker per attack, the same in every panel and figure; "LL" targets
    dashed, the others solid (the attack pairs share a family look)."""
    return {a: {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[i % len(_MARKERS)],
                "linestyle": "--" if a.endswith("_ll") else "-"} for i, a in enumerate(attacks)}


def _per_sample(point: Any) -> bool:
    """Whether the point's adversarial-accuracy interval is over the samples (the run
    stored per-sample counts), so that it may be drawn as a band."""
    return getattr(point, "sample_correct", None) is not None and bool(getattr(point, "sample_draws", None))


def _check_sweeps(sweeps: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, list[Any]]]:
    """attack → squeezer → points by δ; raises DataError on an empty mapping or sweep."""
    if not sweeps or any(not points for points in sweeps.values()):
        raise DataError(f"expected a non-empty sweep for every attack, got {len(sweeps)} attack(s)"
                         + ("" if not sweeps else f", empty: {[a for a, p in sweeps.items() if not p]}"))
    return {a: _by_squeezer(points) for a, points in sweeps.items()}


def plot_paper_accuracy_vs_delta(sweeps: Mapping[str, Sequence[Any]], n_chosen: int = 25) -> Figure:
    """Seed 002 Fig. 5 as the paper draws it (§ 5.2.1; caption: "accuracy and advantage of
    the adversary for δ = [0, 0.1, …, 0.8]; N = 25; legitimate accuracy shown once for each
    defense"): one column per squeezer; top, the accuracy (%) on every attack's sweep
    samples vs δ and the legitimate accuracy (black, once per squeezer); bottom, A*'s
    Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6, the stored ``advantage_exact``)
    vs δ for every attack. One colour and marker per attack in every panel. Bands: the
    95 % interval over the samples of the adversarial accuracy, only where the points
    carry per-sample counts (``sample_correct``); none otherwise.

    Args:
        sweeps: attack name → its :class:`~evcsa.experiments.SweepPoint` records.
        n_chosen: N of the advantage (the paper's 25); a sweep of fewer samples draws the
            largest stored N below it (the axis label names the N drawn).

    Raises:
        DataError: an empty mapping or sweep, or no stored N ≤ ``n_chosen`` common to
            every point.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    groups = _check_sweeps(sweeps)
    attacks = list(groups)
    styles = _attack_styles(attacks)
    stored = set.intersection(*({int(n) for n in p.advantage_exact} for ps in sweeps.values() for p in ps))
    usable = [n for n in stored if n <= n_chosen]
    if not usable:
        raise DataError(f"expected Adv(N) stored for an N ≤ {n_chosen} at every point, got N in {sorted(stored)}")
    n_chosen = max(usable)
    key = str(n_chosen)
    squeezers = list(dict.fromkeys(s for g in groups.values() for s in g))
    fig = Figure(figsize=(4.3 * len(squeezers) + 0.6, 7.6), layout="constrained")
    axes = fig.subplots(2, len(squeezers), squeeze=False, sharex=True, sharey="row")
    banded = False
    for col, squeezer in enumerate(squeezers):
        top, bottom = axes[0][col], axes[1][col]
        legit = None
        for a in attacks:
            points = groups[a].get(squeezer, [])
            if not points:
                continue
            deltas = [p.delta for p in points]
            st = styles[a]
            est = [p.adversarial_accuracy for p in points]
            if all(_per_sample(p) for p in points):
                banded = True
                top.fill_between(deltas, [100 * e.low for e in est], [100 * e.high for e in est],
                                 color=st["color"], alpha=0.1, linewidth=0, zorder=1)
            top.plot(deltas, [100 * e.value for e in est], color=st["color"], marker=st["marker"],
                     linestyle=st["linestyle"], markersize=4, linewidth=1.3, zorder=2)
            bottom.plot(deltas, [float(p.advantage_exact[key]) for p in points], color=st["color"],
                        marker=st["marker"], linestyle=st["linestyle"], markersize=4, linewidth=1.3, zorder=2)
            legit = legit or points
        if legit is not None:
            top.plot([p.delta for p in legit], [100 * p.legitimate_accuracy.value for p in legit], color="black",
                     linewidth=2.4, marker="o", markersize=4, zorder=3)
        top.set_ylim(-2, 102)
        top.set_title(squeezer, fontsize=10, fontweight="bold")
        bottom.set_ylim(-0.03, 1.03)
        bottom.set_xlabel("δ (noise magnitude, pixel scale)", fontsize=9)
        deltas = sorted({p.delta for g in groups.values() for p in g.get(squeezer, [])})
        bottom.set_xticks(deltas, [f"{d:g}" for d in deltas])
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("accuracy (%)", fontsize=9)
    axes[1][0].set_ylabel(f"A*'s Adv(N = {n_chosen}, τ = 1) = Π p̂", fontsize=9)
    handles = [Line2D([], [], color="black", linewidth=2.4, marker="o", markersize=4,
                      label="legitimate test images")]
    handles += [Line2D([], [], color=styles[a]["color"], marker=styles[a]["marker"],
                       linestyle=styles[a]["linestyle"], label=ATTACK_LABELS.get(a, a)) for a in attacks]
    if banded:
        handles.append(Patch(color="0.5", alpha=0.3, label="band: 95 % interval over the samples"))
    _legend(fig, handles, ncols=6)
    _suptitle(fig, "Fig. 5 (seed 002, MNIST) — accuracy vs δ on every attack's samples and on legitimate "
                   f"images (top); A*'s Adv(N = {n_chosen}, 1) vs δ (bottom)\nsamples crafted on the undefended "
                   "model (graybox), the same at every δ; δ = 0 is deterministic feature squeezing"
                   + ("" if banded else "; no bands: this run stored no per-sample counts"), fontsize=9)
    return fig


def plot_paper_advantage_vs_n(sweeps: Mapping[str, Sequence[Any]], squeezer: str, n_chosen: int = 25) -> Figure:
    """Seed 002 Fig. 6 for one squeezer (§ 5.2.1; caption: "variation of adversarial
    advantage Adv(A*, N, 1) (Eq. 6) as the number of chosen samples is varied for different
    randomness magnitudes δ"): one panel per attack, A*'s Adv(N, 1) = Π of the N largest
    p̂ (the stored ``advantage_exact``) vs N (log scale), one curve per δ (δ = 0 black and
    dashed, drawn on top), and a dotted grey line at the games' N (when within the stored N).

    Args:
        sweeps: attack name → its :class:`~evcsa.experiments.SweepPoint` records.
        squeezer: the squeezer's spec ("median-2x2").
        n_chosen: the N marked (the paper's 25, that of Fig. 5 and Tables 1–2).

    Raises:
        DataError: an empty mapping or sweep, or no attack swept ``squeezer``.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    groups = _check_sweeps(sweeps)
    attacks = [a for a in groups if groups[a].get(squeezer)]
    if not attacks:
        raise DataError(f"expected a sweep of squeezer {squeezer!r}, got squeezers "
                         f"{sorted({s for g in groups.values() for s in g})}")
    deltas = sorted({p.delta for a in attacks for p in groups[a][squeezer]})
    positive = [d for d in deltas if d > 0]
    cmap = colormaps["viridis"]
    color = {d: cmap(0.05 + 0.85 * i / max(1, len(positive) - 1)) for i, d in enumerate(positive)}
    color[0.0] = "black"
    ncols = min(5, len(attacks))
    nrows = math.ceil(len(attacks) / ncols)
    fig = Figure(figsize=(2.7 * ncols + 1.6, 2.5 * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    all_n: list[int] = []
    marked = False
    for i, a in enumerate(attacks):
        ax = axes[i // ncols][i % ncols]
        for p in sorted(groups[a][squeezer], key=lambda p: (p.delta == 0.0, p.delta)):
            ns = sorted(int(n) for n in p.advantage_exact)
            all_n += ns
            zero = p.delta == 0.0
            ax.plot(ns, [float(p.advantage_exact[str(n)]) for n in ns], "--" if zero else "-",
                    color=color[p.delta], linewidth=2.0 if zero else 1.2, marker="" if zero else ".",
                    markersize=3, zorder=5 if zero else 2)
        if min(all_n) <= n_chosen <= max(all_n):  # only within the stored N (a log axis)
            marked = True
            ax.axvline(n_chosen, color="0.55", linestyle=":", linewidth=1.2, zorder=1)
        ax.set_title(ATTACK_LABELS.get(a, a), fontsize=9, fontweight="bold")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for j in range(len(attacks), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    for ax in axes.flat:
        if all_n:
            _ticks_for(ax, all_n)
        ax.tick_params(labelsize=7)
    for j in range(ncols):  # the x label under the lowest visible panel of each column
        lowest = max(i for i in range(nrows) if i * ncols + j < len(attacks))
        axes[lowest][j].set_xlabel("N (chosen samples)", fontsize=8)
        axes[lowest][j].xaxis.set_tick_params(labelbottom=True)
    fig.supylabel("A*'s Adv(N, τ = 1) = Π p̂", fontsize=9)
    handles = [Line2D([], [], color=color[d], linestyle="--" if d == 0 else "-", linewidth=2,
                      label="δ = 0 (deterministic)" if d == 0 else f"δ = {d:g}") for d in deltas]
    if marked:
        handles.append(Line2D([], [], color="0.55", linestyle=":", linewidth=1.2, label=f"N = {n_chosen}"))
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="noise δ", title_fontsize=8)
    samples = len(groups[attacks[0]][squeezer][0].p_hat)
    _suptitle(fig, f"Fig. 6 (seed 002, MNIST), {squeezer} — A*'s advantage vs N at τ = 1: Π p̂ of the N of "
                   f"{samples} sweep samples with the highest p̂, one curve per δ, one panel per attack", fontsize=9)
    return fig


def plot_paper_error_heatmap(sweeps: Mapping[str, Sequence[Any]], squeezer: str = "median-3x3",
                             deltas: Sequence[float] = (0.0, 0.5)) -> Figure:
    """Seed 002 Fig. 7 (§ 5.2.1; caption: "unpredictability of errors for median smoothing
    (3×3), without randomness (top, δ = 0) and with randomness (bottom, δ = 0.5)"): one
    heatmap per δ, one row per attack, one column per adversarial sample of X_A (in X_D
    order); the colour is p̂, the fraction of draws in which the sample succeeds
    (misclassified; binary at δ = 0). Each row is labelled with its Σ p̂, the expected
    number of errors over X_A (the paper's err_XA).

    Args:
        sweeps: attack name → its :class:`~evcsa.experiments.SweepPoint` records.
        squeezer: the squeezer's spec.
        deltas: one panel per δ, top to bottom.

    Raises:
        DataError: an empty mapping or sweep, or no attack swept ``squeezer`` at a δ.
    """
    from matplotlib import colormaps

    groups = _check_sweeps(sweeps)
    panels = []
    for d in deltas:
        rows = []
        for a in groups:
            point = next((p for p in groups[a].get(squeezer, []) if math.isclose(p.delta, d)), None)
            if point is not None:
                rows.append((a, np.asarray(point.p_hat, dtype=np.float64)))
        if not rows:
            raise DataError(f"expected a sweep of {squeezer!r} at δ = {d:g}, got none")
        panels.append((d, rows))
    width = max(r[1].size for _, rows in panels for r in rows)
    n_rows = sum(len(rows) for _, rows in panels)
    fig = Figure(figsize=(min(16.0, 4.0 + 0.09 * width), 1.4 + 0.27 * n_rows + 0.5 * len(panels)),
                 layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    cmap = colormaps["magma"].with_extremes(bad="0.85")
    image = None
    for ax, (d, rows) in zip(axes, panels):
        grid = np.full((len(rows), width), np.nan)
        for i, (_, values) in enumerate(rows):
            grid[i, : values.size] = values
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                          interpolation="nearest")
        ax.set_yticks(range(len(rows)), [f"{ATTACK_LABELS.get(a, a)} (Σ p̂ {v.sum():.1f})" for a, v in rows],
                      fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{squeezer}, δ = {d:g}" + (" (deterministic: p̂ is 0 or 1)" if d == 0 else ""),
                     fontsize=9, fontweight="bold")
    axes[-1].set_xlabel("adversarial sample of X_A (index in X_D)", fontsize=8)
    fig.colorbar(image, ax=list(axes), label="p̂ = Pr[sample succeeds]", fraction=0.03, pad=0.01)
    _suptitle(fig, f"Fig. 7 (seed 002, MNIST) — unpredictability of errors, {squeezer}: per attack (row) and "
                   "sample (column) the estimated probability that the adversarial sample is misclassified; "
                   "Σ p̂ = expected errors over X_A", fontsize=9)
    return fig
