"""One defense × adversary cell: R games (:func:`run_cell`)."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.errors import ConfigError
from evcsa.experiments.inputs import Inputs, load_inputs
from evcsa.experiments.registry import build_adversary, build_defense
from evcsa.experiments.results import CellResult, Estimate
from evcsa.experiments.seeds import _keys, _seed

__all__ = ["run_cell"]


def _game(config: ExperimentConfig, classifier: Any, inputs: Inputs) -> Any:
    from evcsa.games import EVCSA

    return EVCSA.from_rules(classifier, inputs.samples.images, inputs.samples.labels, config.game,
                            model=inputs.model, num_classes=inputs.model.num_classes)


def _tau_key(tau: float) -> str:
    return repr(float(tau))


def _report_estimates(report: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(p̂ values, draws, sources) from an adversary's report, or None."""
    estimates = getattr(report, "estimates", None)
    if estimates is None:
        return None
    values = getattr(estimates, "values", None)
    draws = getattr(estimates, "draws", None)
    sources = getattr(report, "sources", None)
    if values is None or draws is None or sources is None:
        return None
    return np.asarray(values, dtype=np.float64), np.asarray(draws, dtype=np.int64), np.asarray(sources)


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


def run_cell(config: ExperimentConfig, defense: int | str, adversary: int | str, *,
             progress: bool | None = None, cache_dir: str | None = None) -> CellResult:
    """Play R = ``config.runs`` games of one adversary against one defense.

    The defense's keys derive from ``config.seed`` and the two labels (or come from the OS
    when ``reproducible`` is false); the adversary's generator from the same labels; its
    offline phase runs once and its online phase in every game (seed 002 § 5.1).

    Args:
        config: the experiment.
        defense, adversary: index or label of the ``[[defenses]]`` / ``[[adversaries]]`` table.
        progress: show a progress bar over the games (None: only on a terminal).
        cache_dir: the model cache (default: ``$EVCSA_CACHE`` or ``~/.cache/evcsa``).

    Raises:
        ConfigError: bad indices or components; whatever the adversary raises.
    """
    d_spec, d_index = _find(config.defenses, defense, "defenses")
    a_spec, a_index = _find(config.adversaries, adversary, "adversaries")
    start = time.perf_counter()
    inputs = load_inputs(config, cache_dir=cache_dir)
    keys = _keys(config, "cell", d_spec.name, a_spec.name)
    classifier = build_defense(d_spec, inputs.model, keys, where=f"defenses[{d_index}]")
    player = build_adversary(a_spec, where=f"adversaries[{a_index}]")
    game = _game(config, classifier, inputs)
    result = game.repeat(player, config.runs, seed=_seed(config, "cell", d_spec.name, a_spec.name),
                         progress=progress)
    labels = inputs.samples.labels
    submitted = correct = 0
    for g in result.games:
        for s in g.transcript:
            submitted += 1
            correct += int(s.label == int(labels[s.source]))
    adv_acc = Estimate.from_counts(correct, submitted) if submitted else None
    total = sum(g.successes for g in result.games)
    pooled = result.success_rate_estimate()
    success_rate = Estimate(value=result.mean, low=pooled.low, high=pooled.high, successes=total,
                            trials=result.runs * result.n_chosen)
    taus = config.figures.taus
    advantage = {}
    for tau in taus:
        est = result.advantage(tau)
        advantage[_tau_key(tau)] = Estimate(value=est.value, low=est.low, high=est.high,
                                            successes=est.successes, trials=est.trials, alpha=est.alpha)
    p_hat = sources = None
    draws_total = None
    exact: dict[str, float] = {}
    log_exact: dict[str, float | None] = {}
    flagged = False
    notes: list[str] = []
    sums = None
    for g in result.games:
        report = g.report
        flagged = flagged or bool(getattr(report, "gradient_flagged", False))
        for note in getattr(report, "notes", ()) or ():
            if note not in notes:
                notes.append(str(note))
        est = _report_estimates(report)
        if est is None:
            continue
        values, draws, src = est
        if sums is None:
            sums = np.zeros_like(values)
            draw_sums = np.zeros_like(draws)
            sources = src
        if values.shape == sums.shape and np.array_equal(src, sources):
            sums += values * draws
            draw_sums += draws
    if sums is not None:
        p = np.divide(sums, draw_sums, out=np.zeros_like(sums), where=draw_sums > 0)
        p_hat = tuple(float(v) for v in p)
        draws_total = int(draw_sums.max()) if draw_sums.size else 0
        exact, log_exact = _exact(p, config.game.n_chosen, taus)
    return CellResult(
        defense=d_spec.name, adversary=a_spec.name, runs=result.runs, n_chosen=result.n_chosen,
        successes=tuple(int(g.successes) for g in result.games), success_rate=success_rate,
        advantage=advantage, adversarial_accuracy=adv_acc,
        submissions=float(np.mean([g.submissions for g in result.games])),
        classify_queries=float(np.mean([g.classify_queries for g in result.games])),
        stale_queries=int(sum(g.stale_queries for g in result.games)),
        p_hat=p_hat, p_hat_sources=None if sources is None else tuple(int(s) for s in sources),
        p_hat_draws=draws_total, advantage_exact=exact, log_advantage_exact=log_exact,
        gradient_flagged=flagged, notes=tuple(notes[:10]), seconds=time.perf_counter() - start)


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
