"""The pieces :func:`evcsa.evaluate` measures with (:mod:`evcsa.evaluation`): the
adversaries' seeds, a defense re-keyed per part, X_D (the natural samples the model
classifies correctly), a cell record from the games, the legitimate accuracy, the
environment and a clock per step.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import time
from typing import Any, Iterator

import numpy as np
import torch

import evcsa
from evcsa.data import ImageSet
from evcsa.defenses.base import ModelClassifier, key_sources_of
from evcsa.errors import InvalidParameter
from evcsa.evaluation.suite import Member
from evcsa.experiments.cells import pooled_estimates
from evcsa.experiments.results import CellResult
from evcsa.games.results import RepeatResult
from evcsa.games.rules import Rules
from evcsa.randomness import KeySource
from evcsa.stats import BinomialEstimate, expected_advantage, threshold_count


def adversary_seed(seed: int, *labels: str) -> np.random.SeedSequence:
    """A SeedSequence from the public seed and ``labels`` (the adversaries' coins)."""
    words = [int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") for label in labels]
    return np.random.SeedSequence(int(seed), spawn_key=tuple(words))


def series_keys(classifier: Any) -> KeySource | None:
    own = getattr(classifier, "keys", None)
    if isinstance(own, KeySource):
        return own
    found = key_sources_of(classifier)
    return found[0] if found else None


def rekeyed(classifier: Any, randomized: bool, label: str) -> Any:
    """The defense with its own randomness for the part ``label`` of the evaluation:
    ``with_keys(keys.derive(label))`` of its key source (a deterministic one, or one holding
    no key source, is itself)."""
    if not randomized:
        return classifier
    keys = series_keys(classifier)
    if keys is None or not callable(getattr(classifier, "with_keys", None)):
        return classifier
    return classifier.with_keys(keys.derive(f"evaluate/{label}"))


def natural_samples(data: ImageSet, model: ModelClassifier, samples: int, n_chosen: int,
                    freshness: str) -> tuple[ImageSet, int]:
    pred = model.predict(data.images).cpu()
    keep = (pred == data.labels).nonzero().flatten()
    if keep.numel() == 0:
        raise InvalidParameter(f"expected natural samples the model classifies correctly in {data.name}, got none")
    keep = keep[:samples]
    dropped = int(keep[-1]) + 1 - int(keep.numel())
    x_d = data.subset(keep, name=f"{data.name}[:{keep.numel()}] correctly classified")
    if freshness == "source" and n_chosen > len(x_d):
        raise InvalidParameter(f"expected N ≤ |X_D| = {len(x_d)} (natural samples the model classifies correctly, "
                               f"at most budget.samples = {samples}) under freshness 'source', got N = {n_chosen}",
                               n_chosen=n_chosen, samples=len(x_d))
    return x_d, dropped


def cell_result(defense: str, label: str, result: RepeatResult, rules: Rules, tau: float, labels: torch.Tensor,
          candidate_counts: np.ndarray | None, draws: int, seconds: float) -> CellResult:
    """A :class:`~evcsa.experiments.CellResult` from a RepeatResult (the engine's record)."""
    n = rules.n_chosen
    games = result.games
    runs = len(games)
    key = repr(float(tau))
    wins = sum(1 for g in games if g.successes >= threshold_count(tau, n))
    true = [int(labels[e.source]) for g in games for e in g.transcript]
    said = [int(e.label) for g in games for e in g.transcript]
    notes: list[str] = []
    sums = draw_sums = sources = None
    flagged = False
    for g in games:
        rep = g.report
        if rep is None:
            continue
        flagged = flagged or bool(getattr(rep, "gradient_flagged", False))
        for note in getattr(rep, "notes", ()):
            if note not in notes:
                notes.append(note)
        est = getattr(rep, "estimates", None)
        if est is None:
            continue
        if sums is None:
            sums, draw_sums, sources = np.zeros(len(est)), np.zeros(len(est)), np.asarray(rep.sources)
        if len(est) == sums.shape[0]:
            sums += est.successes
            draw_sums += est.draws
    p_hat, p_sources, draws_total, exact, log_exact = pooled_estimates(sums, draw_sums, sources, n, (tau,))
    submitted = None
    expected_map: dict[str, Any] = {}
    first = games[0].report if games else None
    if candidate_counts is not None and first is not None and getattr(first, "submitted", None) is not None:
        k = [int(candidate_counts[i]) for i in np.asarray(first.submitted).tolist()]
        submitted = tuple(k + [0] * max(0, n - len(k)))
        expected_map[key] = expected_advantage(np.asarray(submitted, dtype=np.int64), draws, tau)
    return CellResult(
        defense=defense, adversary=label, runs=runs, n_chosen=n, successes=tuple(int(g.successes) for g in games),
        success_rate=BinomialEstimate.from_counts(sum(g.successes for g in games), runs * n),
        advantage={key: BinomialEstimate.from_counts(wins, runs)},
        adversarial_accuracy=BinomialEstimate.from_counts(sum(a == b for a, b in zip(said, true)), len(true))
        if true else None,
        submissions=float(np.mean([g.submissions for g in games])),
        classify_queries=float(np.mean([g.classify_queries for g in games])),
        stale_queries=int(sum(g.stale_queries for g in games)), p_hat=p_hat, p_hat_sources=p_sources,
        p_hat_draws=draws_total, advantage_exact=exact, log_advantage_exact=log_exact,
        submitted_successes=submitted, submitted_draws=draws if submitted is not None else None,
        expected_advantage=expected_map, gradient_flagged=flagged, notes=tuple(notes[:10]), seconds=seconds)


def measure_accuracy(classifier: Any, x: torch.Tensor, y: torch.Tensor, draws: int) -> tuple[BinomialEstimate, float]:
    """(accuracy over ``draws`` classifications of every image, seconds per image)."""
    correct = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(draws):
            correct += int((classifier.predict(x).cpu() == y).sum())
    seconds = (time.perf_counter() - t0) / (draws * max(1, int(x.shape[0])))
    return BinomialEstimate.from_counts(correct, draws * int(x.shape[0])), seconds


def environment_info() -> dict[str, Any]:
    return {"evcsa": evcsa.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "threads": torch.get_num_threads(),
            "device": "cpu", "executor": "evaluate (one process)", "workers": 1}


def member_table(member: Member) -> dict[str, Any]:
    return {"kind": member.spec.kind, "label": member.spec.name, **dict(member.spec.params)}


class Clock:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
