"""One defense × adversary cell: R games, played as units of work and summed up here.

:func:`cell_result` turns the outputs of a cell's ``play`` units (chunks of games,
:mod:`evcsa.experiments.work`) into a :class:`~evcsa.experiments.results.CellResult`;
:func:`run_cell` runs one cell here, without a store.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.errors import ConfigError
from evcsa.experiments.results import CellResult

__all__ = ["cell_result", "run_cell"]


def _tau_key(tau: float) -> str:
    return repr(float(tau))


def _exact(p: np.ndarray, n: int, taus: Sequence[float]) -> tuple[dict[str, float], dict[str, float | None]]:
    from evcsa.stats import log_advantage_exact, select_top_n

    if p.size < n:
        return {}, {}
    top = p[select_top_n(p, n)]
    out, logs = {}, {}
    for tau in taus:
        log = log_advantage_exact(top, tau)
        out[_tau_key(tau)] = math.exp(log)
        logs[_tau_key(tau)] = None if log == -math.inf else log
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
    exact, log_exact = _exact(p, n, taus)
    return (tuple(float(v) for v in p), tuple(int(s) for s in np.asarray(sources)),
            int(draw_sums.max()) if draw_sums.size else 0, exact, log_exact)


def _find(specs: Sequence[ComponentSpec], which: int | str, section: str) -> tuple[ComponentSpec, int]:
    if isinstance(which, str):
        for i, spec in enumerate(specs):
            if spec.name == which:
                return spec, i
        raise ConfigError(f"{section}: expected a label in {[s.name for s in specs]}, got {which!r}",
                          key=section)
    if isinstance(which, bool) or not isinstance(which, int) or not 0 <= which < len(specs):
        raise ConfigError(f"{section}: expected an index in [0, {len(specs) - 1}], got {which!r}", key=section)
    return specs[which], which


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
    from evcsa.stats import BinomialEstimate, threshold_count

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
        advantage[_tau_key(tau)] = BinomialEstimate.from_counts(wins, runs)
    notes: list[str] = []
    for c in chunks:
        for note in c.record.get("notes", ()):
            if note not in notes:
                notes.append(note)
    sums = draw_sums = sources = None
    for c in chunks:
        if "est_weighted" not in c.arrays:
            continue
        if sums is None:
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
        from evcsa.stats import expected_advantage

        k = list(rejudged.record["successes"])
        submitted_draws = int(rejudged.record["draws"])
        submitted = tuple(k + [0] * max(0, n_chosen - len(k)))
        for tau in config.figures.taus:
            expected[_tau_key(tau)] = expected_advantage(np.asarray(submitted, dtype=np.int64), submitted_draws, tau)
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


def run_cell(config: ExperimentConfig, defense: int | str, adversary: int | str, *,
             progress: bool | None = None, cache_dir: str | None = None) -> CellResult:
    """Play R = ``config.runs`` games of one adversary against one defense, here (no store).

    The defense's keys derive from ``config.seed`` and the two labels (or come from the OS
    when ``reproducible`` is false); the adversary's generator from the same labels — a
    graybox adversary's crafting from its own parameters, shared by every defense; its
    offline phase runs once and its online phase in every game (seed 002 § 5.1). The
    numbers are those of the same cell in :func:`~evcsa.experiments.run_experiment`.

    Args:
        config: the experiment.
        defense, adversary: index or label of the ``[[defenses]]`` / ``[[adversaries]]`` table.
        progress: unused (kept for compatibility; a cell runs as units of work).
        cache_dir: the model cache (default: ``$EVCSA_CACHE`` or ``~/.cache/evcsa``).

    Raises:
        ConfigError: bad indices or components; whatever the adversary raises.
    """
    from evcsa.experiments.runner import run_units

    _, d = _find(config.defenses, defense, "defenses")
    _, a = _find(config.adversaries, adversary, "adversaries")
    outputs, layout = run_units(config, cache_dir=cache_dir, select=("cell", d, a))
    chunks = [outputs[k] for k in layout["cells"][(d, a)]]
    seconds = sum(o.seconds for o in chunks) + outputs[layout["crafts"][(d, a)]].seconds
    return cell_result(config, d, a, chunks, rejudged=outputs[layout["rejudge"][(d, a)]], seconds=seconds)
