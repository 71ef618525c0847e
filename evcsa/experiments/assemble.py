"""The result records of a run from its units' outputs: a cell's :class:`CellResult` from
its ``play`` and ``rejudge`` units (:func:`cell_result`), a :class:`SweepPoint` and the
:class:`ExampleImages` (:func:`sweep_point`, :func:`example_images`), and the plug-in
advantage of estimates (:func:`pooled_estimates`, seed 002 Eq. 6).

Pure functions of :class:`~evcsa.experiments.units.Output` records: the runner's callers
(:func:`~evcsa.experiments.run_experiment`, :func:`~evcsa.experiments.run_cell`, …) use
them, the runner does not.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from evcsa.config import ExperimentConfig
from evcsa.experiments.results import CellResult, ExampleImages, SweepPoint
from evcsa.experiments.units import Output
from evcsa.stats import BinomialEstimate, expected_advantage, log_advantage_exact, select_top_n, threshold_count

__all__ = ["cell_result", "example_images", "exact_advantages", "pooled_estimates", "sweep_point", "tau_key"]


def tau_key(tau: float) -> str:
    """The key of τ in a record's dicts (``repr`` of the float: "0.5")."""
    return repr(float(tau))


def exact_advantages(p: np.ndarray, n: int, taus: Sequence[float]) -> tuple[dict[str, float], dict[str, float | None]]:
    """The plug-in Adv(N, τ) of the top N of the estimates ``p`` (float64 [S] in [0, 1]),
    seed 002 Eq. 6, by :func:`tau_key`, and its natural log (None for −∞); empty dicts with
    fewer than N estimates."""
    if p.size < n:
        return {}, {}
    top = p[select_top_n(p, n)]
    out, logs = {}, {}
    for tau in taus:
        log = log_advantage_exact(top, tau)
        out[tau_key(tau)] = math.exp(log)
        logs[tau_key(tau)] = None if log == -math.inf else log
    return out, logs


def pooled_estimates(sums: np.ndarray | None, draw_sums: np.ndarray | None, sources: Any, n: int,
                     taus: Sequence[float]) -> tuple[Any, Any, Any, dict[str, float], dict[str, float | None]]:
    """An adversary's own p̂ pooled over a cell's games, and its plug-in Adv(N, τ).

    Args:
        sums, draw_sums: float64 [S] successes and Classify draws per candidate, summed over
            the games (None: the adversary estimated no p̂).
        sources: int [S], each candidate's natural sample.
        n: N; taus: the τ values.

    Returns:
        (p̂ per candidate, their sources, the largest draw count, {τ: Π-of-top-N advantage}
        (seed 002 Eq. 6), {τ: its natural log, None for −∞}); Nones and empty dicts without
        estimates; no advantage with fewer than N candidates.
    """
    if sums is None or draw_sums is None:
        return None, None, None, {}, {}
    p = np.divide(sums, draw_sums, out=np.zeros_like(sums, dtype=np.float64), where=draw_sums > 0)
    exact, log_exact = exact_advantages(p, n, taus)
    return (tuple(float(v) for v in p), tuple(int(s) for s in np.asarray(sources)),
            int(draw_sums.max()) if draw_sums.size else 0, exact, log_exact)


