"""Re-judging submitted samples with fresh classifier randomness.

The empirical advantage of a game is what one draw of the defense's randomness gave the
adversary. What the adversary's submissions are worth is their success probabilities
pᵢ under fresh keys; :func:`rejudge` counts, for each submitted sample, its successes in
``draws`` independent classifications, with the game's own success rule, so that
:func:`evcsa.stats.expected_advantage` turns the counts into the expected advantage with
an interval (seed 002 Eq. 4 and 6: Adv = Pr[S ≥ ⌈τN⌉], Π pᵢ for τ = 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from evcsa._validation import as_images, as_labels, check_positive_int
from evcsa.defenses.base import is_randomized
from evcsa.distances import distance, within_epsilon
from evcsa.errors import InvalidParameter
from evcsa.games.rules import Rules, count_judged_successes
from evcsa.judging import predict_labels
from evcsa.randomness import KeySource

__all__ = ["rejudge"]


def rejudge(classifier: Any, samples: Any, sources: Any, labels: Any, rules: Rules, *, draws: int,
            targets: Any = None, keys: KeySource | None = None, query_batch: int = 10_000,
            num_classes: int | None = None) -> np.ndarray:
    """Fresh-key successes of each submitted sample, judged by the game's rule.

    Each sample x′ᵢ is classified ``draws`` times, each time on fresh classifier
    randomness, and a draw counts when it meets the game's goal (:class:`Rules`: targeted,
    C(x′) = y_t; untargeted against the label, C(x′) ∉ {y, REJECTED}; against the
    prediction (seed 000), C(x′) ≠ C(x) with C(x) drawn afresh in every draw, so that a
    draw costs two classifications). A sample outside the game's ε-ball (with the game's
    tolerance) never succeeds, as in the game.

    Args:
        classifier: the game's classifier (``predict(x) -> labels``; randomized or not).
        samples: the submitted x′, float32 [N, C, H, W] in [0, 1].
        sources: the natural samples x they were built from, float32 [N, C, H, W], in
            the same order (the images, not their indices into X_D).
        labels: int64 [N], the true labels of the sources.
        rules: the game's :class:`Rules` (goal, reference, ε, norm, tolerance).
        draws: classifications per sample, ≥ 1.
        targets: int64 [N] for a targeted game (required there), else None.
        keys: a :class:`~evcsa.randomness.KeySource` for the fresh keys: the classifier's
            twin ``classifier.with_keys(keys)`` classifies (reproducible, independent of
            the game's keys). None: the classifier draws from its own key source.
        query_batch: images per ``predict`` call (default 10,000).
        num_classes: K, the labels' upper bound (None: the classifier's ``num_classes``).

    Returns:
        int64 numpy array [N], values in [0, draws].

    Raises:
        InvalidParameter: mismatched shapes or lengths, bad images, labels or draws, a
            targeted game without targets (or targets in an untargeted one), ``keys``
            with a randomized classifier that has no ``with_keys``.
        InvalidOutput: the classifier answered anything but B labels in [REJECTED, K)
            (:func:`~evcsa.judging.check_predictions`, the game's own check).
    """
    if not isinstance(rules, Rules):
        raise InvalidParameter(f"expected rules as an evcsa.games.Rules, got {type(rules).__name__}")
    draws = check_positive_int(draws, "draws")
    query_batch = check_positive_int(query_batch, "query_batch")
    x_adv = as_images(samples, name="samples", device="cpu")
    x_nat = as_images(sources, name="sources", shape=tuple(x_adv.shape[1:]), device="cpu")
    n = x_adv.shape[0]
    if x_nat.shape[0] != n:
        raise InvalidParameter(f"expected {n} source images (one per sample), got {x_nat.shape[0]}")
    y = as_labels(labels, name="labels", length=n)
    if rules.goal == "targeted":
        if targets is None:
            raise InvalidParameter("expected targets in a targeted game, got none")
        tgt: torch.Tensor | None = as_labels(targets, name="targets", length=n)
    elif targets is not None:
        raise InvalidParameter("expected no targets in an untargeted game, got some")
    else:
        tgt = None
    if keys is not None and is_randomized(classifier):
        if not callable(getattr(classifier, "with_keys", None)):
            raise InvalidParameter(f"expected a classifier with with_keys(keys) to rejudge with keys, got "
                                   f"{type(classifier).__name__}")
        classifier = classifier.with_keys(keys)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return predict_labels(classifier, x, num_classes)

    inside = within_epsilon(distance(x_nat, x_adv, rules.norm, tolerance=rules.tolerance), rules.epsilon,
                            rules.norm, tolerance=rules.tolerance)
    counts = np.zeros(n, dtype=np.int64)
    per = max(1, query_batch // draws)
    for start in range(0, n, per):
        sl = slice(start, min(n, start + per))
        # one call for every draw of the chunk, draw-major (row d holds draw d of every
        # sample in the chunk), then C(x) afresh in every draw when judged against it
        k = count_judged_successes(rules, predict, x_adv[sl], y[sl], draws=draws, targets=None if tgt is None else tgt[sl],
                                   clean=x_nat[sl] if rules.needs_reference_predictions else None)
        counts[sl] = torch.where(inside[sl], k, torch.zeros_like(k)).numpy()
    return counts
