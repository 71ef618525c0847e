"""The layout shared by the figures of :mod:`evcsa.plots`: markers and colours, the
grid of cell panels (defenses in rows, adversaries in columns), wrapped titles, legends
under the panels, outer labels and decade ticks.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

if TYPE_CHECKING:
    from evcsa.experiments.results import CellResult

MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray")

def cell_grid(cells: Sequence[CellResult]) -> tuple[list[str], list[str], dict[tuple[str, str], Any]]:
    defenses = list(dict.fromkeys(c.defense for c in cells))
    adversaries = list(dict.fromkeys(c.adversary for c in cells))
    return defenses, adversaries, {(c.defense, c.adversary): c for c in cells}


def panels(axes: Any, defenses: Sequence[str], adversaries: Sequence[str],
           by: Mapping[tuple[str, str], CellResult]) -> Iterator[tuple[Any, CellResult]]:
    """(axes, cell) for every panel of a :func:`cell_figure` grid that holds a cell, row by
    row (defenses down, adversaries across); empty panels are skipped."""
    for i, d in enumerate(defenses):
        for j, a in enumerate(adversaries):
            c = by.get((d, a))
            if c is not None:
                yield axes[i][j], c


def cell_figure(cells: Sequence[CellResult], *, height: float = 2.1) -> tuple[Figure, Any, list[str], list[str], dict]:
    defenses, adversaries, by = cell_grid(cells)
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


def suptitle(fig: Figure, text: str, fontsize: float = 10) -> None:
    """The figure's title, each line wrapped to the figure's width (so that a figure of few
    panels does not cut it off)."""

    width = max(30, int(fig.get_figwidth() * 72 / (0.56 * fontsize)) - 2)
    lines = [part for line in text.split("\n") for part in textwrap.wrap(line, width) or [""]]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def figure_legend(fig: Figure, handles: Sequence[Any], *, ncols: int, **kwargs: Any) -> None:
    """A figure legend under the panels, in as many columns (≤ ``ncols``) as fit its width."""
    longest = max((len(h.get_label()) for h in handles), default=1)
    fit = max(1, int(fig.get_figwidth() * 72 / (0.55 * 8 * longest + 40)))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=min(ncols, fit), **kwargs)


def label_outer(fig: Figure, axes: Any, xlabel: str, ylabel: str) -> None:
    """The x label under each bottom panel (a figure-level one would sit under the legend),
    the y label once for the figure."""
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=10)


def shape_text(cells: Sequence[CellResult]) -> str:
    """"R = 40 games of N = 25 submissions" when every cell has the same R and N, else ""."""
    runs = {int(c.runs) for c in cells}
    ns = {int(c.n_chosen) for c in cells}
    if len(runs) == 1 and len(ns) == 1:
        return f"R = {runs.pop()} games of N = {ns.pop()} submissions per cell"
    return "R games of N submissions per cell (R, N in each panel)"

def ticks_for(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Log scale with a labelled tick at every decade and at 2× and 5× it within the
    range of ``values``; plain numbers ("1, 2, 5, 10, 20, 50"), no minor labels."""

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
