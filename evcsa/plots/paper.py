"""Seed 002's Figures 5–7 as the paper draws them (Mix'n'Squeeze § 5.2.1;
:mod:`evcsa.plots`), from the sweeps of every attack.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from evcsa.errors import DataError
from evcsa.plots.layout import COLORS, MARKERS, figure_legend, suptitle, ticks_for
from evcsa.plots.records import by_squeezer

if TYPE_CHECKING:
    from evcsa.experiments.results import SweepPoint

# -- seed 002's Figures 5–7 as the paper draws them: every attack of the δ sweep ------------------

#: Display names of the sweep's attacks (evcsa.attacks.registry names → the paper's column heads).
ATTACK_LABELS = {"fgsm": "FGSM", "bim": "BIM", "cw_linf_next": "C&W L∞ next", "cw_linf_ll": "C&W L∞ LL",
                 "cw_l2_next": "C&W L2 next", "cw_l2_ll": "C&W L2 LL", "cw_l0_next": "C&W L0 next",
                 "cw_l0_ll": "C&W L0 LL", "jsma_next": "JSMA next", "jsma_ll": "JSMA LL"}


def _attack_styles(attacks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One colour and marker per attack, the same in every panel and figure; "LL" targets
    dashed, the others solid (the attack pairs share a family look)."""
    return {a: {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)],
                "linestyle": "--" if a.endswith("_ll") else "-"} for i, a in enumerate(attacks)}


def _per_sample(point: SweepPoint) -> bool:
    """Whether the point's adversarial-accuracy interval is over the samples (the run
    stored per-sample counts), so that it may be drawn as a band."""
    return getattr(point, "sample_correct", None) is not None and bool(getattr(point, "sample_draws", None))


def _check_sweeps(sweeps: Mapping[str, Sequence[SweepPoint]]) -> dict[str, dict[str, list[SweepPoint]]]:
    """attack → squeezer → points by δ; raises DataError on an empty mapping or sweep."""
    if not sweeps or any(not points for points in sweeps.values()):
        raise DataError(f"expected a non-empty sweep for every attack, got {len(sweeps)} attack(s)"
                         + ("" if not sweeps else f", empty: {[a for a, p in sweeps.items() if not p]}"))
    return {a: by_squeezer(points) for a, points in sweeps.items()}


def plot_paper_accuracy_vs_delta(sweeps: Mapping[str, Sequence[SweepPoint]], n_chosen: int = 25) -> Figure:
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
    handles: list[Artist] = [Line2D([], [], color="black", linewidth=2.4, marker="o", markersize=4,
                                    label="legitimate test images")]
    handles += [Line2D([], [], color=styles[a]["color"], marker=styles[a]["marker"],
                       linestyle=styles[a]["linestyle"], label=ATTACK_LABELS.get(a, a)) for a in attacks]
    if banded:
        handles.append(Patch(color="0.5", alpha=0.3, label="band: 95 % interval over the samples"))
    figure_legend(fig, handles, ncols=6)
    suptitle(fig, "Fig. 5 (seed 002, MNIST) — accuracy vs δ on every attack's samples and on legitimate "
                   f"images (top); A*'s Adv(N = {n_chosen}, 1) vs δ (bottom)\nsamples crafted on the undefended "
                   "model (graybox), the same at every δ; δ = 0 is deterministic feature squeezing"
                   + ("" if banded else "; no bands: this run stored no per-sample counts"), fontsize=9)
    return fig


def plot_paper_advantage_vs_n(sweeps: Mapping[str, Sequence[SweepPoint]], squeezer: str, n_chosen: int = 25) -> Figure:
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

    groups = _check_sweeps(sweeps)
    attacks = [a for a in groups if groups[a].get(squeezer)]
    if not attacks:
        raise DataError(f"expected a sweep of squeezer {squeezer!r}, got squeezers "
                         f"{sorted({s for g in groups.values() for s in g})}")
    deltas = sorted({p.delta for a in attacks for p in groups[a][squeezer]})
    positive = [d for d in deltas if d > 0]
    cmap = colormaps["viridis"]
    color: dict[float, str | tuple[float, float, float, float]] = {
        d: cmap(0.05 + 0.85 * i / max(1, len(positive) - 1)) for i, d in enumerate(positive)}
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
            ticks_for(ax, all_n)
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
    suptitle(fig, f"Fig. 6 (seed 002, MNIST), {squeezer} — A*'s advantage vs N at τ = 1: Π p̂ of the N of "
                   f"{samples} sweep samples with the highest p̂, one curve per δ, one panel per attack", fontsize=9)
    return fig


def plot_paper_error_heatmap(sweeps: Mapping[str, Sequence[SweepPoint]], squeezer: str = "median-3x3",
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
    assert image is not None  # panels is not empty (its width was taken above)
    fig.colorbar(image, ax=list(axes), label="p̂ = Pr[sample succeeds]", fraction=0.03, pad=0.01)
    suptitle(fig, f"Fig. 7 (seed 002, MNIST) — unpredictability of errors, {squeezer}: per attack (row) and "
                   "sample (column) the estimated probability that the adversarial sample is misclassified; "
                   "Σ p̂ = expected errors over X_A", fontsize=9)
    return fig
