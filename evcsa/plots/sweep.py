"""Seed 002's figures from a run's δ sweep (:mod:`evcsa.plots`; Mix'n'Squeeze § 5.2.1,
Figures 4–7): the example strip, accuracy against δ, the plug-in Adv(N, 1) against N
and the per-sample error heatmap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from evcsa.plots.layout import COLORS, MARKERS, figure_legend, suptitle, ticks_for
from evcsa.plots.records import (attack_text, by_squeezer, squeezer_of, squeezer_of_defense, sweep_draws, tail_band,
                                 tau_key)

if TYPE_CHECKING:
    from evcsa.config import ExperimentConfig
    from evcsa.experiments.results import CellResult, ExampleImages, SweepPoint

def plot_examples(examples: ExampleImages, config: ExperimentConfig | None = None) -> Figure:
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
            (f"adversarial x′\n{attack_text(config)}", examples.adversarial, labels.get("adversarial")),
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
    suptitle(fig, f"Fig. 4 — examples against {examples.defense}: → the undefended model's label of each "
                 f"image; x′ crafted on the undefended model\n{truth}red = misclassified; the squeezed row's "
                 f"label is the defense's answer for this draw of r", fontsize=9)
    return fig


def plot_accuracy_vs_delta(sweep: Sequence[SweepPoint], n_chosen: int, cells: Sequence[CellResult] = (),
                           config: ExperimentConfig | None = None) -> Figure:
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

    groups = by_squeezer(sweep)
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
                draws = sweep_draws(p, config)
                pv = np.asarray(p.p_hat, dtype=np.float64)
                if n > pv.size:
                    values.append(np.nan)
                    lows.append(np.nan)
                    highs.append(np.nan)
                    continue
                top = np.sort(pv)[::-1][:n]
                if draws > 1:
                    counts = np.rint(top * draws).astype(np.int64)
                    v, lo, hi = tail_band(counts, np.full(counts.shape, draws), [1.0])
                    values.append(float(v[0]))
                    lows.append(float(lo[0]) if lo is not None else np.nan)
                    highs.append(float(hi[0]) if hi is not None else np.nan)
                else:
                    exact = float(np.prod(top))
                    values.append(exact)
                    lows.append(exact)
                    highs.append(exact)
            ax.fill_between(deltas, lows, highs, color="tab:purple", alpha=0.2, zorder=1)
            ax.plot(deltas, values, "s-", color="tab:purple", zorder=2, markersize=5)
        for c in cells:
            sq, delta = squeezer_of(c, config)
            est = tau_key(c.advantage, 1.0)
            if sq != squeezer or delta is None or est is None or c.n_chosen != n_used:  # δ: set with sq
                continue
            k = adversaries.index(c.adversary)
            x = delta + (k - (len(adversaries) - 1) / 2) * 0.022 * max(0.1, max(deltas) - min(deltas))
            ax.errorbar([x], [est.value], yerr=[[est.value - est.low], [est.high - est.value]],
                        fmt=MARKERS[k % len(MARKERS)], color=COLORS[k % len(COLORS)], markeredgecolor="black",
                        capsize=3, markersize=6, zorder=4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("δ (noise magnitude, pixel scale)")
        ax.set_ylabel(f"Adv(N = {n_used}, τ = 1)" if n_used else "advantage")
        ax.grid(alpha=0.3)
    draws_label = config.figures.draws if config is not None else "?"
    top_handles: list[Artist] = [
        Line2D([], [], color="tab:blue", marker="o", label="legitimate test images"),
        Line2D([], [], color="tab:red", marker="o", label=f"the sweep's adversarial samples ({draws_label} draws each)"),
        Patch(color="0.5", alpha=0.3, label="band: 95 % interval")]
    bottom = [Line2D([], [], color="tab:purple", marker="s",
                     label=f"sweep: plug-in Π p̂ of its best {n_used} of {samples} samples (Bonferroni 95 %)")]
    bottom += [Line2D([], [], linestyle="none", marker=MARKERS[k % len(MARKERS)], color=COLORS[k % len(COLORS)],
                      markeredgecolor="black", label=f"games: {a} (95 % CI)") for k, a in enumerate(adversaries)
               if any(squeezer_of(c, config)[0] in groups and c.adversary == a for c in cells)]
    figure_legend(fig, top_handles + bottom, ncols=2)
    suptitle(fig, f"Fig. 5 — accuracy vs δ (top) and Adv(N, 1) vs δ (bottom); sweep samples: "
                 f"{attack_text(config)} on the undefended model\n"
                 f"(graybox, one per X_D sample, the same at every δ); δ = 0 is deterministic feature "
                 f"squeezing", fontsize=9)
    return fig

def plot_advantage_vs_n(sweep: Sequence[SweepPoint], cells: Sequence[CellResult] = (), config: ExperimentConfig | None = None) -> Figure:
    """Fig. 6: per squeezer (columns), the sweep's plug-in Adv(N, 1) = Π of the N largest
    p̂ (seed 002 Eq. 6) vs N, one curve per δ (δ = 0 black and dashed, drawn on top, so
    that it shows where curves coincide), with the Bonferroni 95 % band
    (:func:`evcsa.stats.expected_advantage`) at the δ of the configured defenses. The
    games' Adv is in ``games_advantage_vs_n.png`` (other adversaries; not mixed in here).
    ``cells`` is accepted for compatibility and unused.

    Raises:
        ValueError: an empty sweep.
    """

    groups = by_squeezer(sweep)
    if not groups:
        raise ValueError("expected sweep points, got none")
    deltas = sorted({p.delta for p in sweep})
    positive = [d for d in deltas if d > 0]
    cmap = colormaps["viridis"]
    color: dict[float, str | tuple[float, float, float, float]] = {
        d: cmap(0.05 + 0.85 * i / max(1, len(positive) - 1)) for i, d in enumerate(positive)}
    color[0.0] = "black"
    fig = Figure(figsize=(4.4 * len(groups) + 2.6, 4.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    all_n: list[int] = []
    samples = None
    banded = False
    played = set() if config is None else {
        sd for sd in (squeezer_of_defense(spec.name, config) for spec in config.defenses) if sd[0] is not None}
    for ax, (squeezer, points) in zip(axes, groups.items()):
        for p in sorted(points, key=lambda p: (p.delta == 0.0, p.delta)):
            ns = sorted(int(n) for n in p.advantage_exact)
            all_n += ns
            samples = len(p.p_hat)
            zero = p.delta == 0.0
            ax.plot(ns, [p.advantage_exact[str(n)] for n in ns], "--" if zero else "-", color=color[p.delta],
                    linewidth=2.2 if zero else 1.4, marker="" if zero else ".", markersize=4,
                    zorder=5 if zero else 2)
            draws = sweep_draws(p, config)
            if draws > 1 and (squeezer, p.delta) in played:  # δ = 0: p̂ exact; bands only at the run's δ
                pv = np.sort(np.asarray(p.p_hat, dtype=np.float64))[::-1]
                bands = [tail_band(np.rint(pv[:n] * draws).astype(np.int64), np.full(n, draws), [1.0])
                         for n in ns]
                lows = [b[1][0] for b in bands if b[1] is not None]  # all or none: stats has the band or not
                highs = [b[2][0] for b in bands if b[2] is not None]
                if bands and len(lows) == len(highs) == len(bands):
                    banded = True
                    ax.fill_between(ns, lows, highs, color=color[p.delta], alpha=0.08, zorder=1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("N (chosen samples)")
        ax.set_title(squeezer, fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
    for ax in axes:
        if all_n:
            ticks_for(ax, all_n)
    axes[0].set_ylabel("plug-in Adv(N, τ = 1) = Π p̂")
    handles = [Line2D([], [], color=color[d], linestyle="--" if d == 0 else "-", linewidth=2,
                      label="δ = 0 (feature squeezing)" if d == 0 else f"δ = {d:g}") for d in deltas]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="noise δ", title_fontsize=8)
    draws_label = config.figures.draws if config is not None else "?"
    band_text = "; bands: Bonferroni 95 % at the δ of the run's defenses"
    suptitle(fig, f"Fig. 6 — the sweep's plug-in advantage vs N at τ = 1: Π p̂ of the N samples with the "
                 f"highest p̂ of {samples}\n({attack_text(config)} on the undefended model; p̂ from {draws_label} "
                 f"draws per δ{band_text if banded else ''}; the games' Adv: "
                 f"games_advantage_vs_n.png)", fontsize=9)
    return fig


def plot_error_heatmap(cells: Sequence[CellResult] = (), sweep: Sequence[SweepPoint] = (), config: ExperimentConfig | None = None) -> Figure:
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
            d = sweep_draws(p, config)
            rows.append((f"{p.squeezer}, δ = {p.delta:g} ({d} draw{'s' if d != 1 else ''})",
                         np.asarray(p.p_hat, dtype=float), np.arange(len(p.p_hat))))
        source = f"the δ sweep ({attack_text(config)} on the undefended model)"
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
    suptitle(fig, title, fontsize=9)
    return fig
