"""Every figure of a small real run (the 8×8 digits, tiny budgets), checked through
matplotlib's objects — titles, axis labels, legend entries, tick labels, the numbers
drawn — not pixels; and the layout: no legend over a panel, the δ = 0 curve on top."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evcsa import plots, report
from evcsa.config import parse_config
from evcsa.errors import DataError
from evcsa.stats import clopper_pearson, poisson_binomial_pmf

SMALL = """
name = "small"
seed = 3
runs = 6
legitimate_draws = 1

[data]
dataset = "digits"
samples = 24

[model]
reference = "digits"

[game]
n_chosen = 5
epsilon = 0.3

[[defenses]]
label = "bd1"
kind = "feature_squeezing"
squeezers = "bit-depth-1"

[[defenses]]
label = "bd1 δ=0.3"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.3

[[adversaries]]
label = "graybox FGSM"
kind = "graybox_transfer"
attack = "fgsm"

[[adversaries]]
label = "A* q=4"
kind = "greedy_a_star"
attack = "fgsm"
queries_per_candidate = 4
n_candidates = 12

[figures]
n_values = [1, 2, 5, 10, 20]
deltas = [0.0, 0.3, 0.6]
draws = 4
attack = "fgsm"
examples = 3
"""


@pytest.fixture(scope="module")
def run(digits_cache):
    """The small run, played once for the module (a few seconds on the digits model)."""
    from evcsa import experiments as module
    return module.run_experiment(parse_config(SMALL), progress=False, cache_dir=str(digits_cache))


def _texts(items):
    return [t.get_text() for t in items]


def _legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t for legend in legends for t in _texts(legend.get_texts())]


def _check_readable(fig, name):
    """The common promises: a title that says what is drawn, labelled axes with tick
    labels, and no legend over a panel (drawn, then compared as boxes)."""
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    assert len(title) > 30, f"{name}: a title that says what it measures, got {title!r}"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    whole = fig.bbox
    for text in [fig._suptitle, *fig.legends]:
        if text is None:
            continue
        box = text.get_window_extent(renderer)
        assert whole.x0 - 1 <= box.x0 and box.x1 <= whole.x1 + 1, f"{name}: {type(text).__name__} cut off at the sides"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in shown:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: the legend covers a panel"
    def labelled(ax):
        return bool([t for t in _texts(ax.get_yticklabels()) if t])

    for ax in shown:
        if ax.images and not ax.get_xticks().size:  # the example strip: images only
            continue
        siblings = ax.get_shared_y_axes().get_siblings(ax)  # a shared axis is labelled once, at the left
        assert any(labelled(other) for other in siblings), f"{name}: y tick labels"
    return " ".join(title.split())  # the title as read, whatever its line breaks


def test_save_figures_writes_every_figure_of_the_run(run, tmp_path):
    paths = plots.save_figures(run, tmp_path)
    assert [p.name for p in paths] == list(plots.FIGURES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 400_000, p.name


def test_success_rate_distribution(run):
    fig = plots.plot_success_rate_distribution(run.cells, run.config)
    title = _check_readable(fig, "success rate")
    assert "R = 6 games of N = 5" in title and "Clopper–Pearson" in title
    panels = [ax for ax in fig.axes]
    assert len(panels) == 4
    assert [ax.get_title() for ax in panels[:2]] == ["graybox FGSM", "A* q=4"]
    assert [ax.get_ylabel() for ax in panels[::2]] == ["bd1", "bd1 δ=0.3"]
    assert all(ax.get_xlabel() == "success rate succ = n / N" for ax in panels[2:])
    legend = _legend_texts(fig)
    assert any("fraction of the R games" in t for t in legend) and any("τ = 1" in t for t in legend)
    for ax, cell in zip(panels, run.cells):
        heights = [bar.get_height() for bar in ax.patches]
        expected = np.bincount(cell.successes, minlength=cell.n_chosen + 1) / cell.runs
        assert heights == pytest.approx(expected.tolist()), "bars: fraction of games per n"
        assert f"mean {cell.success_rate}" in _texts(ax.texts)[0]
    for ax, cell in zip(panels, run.cells):
        overlay = [line for line in ax.lines if line.get_marker() == "."]
        if cell.submitted_successes is not None:  # fresh-key counts of the submitted samples
            k = np.asarray(cell.submitted_successes)
            expected = poisson_binomial_pmf(k / cell.submitted_draws)
        elif cell.p_hat is not None:  # else the adversary's own p̂ of its top N
            top = np.sort(cell.p_hat)[::-1][: cell.n_chosen]
            expected = poisson_binomial_pmf(np.rint(top * cell.p_hat_draws) / cell.p_hat_draws)
        else:
            assert not overlay, "nothing known: no overlay"
            continue
        drawn = np.asarray(overlay[0].get_ydata(), dtype=float)
        keep = ~np.isnan(drawn)
        assert drawn[keep] == pytest.approx(expected[keep]) and np.all(expected[~keep] < 1e-4)
    if any(c.submitted_successes is not None for c in run.cells):
        assert any("Poisson-binomial" in t and "submitted samples (fresh" in t for t in legend)


def test_advantage_vs_tau(run):
    fig = plots.plot_advantage_vs_tau(run.cells, run.config)
    title = _check_readable(fig, "Adv vs τ")
    assert "τ = k/N" in title
    legend = _legend_texts(fig)
    assert "games: Adv(N, τ) = fraction with n/N ≥ τ" in legend and "its 95 % Clopper–Pearson interval" in legend
    for ax, cell in zip(fig.axes, run.cells):
        step = ax.lines[0]
        x, y = np.asarray(step.get_xdata()), np.asarray(step.get_ydata())
        ks = np.arange(1, cell.n_chosen + 1)
        s = np.asarray(cell.successes)
        assert x[1:] == pytest.approx(ks / cell.n_chosen)
        assert y[1:] == pytest.approx([(s >= k).mean() for k in ks])
        # the τ = 1 step is the stored Adv(N, 1), interval included
        stored = cell.advantage["1.0"]
        assert y[-1] == pytest.approx(stored.value)
        assert clopper_pearson(int(round(y[-1] * cell.runs)), cell.runs) == pytest.approx((stored.low, stored.high))
        assert ax.collections, "the interval band"
    assert all(ax.get_xlabel() == "τ (success-rate threshold)" for ax in fig.axes[2:])


def test_games_advantage_vs_n(run):
    fig = plots.plot_games_advantage_vs_n(run.cells, run.config)
    title = _check_readable(fig, "games Adv vs N")
    assert "this run played N = 5 only" in title and "6 games per point" in title
    assert [ax.get_title() for ax in fig.axes] == ["bd1", "bd1 δ=0.3"]
    assert _texts(fig.axes[0].get_xticklabels()) == ["5"]
    legend = _legend_texts(fig)
    assert legend[:2] == ["graybox FGSM: games' Adv, 95 % Clopper–Pearson", "A* q=4: games' Adv, 95 % Clopper–Pearson"]
    measured = [c for c in run.cells if c.expected_advantage]
    assert (legend[2:] == ["expected advantage of the submitted samples (95 %)"]) == bool(measured)
    ax = fig.axes[0]
    games = [c for c in ax.containers if c.lines[0].get_marker() != "D"]
    xs = [float(c.lines[0].get_xdata()[0]) for c in games]
    assert len(set(xs)) == len(xs) == 2, "the adversaries are nudged apart"
    ys = [float(c.lines[0].get_ydata()[0]) for c in games]
    assert ys == pytest.approx([run.cells[0].advantage["1.0"].value, run.cells[1].advantage["1.0"].value])
    diamonds = [float(c.lines[0].get_ydata()[0]) for c in ax.containers if c.lines[0].get_marker() == "D"]
    assert diamonds == pytest.approx([c.expected_advantage["1.0"].value for c in run.cells[:2] if c.expected_advantage])


def test_examples_name_the_models_labels_attack_and_epsilon(run):
    fig = plots.plot_examples(run.examples, run.config)
    title = _check_readable(fig, "examples")
    assert "the undefended model's label" in title and "true labels" in title
    axes = fig.axes
    rows = [axes[i].get_ylabel() for i in range(0, 12, 3)]
    assert rows[1].startswith("adversarial x′") and "fgsm" in rows[1] and "ε = 0.3" in rows[1]
    assert "δ = 0.3" in rows[2] and rows[3].startswith("squeezed")
    ex = run.examples
    for i in range(3):
        assert axes[3 + i].get_title() == f"→ {ex.labels['adversarial'][i]}"
        wrong = ex.labels["adversarial"][i] != ex.labels["true"][i]
        assert (axes[3 + i].title.get_color() == "tab:red") == wrong
    randomized = [axes[6 + i].get_title() for i in range(3)]
    if "randomized" in ex.labels:
        assert randomized == [f"→ {v}" for v in ex.labels["randomized"]]
    else:
        assert randomized == ["(not stored)"] * 3


def test_accuracy_vs_delta_names_the_plug_in_and_shows_the_games(run):
    fig = plots.plot_accuracy_vs_delta(run.sweep, run.config.game.n_chosen, run.cells, run.config)
    title = _check_readable(fig, "Fig. 5")
    assert "fgsm, L∞ ε = 0.3 on the undefended model" in title and "δ = 0 is deterministic" in title
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_ylabel() == "accuracy (%)" and bottom.get_ylabel() == "Adv(N = 5, τ = 1)"
    assert bottom.get_xlabel().startswith("δ")
    legend = _legend_texts(fig)
    assert "band: 95 % interval" in legend
    assert any(t.startswith("sweep: plug-in Π p̂ of its best 5 of 24 samples") for t in legend)
    assert "games: graybox FGSM (95 % CI)" in legend and "games: A* q=4 (95 % CI)" in legend
    legit = top.lines[0]
    assert list(legit.get_xdata()) == [0.0, 0.3, 0.6]
    assert list(legit.get_ydata()) == pytest.approx([100 * p.legitimate_accuracy.value for p in run.sweep])
    plug_in = bottom.lines[0]
    at_zero = np.sort(run.sweep[0].p_hat)[::-1][:5].prod()
    assert plug_in.get_ydata()[0] == pytest.approx(at_zero)
    markers = [float(c.lines[0].get_ydata()[0]) for c in bottom.containers]
    assert sorted(markers) == pytest.approx(sorted(c.advantage["1.0"].value for c in run.cells))
    assert "Greedy" not in title and "greedy" not in title, "the plug-in is not the greedy adversary's"


def test_advantage_vs_n_ticks_every_decade_and_keeps_delta_zero_visible(run):
    fig = plots.plot_advantage_vs_n(run.sweep, run.cells, run.config)
    title = _check_readable(fig, "Fig. 6")
    assert "plug-in" in title and "4 draws per δ" in title and "games_advantage_vs_n.png" in title
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert _texts(ax.get_xticklabels()) == ["1", "2", "5", "10", "20"]
    assert ax.get_xlabel() == "N (chosen samples)" and "Π p̂" in ax.get_ylabel()
    zero = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(zero) == 1 and zero[0].get_zorder() > max(l.get_zorder() for l in ax.lines if l is not zero[0])
    legend = _legend_texts(fig)
    assert legend == ["δ = 0 (feature squeezing)", "δ = 0.3", "δ = 0.6"]
    assert not ax.containers, "the games are not mixed into the sweep's curves"


def test_error_heatmap_names_draws_and_what_it_leaves_out(run):
    fig = plots.plot_error_heatmap(run.cells, run.sweep, run.config)
    title = _check_readable(fig, "Fig. 7")
    assert "not shown, as it estimates no p̂: graybox FGSM (2 cells)" in title
    labels = _texts(fig.axes[0].get_yticklabels())
    a_star = [c for c in run.cells if c.p_hat is not None]
    assert labels == [f"{c.defense} × {c.adversary}\n({c.p_hat_draws} draws pooled over {c.runs} games)"
                      for c in a_star]
    grid = fig.axes[0].images[0].get_array()
    for row, c in zip(grid, a_star):
        assert np.asarray(row)[list(c.p_hat_sources)] == pytest.approx(c.p_hat)
    assert fig.axes[1].get_ylabel() == "p̂ = Pr[success]"
    sweep_only = plots.plot_error_heatmap((), run.sweep, run.config)
    assert _texts(sweep_only.axes[0].get_yticklabels())[0] == "bit-depth-1, δ = 0 (1 draw)"
    with pytest.raises(ValueError, match="expected cells or sweep points with p̂"):
        plots.plot_error_heatmap((), ())
    with pytest.raises(ValueError, match="expected sweep points"):
        plots.plot_accuracy_vs_delta((), 3)
    with pytest.raises(ValueError, match="expected cells"):
        plots.plot_success_rate_distribution(())


def test_the_run_writes_a_valid_results_json_and_show_redraws_it(run, tmp_path):
    """Every file this module's run writes validates against the shipped schema; show
    redraws the same figures from the stored numbers alone."""
    from test_report import validate

    out = report.write_results(run, tmp_path / "run", command=["evcsa", "play", "small.toml"])
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    assert doc["command"] == ["evcsa", "play", "small.toml"]
    lines = []
    paths = report.show(out, figures_dir=tmp_path / "again", out=lines.append)
    assert [p.name for p in paths] == list(plots.FIGURES)
    assert lines[0].startswith("small: written 20") and lines[1] == "command: evcsa play small.toml"
    assert report.format_table(run) in "\n".join(lines)


# -- seed 002's Figures 5–7 as the paper draws them (handmade sweeps of every attack; no run) ------

PAPER_ATTACKS = ("fgsm", "cw_linf_next", "cw_linf_ll")
PAPER_DELTAS = (0.0, 0.5)


def _paper_sweeps(*, counts: bool):
    """attack → SweepPoints of two squeezers at δ 0 and 0.5, six samples each, p̂ from a fixed
    generator (1 draw at δ = 0, 8 above); per-sample counts only when ``counts``."""
    from evcsa.experiments.results import SweepPoint
    from evcsa.stats import BinomialEstimate, per_sample_estimate

    rng = np.random.default_rng(7)
    sweeps = {}
    for a in PAPER_ATTACKS:
        points = []
        for squeezer in ("bit-depth-1", "median-3x3"):
            for delta in PAPER_DELTAS:
                draws = 1 if delta == 0 else 8
                successes = rng.integers(0, draws + 1, size=6)
                p_hat = successes / draws
                correct = draws - successes
                top = np.sort(p_hat)[::-1]
                pooled = BinomialEstimate.from_counts(int(correct.sum()), 6 * draws)
                points.append(SweepPoint(
                    squeezer=squeezer, delta=delta, legitimate_accuracy=BinomialEstimate.from_counts(90, 100),
                    adversarial_accuracy=per_sample_estimate(correct, np.full(6, draws)) if counts else pooled,
                    p_hat=tuple(p_hat), advantage_exact={str(n): float(top[:n].prod()) for n in (1, 2, 3, 6)},
                    sample_correct=tuple(int(c) for c in correct) if counts else None,
                    sample_draws=draws if counts else None))
        sweeps[a] = tuple(points)
    return sweeps


def test_paper_fig5_draws_every_attack_and_legitimate_with_one_colour_per_attack():
    sweeps = _paper_sweeps(counts=False)
    fig = plots.plot_paper_accuracy_vs_delta(sweeps, 25)
    title = _check_readable(fig, "paper Fig. 5")
    assert "no bands: this run stored no per-sample counts" in title
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:2]] == ["bit-depth-1", "median-3x3"]
    assert axes[0].get_ylabel() == "accuracy (%)" and axes[2].get_ylabel() == "A*'s Adv(N = 6, τ = 1) = Π p̂"
    legend = _legend_texts(fig)
    assert legend == ["legitimate test images", "FGSM", "C&W L∞ next", "C&W L∞ LL"]
    for col, squeezer in enumerate(("bit-depth-1", "median-3x3")):
        top, bottom = axes[col], axes[2 + col]
        assert not top.collections, "no bands without per-sample counts"
        assert len(top.lines) == len(PAPER_ATTACKS) + 1 and len(bottom.lines) == len(PAPER_ATTACKS)
        for line, a in zip(bottom.lines, PAPER_ATTACKS):
            points = [p for p in sweeps[a] if p.squeezer == squeezer]
            assert list(line.get_ydata()) == pytest.approx([p.advantage_exact["6"] for p in points])
        legit = top.lines[-1]
        assert legit.get_color() == "black" and list(legit.get_ydata()) == pytest.approx([90.0, 90.0])
    # an attack keeps its colour and marker in every panel; LL targets dashed
    for k, a in enumerate(PAPER_ATTACKS):
        looks = {(ax.lines[k].get_color(), ax.lines[k].get_marker(), ax.lines[k].get_linestyle()) for ax in axes}
        assert len(looks) == 1, a
        assert looks.pop()[2] == ("--" if a.endswith("_ll") else "-")


def test_paper_fig5_bands_come_from_the_per_sample_intervals():
    sweeps = _paper_sweeps(counts=True)
    fig = plots.plot_paper_accuracy_vs_delta(sweeps, 25)
    title = _check_readable(fig, "paper Fig. 5, banded")
    assert "no bands" not in title and "band: 95 % interval over the samples" in _legend_texts(fig)
    top = fig.axes[0]
    assert len(top.collections) == len(PAPER_ATTACKS)
    band = top.collections[0].get_paths()[0].vertices[:, 1]
    points = [p for p in sweeps["fgsm"] if p.squeezer == "bit-depth-1"]
    assert min(band) == pytest.approx(100 * min(p.adversarial_accuracy.low for p in points))
    assert max(band) == pytest.approx(100 * max(p.adversarial_accuracy.high for p in points))
    with pytest.raises(DataError, match="expected Adv\\(N\\) stored for an N ≤ 0"):
        plots.plot_paper_accuracy_vs_delta(sweeps, 0)
    with pytest.raises(DataError, match="expected a non-empty sweep for every attack"):
        plots.plot_paper_accuracy_vs_delta({}, 25)


def test_paper_fig6_has_a_panel_per_attack_and_a_curve_per_delta():
    sweeps = _paper_sweeps(counts=False)
    fig = plots.plot_paper_advantage_vs_n(sweeps, "median-3x3", n_chosen=3)
    title = _check_readable(fig, "paper Fig. 6")
    assert "median-3x3" in title and "one panel per attack" in title
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["FGSM", "C&W L∞ next", "C&W L∞ LL"]
    assert _legend_texts(fig) == ["δ = 0 (deterministic)", "δ = 0.5", "N = 3"]
    for ax, a in zip(shown, PAPER_ATTACKS):
        assert ax.get_xscale() == "log"
        curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
        zero = next(line for line in curves if line.get_linestyle() == "--")
        point = next(p for p in sweeps[a] if p.squeezer == "median-3x3" and p.delta == 0.0)
        assert list(zero.get_xdata()) == [1, 2, 3, 6]
        assert list(zero.get_ydata()) == pytest.approx([point.advantage_exact[n] for n in ("1", "2", "3", "6")])
        assert zero.get_zorder() > max(line.get_zorder() for line in curves if line is not zero)
    assert "N = 25" not in _legend_texts(plots.plot_paper_advantage_vs_n(sweeps, "median-3x3"))  # 25 > 6 stored
    with pytest.raises(DataError, match="expected a sweep of squeezer 'median-2x2'"):
        plots.plot_paper_advantage_vs_n(sweeps, "median-2x2")


def test_paper_fig7_has_a_row_per_attack_at_delta_0_and_0_5():
    sweeps = _paper_sweeps(counts=False)
    fig = plots.plot_paper_error_heatmap(sweeps)
    title = _check_readable(fig, "paper Fig. 7")
    assert "median-3x3" in title and "misclassified" in title
    maps = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in maps] == ["median-3x3, δ = 0 (deterministic: p̂ is 0 or 1)",
                                               "median-3x3, δ = 0.5"]
    for ax, delta in zip(maps, PAPER_DELTAS):
        points = [next(p for p in sweeps[a] if p.squeezer == "median-3x3" and p.delta == delta)
                  for a in PAPER_ATTACKS]
        labels = _texts(ax.get_yticklabels())
        assert labels == [f"{name} (Σ p̂ {sum(p.p_hat):.1f})" for name, p in
                          zip(("FGSM", "C&W L∞ next", "C&W L∞ LL"), points)]
        grid = np.asarray(ax.images[0].get_array())
        assert grid == pytest.approx(np.array([p.p_hat for p in points]))
    with pytest.raises(DataError, match="expected a sweep of 'median-3x3' at δ = 0.3"):
        plots.plot_paper_error_heatmap(sweeps, deltas=(0.3,))
