"""FeatureSqueezing: the squeezed classification, the joint detector and its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evcsa.defenses import (
    REJECTED,
    BitDepth,
    Compose,
    FeatureSqueezing,
    MedianSmoothing,
    ModelClassifier,
    NonLocalMeans,
    fit_threshold,
)
from evcsa.errors import InvalidParameter

from .conftest import images, tiny_net


def test_classifies_the_composed_squeeze():
    x = images(9)
    fs = FeatureSqueezing(tiny_net(), [BitDepth(1), MedianSmoothing(2)], batch_size=4)
    model = ModelClassifier(tiny_net())
    assert torch.equal(fs.predict(x), model.predict(MedianSmoothing(2)(BitDepth(1)(x))))
    assert torch.equal(fs.squeeze(x), Compose([BitDepth(1), MedianSmoothing(2)])(x))
    raw = FeatureSqueezing(tiny_net(), [BitDepth(1)], classify_on="raw")
    assert torch.equal(raw.predict(x), model.predict(x))


def test_detection_score_is_max_l1_over_separate_squeezers():
    x = images(6)
    squeezers = [BitDepth(1), MedianSmoothing(2), NonLocalMeans(5, 3, 4)]
    fs = FeatureSqueezing(tiny_net(), squeezers, batch_size=4)
    model = ModelClassifier(tiny_net())
    p = model.predict_proba(x)
    want = torch.stack([(p - model.predict_proba(s(x))).abs().sum(1) for s in squeezers]).amax(0)
    assert torch.allclose(fs.detection_scores(x), want, atol=1e-6)
    surrogate = fs.surrogate_detection_score(x.clone().requires_grad_(True))
    assert torch.allclose(surrogate, want, atol=1e-5) and surrogate.requires_grad


def test_fit_threshold_rank_rule():
    """Xu et al.: the ⌈n(1 − fpr)⌉-th smallest legitimate score; flagged iff strictly above,
    so at most ⌊n·fpr⌋ legitimate samples are flagged."""
    scores = np.arange(1, 101, dtype=float)[::-1]
    assert fit_threshold(scores, 0.05) == 95.0
    assert fit_threshold(np.arange(20.0), 0.05) == 18.0
    assert fit_threshold([0.3, 0.1, 0.2], 0.0) == 0.3
    assert fit_threshold([0.3, 0.1, 0.2], 0.5) == 0.2


@pytest.mark.parametrize("scores, fpr, match", [
    ([], 0.05, "at least one finite"),
    ([0.1, float("nan")], 0.05, "at least one finite"),
    ([0.1], 1.0, r"fpr in \[0, 1\)"),
    ([0.1], -0.1, r"fpr in \[0, 1\)"),
])
def test_fit_threshold_errors(scores, fpr, match):
    with pytest.raises(InvalidParameter, match=match):
        fit_threshold(scores, fpr)


def test_detector_flags_at_most_fpr_of_legitimate_and_rejects():
    legit = images(40)
    fs = FeatureSqueezing(tiny_net(), [BitDepth(2), MedianSmoothing(2)], batch_size=16)
    det = fs.with_detector(legit, fpr=0.1)
    assert det.detector and not fs.detector
    y = det.predict(legit)
    assert int((y == REJECTED).sum()) <= 4
    scores = det.detection_scores(legit)
    assert torch.equal(y == REJECTED, scores > det.threshold)
    assert torch.equal(y[y != REJECTED], fs.predict(legit)[y != REJECTED])
    assert torch.equal(det.predict_proba(legit), fs.predict_proba(legit))  # the detector stays out


def test_everything_flagged_with_a_negative_threshold():
    fs = FeatureSqueezing(tiny_net(), "median-2x2", threshold=-1.0)
    assert fs.predict(images(3)).tolist() == [REJECTED] * 3


def test_surrogate_is_bpda_through_the_composition():
    x = images(2).requires_grad_(True)
    fs = FeatureSqueezing(tiny_net(), [BitDepth(1), MedianSmoothing(2)])
    logits = fs.surrogate_logits(x)
    w = tiny_net()[1].weight.detach()
    (g,) = torch.autograd.grad(logits[:, 1].sum(), x)
    assert torch.allclose(g, w[1].view(1, 1, 8, 8).expand_as(g))
    assert torch.allclose(logits, ModelClassifier(tiny_net()).logits(fs.squeeze(x.detach())), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(squeezers=[]), "one squeezer or a non-empty sequence"),
    (dict(squeezers=["bogus"]), "squeezer spec like"),
    (dict(squeezers="median-2x2", classify_on="both"), r"classify_on in \('squeezed', 'raw'\)"),
    (dict(squeezers="median-2x2", threshold=float("nan")), "threshold as a finite number"),
    (dict(squeezers="median-2x2", batch_size=0), "batch_size ≥ 1"),
])
def test_construction_errors(kwargs, match):
    with pytest.raises(InvalidParameter, match=match):
        FeatureSqueezing(tiny_net(), **kwargs)
