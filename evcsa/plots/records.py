"""What the figures read from the stored results records (:mod:`evcsa.plots`): the
τ-keyed entries, the submitted samples' counts and their Poisson-binomial distribution,
the sweep's points by squeezer and the squeezer of a defense. No drawing here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from evcsa import stats
from evcsa.defenses import squeezer_from_spec
from evcsa.stats import poisson_binomial_pmf

if TYPE_CHECKING:
    from evcsa.config import ExperimentConfig
    from evcsa.experiments.results import CellResult, SweepPoint

def tau_key(mapping: Mapping[str, Any], tau: float) -> Any:
    """The entry of a τ-keyed mapping ("1.0" → …) for ``tau``, or None."""
    for key, value in (mapping or {}).items():
        try:
            if math.isclose(float(key), tau, abs_tol=1e-9):
                return value
        except (TypeError, ValueError):
            continue
    return None


def headline_tau(config: ExperimentConfig | None) -> float:
    return float(config.figures.taus[0]) if config is not None else 1.0


def expected_advantage_at(cell: CellResult, tau: float) -> Any:
    """The cell's expected advantage of its submitted samples at τ (an
    :class:`~evcsa.stats.IntervalEstimate`), when the run measured it."""
    value = getattr(cell, "expected_advantage", None)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return tau_key(value, tau)
    return value if math.isclose(tau, 1.0) else None


def submitted_counts(cell: CellResult) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(successes int [N], draws int [N], what they are) of the samples the cell's
    adversary submitted, as far as the results know them:

    - the fresh-key successes of the submitted samples (``submitted_successes`` /
      ``submitted_draws``, :func:`evcsa.games.rejudge`), when the run counted them;
    - else the adversary's own p̂ of its N best candidates pooled over the games
      (A*, BPDA+EOT's offline selection) — what it believes, biased upwards by the
      selection;
    - else None (a graybox transfer estimates nothing).
    """
    k = getattr(cell, "submitted_successes", None)
    n = getattr(cell, "submitted_draws", None)
    if k is not None and n is not None:
        k = np.asarray(k, dtype=np.int64)
        n = np.broadcast_to(np.asarray(n, dtype=np.int64), k.shape)
        if k.size and n.min() >= 1:
            return k, n, f"fresh classifications of the submitted samples ({draws_text(n)} each)"
    p = getattr(cell, "p_hat", None)
    draws = getattr(cell, "p_hat_draws", None)
    if p is None or not draws or len(p) < cell.n_chosen:
        return None
    top = np.sort(np.asarray(p, dtype=np.float64))[::-1][: cell.n_chosen]
    n = np.full(top.shape, int(draws), dtype=np.int64)
    return (np.rint(top * n).astype(np.int64), n,
            f"the adversary's own p̂ of its top {cell.n_chosen} ({draws_text(n)} pooled over the games)")


def draws_text(n: np.ndarray) -> str:
    lo, hi = int(np.min(n)), int(np.max(n))
    return f"{lo} draws" if lo == hi else f"{lo}–{hi} draws"


def counts_pmf(k: np.ndarray, n: np.ndarray) -> np.ndarray:

    return poisson_binomial_pmf(k / n)


def tail_band(k: np.ndarray, n: np.ndarray,
              taus: Sequence[float]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Pr[S ≥ ⌈τN⌉] at p = k/n for each τ, with the Bonferroni interval of
    :func:`evcsa.stats.expected_advantage` when it is available."""

    fn = getattr(stats, "expected_advantage", None)
    if fn is not None:
        est = [fn(k, n, t) for t in taus]
        return (np.array([e.value for e in est]), np.array([e.low for e in est]), np.array([e.high for e in est]))
    tail = np.cumsum(counts_pmf(k, n)[::-1])[::-1]
    return (np.array([tail[stats.threshold_count(t, k.size)] for t in taus]), None, None)

def by_squeezer(sweep: Sequence[SweepPoint]) -> dict[str, list[SweepPoint]]:
    out: dict[str, list[SweepPoint]] = {}
    for p in sweep:
        out.setdefault(p.squeezer, []).append(p)
    for points in out.values():
        points.sort(key=lambda p: p.delta)
    return out


def sweep_draws(point: SweepPoint, config: ExperimentConfig | None) -> int:
    """Classifications behind each p̂ of a sweep point: 1 at δ = 0 (deterministic), else
    ``figures.draws``."""
    stored = getattr(point, "draws", None)
    if stored:
        return int(stored)
    if point.delta == 0.0:
        return 1
    return int(config.figures.draws) if config is not None else 0


def attack_text(config: ExperimentConfig | None) -> str:
    if config is None:
        return "the sweep's attack"
    eps = config.game.epsilon
    norm = {"linf": "L∞", "l2": "L2", "l0": "L0"}.get(str(config.game.norm), str(config.game.norm))
    bound = "unbounded" if eps is None else f"{norm} ε = {eps:g}"
    return f"{config.figures.attack}, {bound}"

def squeezer_of(cell: CellResult, config: ExperimentConfig | None) -> tuple[str | None, float | None]:
    """(squeezer spec, δ) of the cell's defense when it is a (randomized) squeezing one."""
    return squeezer_of_defense(cell.defense, config)


def squeezer_of_defense(name: str, config: ExperimentConfig | None) -> tuple[str | None, float | None]:
    if config is None:
        return None, None
    for spec in config.defenses:
        if spec.name == name and spec.kind in ("feature_squeezing", "randomized_squeezing"):
            value = spec.params.get("squeezer", spec.params.get("squeezers"))
            try:
                return squeezer_from_spec(value).spec, float(spec.params.get("delta", 0.0))
            except Exception:  # a joint detector of several squeezers: no single column
                return None, None
    return None, None
