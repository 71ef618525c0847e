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

Modules, by job: :mod:`~evcsa.plots.records` (what the figures read from the stored
records), :mod:`~evcsa.plots.layout` (panels, titles, legends, ticks),
:mod:`~evcsa.plots.cells` (per cell and run level), :mod:`~evcsa.plots.sweep` (seed 002's
figures from a run's sweep), :mod:`~evcsa.plots.paper` (seed 002's figures as the paper
draws them); this module writes a run's figures (:func:`save_figures`).
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from evcsa.plots.cells import plot_advantage_vs_tau, plot_games_advantage_vs_n, plot_success_rate_distribution
from evcsa.plots.paper import (ATTACK_LABELS, plot_paper_accuracy_vs_delta, plot_paper_advantage_vs_n,
                               plot_paper_error_heatmap)
from evcsa.plots.records import expected_advantage_at
from evcsa.plots.sweep import plot_accuracy_vs_delta, plot_advantage_vs_n, plot_error_heatmap, plot_examples

if TYPE_CHECKING:
    from evcsa.experiments.results import ExperimentResult

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


def save_figures(result: ExperimentResult, directory: str | pathlib.Path, *, dpi: int = 110) -> list[pathlib.Path]:
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
