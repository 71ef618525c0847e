"""The per-cell and run-level figures of a run (:mod:`evcsa.plots`): the games' success
rates, Adv(N, τ) against τ, and Adv(N, τ) against N.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from evcsa.plots.layout import (COLORS, MARKERS, cell_figure, cell_grid, figure_legend, label_outer, panels,
                                shape_text, suptitle, ticks_for)
from evcsa.plots.records import counts_pmf, expected_advantage_at, headline_tau, submitted_counts, tail_band, tau_key
from evcsa.stats import clopper_pearson

if TYPE_CHECKING:
    from evcsa.config import ExperimentConfig
    from evcsa.experiments.results import CellResult

# -- per cell ---------------------------------------------------------------------------------

def plot_success_rate_distribution(cells: Sequence[CellResult], config: ExperimentConfig | None = None) -> Figure:
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
    fig, axes, defenses, adversaries, by = cell_figure(cells)
    tau = headline_tau(config)

    overlays = set()
    uniform = bool(shape_text(cells).startswith("R ="))  # one R and N for all: said once, in the title
    for ax, c in panels(axes, defenses, adversaries, by):
        n_chosen = int(c.n_chosen)
        counts = np.bincount(np.asarray(c.successes, dtype=np.int64), minlength=n_chosen + 1)
        rates = np.arange(n_chosen + 1) / n_chosen
        ax.bar(rates, counts / max(1, c.runs), width=0.8 / n_chosen, color="tab:blue", alpha=0.75,
               zorder=2)
        sub = submitted_counts(c)
        if sub is not None:
            pmf = counts_pmf(sub[0], sub[1])
            pmf = np.where(pmf < 1e-4, np.nan, pmf)  # no line along the axis where it is ~0
            own = sub[2].startswith("the adversary")
            style = "tab:orange" if own else "black"
            ax.plot(rates, pmf, "-", marker=".", color=style, linewidth=1.2, markersize=4, zorder=3)
            overlays.add((own, style))
        ax.axvline(tau, color="tab:red", linestyle="--", linewidth=1, zorder=1)
        ax.text(0.5, 0.97, ("" if uniform else f"R = {c.runs}, N = {n_chosen}: ") + f"mean {c.success_rate}",
                transform=ax.transAxes, fontsize=7.5, va="top", ha="center")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(0, 1.22)  # the band above 1 holds the text
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.grid(alpha=0.3, zorder=0)
    handles: list[Artist] = [Patch(color="tab:blue", alpha=0.75,
                                   label="fraction of the R games with success rate n/N")]
    for own, style in sorted(overlays):
        handles.append(Line2D([], [], color=style, marker=".", label=(
            "Poisson-binomial Pr[S = n] at the adversary's own p̂ of its top N (believed; biased up)" if own
            else "Poisson-binomial Pr[S = n] of the submitted samples (fresh classifications)")))
    handles.append(Line2D([], [], color="tab:red", linestyle="--", label=f"τ = {tau:g} (Adv counts the games at or right of it)"))
    figure_legend(fig, handles, ncols=2)
    label_outer(fig, axes, "success rate succ = n / N", "fraction of games")
    suptitle(fig, f"Success rate over the games of each cell (rows: defense; columns: adversary)\n"
                 f"{shape_text(cells)}, judged by the defense on fresh randomness; "
                 f"mean with its pooled 95 % Clopper–Pearson interval", fontsize=10)
    return fig


def plot_advantage_vs_tau(cells: Sequence[CellResult], config: ExperimentConfig | None = None) -> Figure:
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
    fig, axes, defenses, adversaries, by = cell_figure(cells)
    tau0 = headline_tau(config)
    overlays = set()
    measured = False
    uniform = bool(shape_text(cells).startswith("R ="))  # one R and N for all: said once, in the title
    for ax, c in panels(axes, defenses, adversaries, by):
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
        sub = submitted_counts(c)
        if sub is not None:
            value, low, high = tail_band(sub[0], sub[1], list(taus))
            own = sub[2].startswith("the adversary")
            style = "tab:orange" if own else "black"
            ax.plot(taus, value, "--", color=style, linewidth=1.2, zorder=4)
            if low is not None:
                ax.fill_between(taus, low, high, color=style, alpha=0.12, zorder=0)
            overlays.add((own, style, low is not None))
        exp = expected_advantage_at(c, tau0)
        if exp is not None:
            measured = True
            ax.errorbar([tau0], [exp.value], yerr=[[exp.value - exp.low], [exp.high - exp.value]],
                        fmt="D", color="black", markersize=4, capsize=3, zorder=5)
        if not uniform:
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
    figure_legend(fig, handles, ncols=2)
    label_outer(fig, axes, "τ (success-rate threshold)", "Adv(N, τ) = Pr[succ ≥ τ]")
    suptitle(fig, f"Advantage vs τ for each cell (rows: defense; columns: adversary)\n"
                 f"from the games' success counts ({shape_text(cells)}); a step at every τ = k/N", fontsize=10)
    return fig

def plot_games_advantage_vs_n(cells: Sequence[CellResult], config: ExperimentConfig | None = None) -> Figure:
    """The games' empirical Adv(N, τ) (headline τ) with its exact 95 % interval for every N
    the run played: one panel per defense, one series per adversary (its own colour and
    marker; the series are nudged sideways so that equal values do not hide each other).
    Hollow diamonds: the expected advantage of the submitted samples where the run
    measured it. A log N axis only when the N span a factor above 10.

    Raises:
        ValueError: no cells.
    """

    defenses, adversaries, by = cell_grid(cells)
    if not by:
        raise ValueError("expected cells, got none")
    tau = headline_tau(config)
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
            est = [(c.n_chosen, tau_key(c.advantage, tau), expected_advantage_at(c, tau)) for c in series]
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
            color = COLORS[k % len(COLORS)]
            ax.errorbar(x, v, yerr=yerr, fmt=MARKERS[k % len(MARKERS)] + "-", color=color, capsize=3,
                        markersize=6, markeredgecolor="black", linewidth=1)
            for xi, (_, _, exp) in zip(x, est):
                if exp is not None:
                    measured = True
                    ax.errorbar([xi + (0 if log else width / 3)], [exp.value],
                                yerr=[[exp.value - exp.low], [exp.high - exp.value]], fmt="D",
                                markerfacecolor="none", color=color, capsize=2, markersize=5)
        if log:
            ticks_for(ax, ns)
        else:
            ax.set_xticks(range(len(ns)), [str(n) for n in ns])
            ax.set_xlim(-0.6, len(ns) - 0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(d, fontsize=9, fontweight="bold")
        ax.grid(alpha=0.3)
    for ax in axes[len(defenses):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=COLORS[k % len(COLORS)], marker=MARKERS[k % len(MARKERS)],
                      markeredgecolor="black", label=f"{a}: games' Adv, 95 % Clopper–Pearson")
               for k, a in enumerate(adversaries)]
    if measured:
        handles.append(Line2D([], [], color="0.3", marker="D", markerfacecolor="none", linestyle="none",
                              label="expected advantage of the submitted samples (95 %)"))
    figure_legend(fig, handles, ncols=3)
    label_outer(fig, [list(axes[(rows - 1) * cols:len(defenses)])], "N (chosen samples per game)",
                 f"Adv(N, τ = {tau:g})")
    runs = sorted({int(c.runs) for c in cells})
    played = f"N = {', '.join(map(str, ns))}" if len(ns) > 1 else f"this run played N = {ns[0]} only"
    suptitle(fig, f"The games' advantage vs N, per defense (τ = {tau:g}; {'/'.join(map(str, runs))} games per "
                 f"point; {played})", fontsize=10)
    return fig