def cell_result(config: ExperimentConfig, d: int, a: int, chunks: Sequence[Any], *, rejudged: Any = None,
                seconds: float = 0.0) -> CellResult:
    """The :class:`CellResult` of cell (d, a) from its play units' outputs, in game order.

    Success rate: successes over the R·N submissions (pooled Clopper–Pearson interval);
    Adv(N, τ): games with n ≥ ⌈τN⌉ over R (seed 002 Eq. 4); adversarial accuracy:
    submissions labelled with their source's true label (and per X_D sample, its submissions
    and those labelled correctly, for :func:`evcsa.stats.per_sample_estimate`); p̂: the adversary's per-candidate
    estimates pooled over the games (weighted by draws) and Adv from them (seed 002 Eq. 6);
    with ``rejudged`` (a ``rejudge`` unit's output), the expected advantage of the first
    game's N submissions (:func:`evcsa.stats.expected_advantage`; missing submissions count
    as samples that never succeed).
    """
    n_chosen = config.game.n_chosen
    games = {k: np.concatenate([c.arrays[f"game_{k}"] for c in chunks])
             for k in ("successes", "submissions", "classify_queries", "stale_queries", "flagged")}
    runs = int(games["successes"].size)
    label = np.concatenate([c.arrays["sub_label"] for c in chunks])
    true = np.concatenate([c.arrays["sub_true_label"] for c in chunks])
    source = np.concatenate([c.arrays["sub_source"] for c in chunks]).astype(np.int64)
    samples = config.data.samples
    sample_correct = np.bincount(source[label == true], minlength=samples)
    sample_submissions = np.bincount(source, minlength=samples)
    total = int(games["successes"].sum())
    advantage = {}
    for tau in config.figures.taus:
        wins = int((games["successes"] >= threshold_count(tau, n_chosen)).sum())
        advantage[tau_key(tau)] = BinomialEstimate.from_counts(wins, runs)
    notes: list[str] = []
    for c in chunks:
        for note in c.record.get("notes", ()):
            if note not in notes:
                notes.append(note)
    sums = draw_sums = sources = None
    for c in chunks:
        if "est_weighted" not in c.arrays:
            continue
        if sums is None or sources is None:  # (set together, by the first chunk with estimates)
            sums = np.zeros_like(c.arrays["est_weighted"])
            draw_sums = np.zeros_like(c.arrays["est_draws"])
            sources = c.arrays["est_sources"]
        if c.arrays["est_weighted"].shape == sums.shape and np.array_equal(c.arrays["est_sources"], sources):
            sums += c.arrays["est_weighted"]
            draw_sums += c.arrays["est_draws"]
    p_hat, p_sources, draws_total, exact, log_exact = pooled_estimates(sums, draw_sums, sources, n_chosen,
                                                                        config.figures.taus)
    submitted = submitted_draws = None
    expected: dict[str, Any] = {}
    if rejudged is not None:
        k = list(rejudged.record["successes"])
        submitted_draws = int(rejudged.record["draws"])
        submitted = tuple(k + [0] * max(0, n_chosen - len(k)))
        for tau in config.figures.taus:
            expected[tau_key(tau)] = expected_advantage(np.asarray(submitted, dtype=np.int64), submitted_draws, tau)
    return CellResult(
        defense=config.defenses[d].name, adversary=config.adversaries[a].name, runs=runs, n_chosen=n_chosen,
        successes=tuple(int(s) for s in games["successes"]),
        success_rate=BinomialEstimate.from_counts(total, runs * n_chosen), advantage=advantage,
        adversarial_accuracy=BinomialEstimate.from_counts(int((label == true).sum()), int(label.size))
        if label.size else None,
        submissions=float(np.mean(games["submissions"])), classify_queries=float(np.mean(games["classify_queries"])),
        stale_queries=int(games["stale_queries"].sum()), p_hat=p_hat, p_hat_sources=p_sources,
        p_hat_draws=draws_total, advantage_exact=exact, log_advantage_exact=log_exact,
        submitted_successes=submitted, submitted_draws=submitted_draws, expected_advantage=expected,
        sample_correct=tuple(int(v) for v in sample_correct),
        sample_submissions=tuple(int(v) for v in sample_submissions),
        gradient_flagged=bool(games["flagged"].any()), notes=tuple(notes[:10]), seconds=seconds)


def sweep_point(squeezer: str, delta: float, output: Output) -> SweepPoint:
    """A :class:`SweepPoint` from a ``sweep_point`` unit's output."""
    r = output.record
    return SweepPoint(squeezer=squeezer, delta=float(delta),
                      legitimate_accuracy=BinomialEstimate.from_counts(*r["legitimate"]),
                      adversarial_accuracy=BinomialEstimate.from_counts(*r["adversarial"]),
                      p_hat=tuple(float(v) for v in output.arrays["p_hat"]),
                      advantage_exact=dict(r["advantage_exact"]),
                      sample_correct=tuple(int(v) for v in output.arrays["sample_correct"])
                      if "sample_correct" in output.arrays else None,
                      sample_draws=int(r["draws"]) if "draws" in r else None)


def example_images(output: Output) -> ExampleImages:
    """An :class:`ExampleImages` from an ``examples`` unit's output."""
    r: Mapping[str, Any] = output.record
    images = {k: torch.from_numpy(np.ascontiguousarray(output.arrays[k]))
              for k in ("original", "adversarial", "randomized", "squeezed")}
    return ExampleImages(**images, labels={k: tuple(v) for k, v in r["labels"].items()},
                         defense=r["defense"], squeezer=r["squeezer"], delta=float(r["delta"]))
