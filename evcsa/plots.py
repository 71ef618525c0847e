"""The figures of a run, after seed 002 (Mix'n'Squeeze) § 4–5.

Each function takes results records (:mod:`evcsa.experiments`) and returns a matplotlib
``Figure`` (built without pyplot, so no global state and no display needed);
:func:`save_figures` writes them as PNG.

- :func:`plot_examples` — Fig. 4: original, adversarial, randomized and squeezed images.
- :func:`plot_accuracy_vs_delta` — Fig. 5: accuracy on legitimate and adversarial samples
  vs δ, and the exact advantage Adv(N, 1) = Π p̂ (Eq. 6) vs δ.
- :func:`plot_advantage_vs_n` — Fig. 6: Adv(N, 1) vs N at τ = 1 for several δ, with the
  games' empirical Adv(N, τ) and its interval at the played N.
- :func:`plot_error_heatmap` — Fig. 7: per-sample error probability p̂ (rows: defense ×
  adversary, or squeezer × δ; columns: adversarial samples).
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "FIGURES",
    "plot_accuracy_vs_delta",
    "plot_advantage_vs_n",
    "plot_error_heatmap",
    "plot_examples",
    "save_figures",
]

#: File names of the figures :func:`save_figures` writes.
FIGURES = ("fig4_examples.png", "fig5_accuracy_vs_delta.png", "fig6_advantage_vs_n.png",
           "fig7_error_heatmap.png")


def _by_squeezer(sweep: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for p in sweep:
        out.setdefault(p.squeezer, []).append(p)
    for points in out.values():
        points.sort(key=lambda p: p.delta)
    return out


def plot_examples(examples: Any) -> Figure:
    """Fig. 4: rows original / adversarial / randomized / squeezed, one column per sample;
    each image titled with the model's label for it (the squeezed row: the defense's
    answer for that draw of the noise).

    Args:
        examples: an :class:`~evcsa.experiments.ExampleImages`.
    """
    rows = [("original", examples.original, examples.labels.get("original")),
            ("adversarial", examples.adversarial, examples.labels.get("adversarial")),
            (f"randomized\nδ = {examples.delta:g}", examples.randomized, None),
            (f"squeezed\n{examples.squeezer}", examples.squeezed, examples.labels.get("squeezed"))]
    k = int(examples.original.shape[0])
    fig = Figure(figsize=(1.6 * k + 1.4, 7.2), layout="constrained")
    axes = fig.subplots(4, k, squeeze=False)
    true = examples.labels.get("true")
    for r, (name, images, labels) in enumerate(rows):
        for i in range(k):
            ax = axes[r][i]
            img = np.asarray(images[i].detach().cpu() if hasattr(images[i], "detach") else images[i])
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(np.transpose(img, (1, 2, 0)).clip(0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is not None:
                wrong = true is not None and labels[i] != true[i]
                ax.set_title(f"label {labels[i]}", fontsize=9, color="tab:red" if wrong else "black")
            if i == 0:
                ax.set_ylabel(name, fontsize=10)
    fig.suptitle(f"Fig. 4 — example images: original, adversarial, randomized, squeezed\n"
                 f"defense {examples.defense}; red label = misclassified", fontsize=11)
    return fig


def plot_accuracy_vs_delta(sweep: Sequence[Any], n_chosen: int) -> Figure:
    """Fig. 5: per squeezer (columns), accuracy on legitimate samples and on the sweep's
    adversarial samples vs δ with 95 % intervals (top), and Adv(N, 1) = Π p̂ vs δ (bottom)
    for the largest N of the sweep not above ``n_chosen``.

    Args:
        sweep: :class:`~evcsa.experiments.SweepPoint` records.
        n_chosen: the game's N.

    Raises:
        ValueError: an empty sweep.
    """
    groups = _by_squeezer(sweep)
    if not groups:
        raise ValueError("expected sweep points, got none")
    fig = Figure(figsize=(max(7.0, 4.6 * len(groups)), 6.6), layout="constrained")
    axes = fig.subplots(2, len(groups), squeeze=False, sharex="col")
    for col, (squeezer, points) in enumerate(groups.items()):
        deltas = [p.delta for p in points]
        ax = axes[0][col]
        for attr, label, color in (("legitimate_accuracy", "legitimate", "tab:blue"),
                                   ("adversarial_accuracy", "adversarial", "tab:red")):
            est = [getattr(p, attr) for p in points]
            ax.plot(deltas, [100 * e.value for e in est], "o-", color=color, label=label)
            ax.fill_between(deltas, [100 * e.low for e in est], [100 * e.high for e in est],
                            color=color, alpha=0.2)
        ax.set_ylim(-2, 102)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(squeezer)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=9)
        ax = axes[1][col]
        ns = sorted({int(n) for p in points for n in p.advantage_exact})
        usable = [n for n in ns if n <= n_chosen] or ns[:1]
        if usable:
            n = usable[-1]
            adv = [p.advantage_exact.get(str(n), np.nan) for p in points]
            ax.plot(deltas, adv, "s-", color="tab:purple", label=f"Adv({n}, 1) = Π p̂")
            ax.legend(loc="upper right", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("δ (noise magnitude)")
        ax.set_ylabel("advantage")
        ax.grid(alpha=0.3)
    fig.suptitle("Fig. 5 — accuracy on legitimate and adversarial samples vs δ,\n"
                 "and the greedy adversary's advantage Π p̂", fontsize=11)
    return fig


def _squeezer_of(cell: Any, config: Any) -> tuple[str | None, float | None]:
    for spec in config.defenses:
        if spec.name == cell.defense and spec.kind in ("feature_squeezing", "randomized_squeezing"):
            from evcsa.defenses import squeezer_from_spec

            value = spec.params.get("squeezer", spec.params.get("squeezers"))
            return squeezer_from_spec(value).spec, float(spec.params.get("delta", 0.0))
    return None, None


def plot_advantage_vs_n(sweep: Sequence[Any], cells: Sequence[Any] = (), config: Any = None) -> Figure:
    """Fig. 6: per squeezer (columns), Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6)
    vs N at τ = 1, one curve per δ of the sweep; the games' empirical Adv(N, 1) with its
    95 % interval is drawn at the played N for each cell on that squeezer (marker per
    adversary, colour of its δ, nudged sideways so that they do not hide each other).

    Args:
        sweep: :class:`~evcsa.experiments.SweepPoint` records.
        cells: :class:`~evcsa.experiments.CellResult` records (optional).
        config: the :class:`~evcsa.config.ExperimentConfig` (to place the cells).

    Raises:
        ValueError: an empty sweep.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    groups = _by_squeezer(sweep)
    if not groups:
        raise ValueError("expected sweep points, got none")
    deltas = sorted({p.delta for p in sweep})
    cmap = colormaps["viridis"]
    color = {d: cmap(0.9 * i / max(1, len(deltas) - 1)) for i, d in enumerate(deltas)}
    markers = ["o", "^", "s", "D", "v", "P", "X"]
    adversaries = list(dict.fromkeys(c.adversary for c in cells))
    fig = Figure(figsize=(4.8 * len(groups) + 2.4, 4.6), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (squeezer, points) in zip(axes, groups.items()):
        for p in points:
            ns = sorted(int(n) for n in p.advantage_exact)
            ax.plot(ns, [p.advantage_exact[str(n)] for n in ns], "-", color=color[p.delta], linewidth=1.6)
        if config is not None:
            for c in cells:
                sq, delta = _squeezer_of(c, config)
                key = next((k for k in c.advantage if float(k) == 1.0), None)
                if sq != squeezer or key is None:
                    continue
                est = c.advantage[key]
                k = adversaries.index(c.adversary)
                near = min(deltas, key=lambda d: abs(d - delta))
                x = c.n_chosen * (1.0 + 0.06 * (k - (len(adversaries) - 1) / 2))
                ax.errorbar([x], [est.value], yerr=[[est.value - est.low], [est.high - est.value]],
                            fmt=markers[k % len(markers)], color=color[near], markeredgecolor="black",
                            ecolor="black", capsize=3, markersize=7)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("N (chosen samples)")
        ax.set_ylabel("Adv(N, τ = 1)")
        ax.set_title(squeezer)
        ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=color[d], linewidth=2, label=f"Π p̂, δ = {d:g}") for d in deltas]
    handles += [Line2D([], [], linestyle="none", marker=markers[k % len(markers)], color="0.6",
                       markeredgecolor="black", label=f"games: {a}") for k, a in enumerate(adversaries)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    fig.suptitle("Fig. 6 — advantage vs N at τ = 1\nlines: Π p̂ of the top N (Eq. 6); markers: the games' "
                 "Adv with 95 % interval (colour: δ)", fontsize=10)
    return fig


def plot_error_heatmap(cells: Sequence[Any] = (), sweep: Sequence[Any] = ()) -> Figure:
    """Fig. 7: the estimated probability p̂ that each adversarial sample is misclassified
    (colour, 0 to 1). Rows: the cells whose adversary estimated p̂ (A*), labelled
    "defense × adversary"; without such cells, the sweep's squeezer × δ. Columns: the
    adversarial samples in X_D order. A deterministic defense gives only 0 and 1;
    randomness spreads the probabilities (seed 002 § 5.2.1).

    Raises:
        ValueError: nothing with p̂ to show.
    """
    rows: list[tuple[str, np.ndarray]] = []
    for c in cells:
        if c.p_hat is not None:
            rows.append((f"{c.defense} × {c.adversary}", np.asarray(c.p_hat, dtype=float)))
    source = "the adversaries' own estimates"
    if not rows:
        rows = [(f"{p.squeezer}, δ = {p.delta:g}", np.asarray(p.p_hat, dtype=float)) for p in sweep]
        source = "the δ sweep"
    if not rows:
        raise ValueError("expected cells or sweep points with p̂, got none")
    width = max(len(r[1]) for r in rows)
    grid = np.full((len(rows), width), np.nan)
    for i, (_, values) in enumerate(rows):
        grid[i, : len(values)] = values
    fig = Figure(figsize=(min(16.0, 3.0 + 0.11 * width), 1.2 + 0.42 * len(rows)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, aspect="auto", cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("adversarial sample (index in X_D)")
    fig.colorbar(image, ax=ax, label="p̂ = Pr[misclassified]", fraction=0.03, pad=0.01)
    fig.suptitle(f"Fig. 7 — per-sample error probability p̂ ({source})", fontsize=11)
    return fig


def save_figures(result: Any, directory: str | pathlib.Path, *, dpi: int = 110) -> list[pathlib.Path]:
    """Write the figures a run supports into ``directory`` as PNG.

    Returns:
        The paths written: the example strip when there are examples, the sweep figures
        when there is a sweep, the heatmap when anything has p̂.
    """
    directory = pathlib.Path(directory)
    written = []

    def save(fig: Figure, name: str) -> None:
        path = directory / name
        fig.savefig(path, dpi=dpi)
        written.append(path)

    if result.examples is not None:
        save(plot_examples(result.examples), FIGURES[0])
    if result.sweep:
        save(plot_accuracy_vs_delta(result.sweep, result.config.game.n_chosen), FIGURES[1])
        save(plot_advantage_vs_n(result.sweep, result.cells, result.config), FIGURES[2])
    if result.sweep or any(c.p_hat is not None for c in result.cells):
        save(plot_error_heatmap(result.cells, result.sweep), FIGURES[3])
    return written
