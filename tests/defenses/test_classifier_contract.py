"""The interface every classifier keeps (one registry, one table): predict, predict_proba,
surrogate_logits, randomized, with_keys, model, device, chunking, input checks."""

from __future__ import annotations

import warnings

import pytest
import torch

from evcsa.defenses import REJECTED, LogitsWarning, ModelClassifier
from evcsa.errors import InvalidParameter

from .conftest import NUM_CLASSES, REGISTRY, images, master_keys, tiny_net


def make(kind: str, label: str = "defense"):
    return REGISTRY[kind](tiny_net(), master_keys(label))


def test_predict_shape_dtype_range(classifier_kind):
    clf = make(classifier_kind)
    y = clf.predict(images(7))
    assert y.dtype == torch.int64 and y.shape == (7,) and y.device == clf.device
    assert bool(((y >= 0) & (y < NUM_CLASSES) | (y == REJECTED)).all())
    assert clf.num_classes == NUM_CLASSES


def test_predict_proba_rows(classifier_kind):
    clf = make(classifier_kind)
    p = clf.predict_proba(images(5))
    assert p.shape == (5, NUM_CLASSES) and p.dtype == torch.float32
    assert torch.allclose(p.sum(dim=1), torch.ones(5), atol=1e-5)
    assert bool((p >= 0).all())


def test_numpy_and_single_batch_inputs(classifier_kind):
    clf = make(classifier_kind)
    assert clf.predict(images(2).numpy()).shape == (2,)
    assert clf.predict(images(1)).shape == (1,)


def test_model_is_the_undefended_classifier(classifier_kind):
    clf = make(classifier_kind)
    assert isinstance(clf.model, ModelClassifier)
    assert clf.model.model is clf.model


def test_with_keys_twin(classifier_kind):
    clf = make(classifier_kind)
    twin = clf.with_keys(master_keys("adversary"))
    if not clf.randomized:
        assert twin is clf
        return
    assert type(twin) is type(clf) and twin is not clf
    assert twin.keys is not clf.keys and twin.model is clf.model
    for name in ("delta", "squeezer", "crop_size", "n_crops", "radius", "n_samples",
                 "surrogate_crops", "surrogate_samples", "batch_size"):
        assert getattr(twin, name, None) == getattr(clf, name, None)


def test_randomized_twin_reproduces_with_same_keys(classifier_kind):
    """Two copies on the same master key give the same outputs call by call; a twin on
    other keys is a different draw (for these seeds the probabilities differ)."""
    x = images(6)
    a, b = make(classifier_kind), make(classifier_kind)
    pa, pb = a.predict_proba(x), b.predict_proba(x)
    assert torch.equal(pa, pb)
    if a.randomized:
        assert not torch.equal(a.predict_proba(x), pa)  # the next key
        other = a.with_keys(master_keys("adversary")).predict_proba(x)
        assert not torch.equal(other, pb)


def test_chunking_does_not_change_results(classifier_kind):
    """Each image's randomness is at its own keystream offset: batch size is invisible."""
    x = images(7)
    small, large = make(classifier_kind), make(classifier_kind)
    large.batch_size = 1000
    if hasattr(getattr(large, "base", None), "batch_size"):
        large.base.batch_size = 1000
    assert torch.equal(small.predict(x), large.predict(x))


def test_surrogate_is_differentiable(classifier_kind):
    clf = make(classifier_kind)
    x = images(3).requires_grad_(True)
    logits = clf.surrogate_logits(x)
    assert logits.shape == (3, NUM_CLASSES)
    (g,) = torch.autograd.grad(logits[:, 0].sum(), x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all())
    assert float(g.abs().sum()) > 0, "an all-zero gradient would read as robustness (C05)"


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 8, 8), r"shape \[B, C, H, W\]"),
    (torch.full((2, 1, 8, 8), 1.5), r"values in \[0, 1\]"),
    (torch.full((2, 1, 8, 8), float("nan")), "finite values"),
    (torch.zeros(0, 1, 8, 8), "at least one image"),
    ("image", "torch tensor or numpy array"),
])
def test_malformed_input_raises(classifier_kind, bad, match):
    clf = make(classifier_kind)
    with pytest.raises(InvalidParameter, match=match):
        clf.predict(bad)
    with pytest.raises(InvalidParameter, match=match):
        clf.predict_proba(bad)


@pytest.mark.parametrize("kind", ["fs-nlm", "randomized-squeezing-nlm"])
@pytest.mark.parametrize("channels", [2, 4])
def test_squeezer_channel_limits_hold_inside_defenses(kind, channels):
    """Non-local means takes 1 or 3 channels; a defense around it must say so, not pass
    the batch on to OpenCV (a raw cv2.error for 2 channels, a silent 4-channel run)."""
    clf = REGISTRY[kind](tiny_net(channels), master_keys())
    x = images(2, (channels, 8, 8))
    for call in (clf.predict, clf.predict_proba, clf.surrogate_logits):
        with pytest.raises(InvalidParameter, match=fr"1 or 3 channel\(s\), got {channels}"):
            call(x)


def test_randomized_flag():
    assert {k for k in REGISTRY if make(k).randomized} == {
        "randomized-squeezing", "randomized-squeezing-nlm", "cropping-rescaling", "region-based"}


def test_no_global_rng_use(classifier_kind):
    """Randomized defenses never draw from torch's global RNG: its state is untouched."""
    clf = make(classifier_kind)
    state = torch.get_rng_state()
    clf.predict(images(3))
    clf.surrogate_logits(images(2))
    assert torch.equal(torch.get_rng_state(), state)


class _Out(torch.nn.Module):
    """A module answering whatever ``make(x)`` returns."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


@pytest.mark.parametrize("make_out, match", [
    (lambda x: x.flatten(1)[:, 0], r"float logits \[3, K\] with K ≥ 2, got \(3,\)"),
    (lambda x: x.flatten(1)[:, :1], r"K ≥ 2, got \(3, 1\)"),
    (lambda x: x.flatten(1)[:1, :4], r"map 3 images .* got \(1, 4\)"),
    (lambda x: (x.flatten(1)[:, :4] * 10).long(), r"got \(3, 4\) torch.int64"),
    (lambda x: x.flatten(1)[:, :4].tolist(), "got list"),
])
def test_a_module_answering_something_else_than_logits_is_named(make_out, match):
    clf = ModelClassifier(_Out(make_out))
    for call in (clf.predict, clf.logits, clf.surrogate_logits):
        with pytest.raises(InvalidParameter, match=match):
            call(images(3))


def test_logits_must_have_the_declared_number_of_classes():
    clf = ModelClassifier(_Out(lambda x: x.flatten(1)[:, :4]), num_classes=10)
    with pytest.raises(InvalidParameter, match="num_classes = 10 columns, got 4"):
        clf.predict(images(3))


def test_probabilities_instead_of_logits_warn_once():
    softmaxed = ModelClassifier(torch.nn.Sequential(tiny_net(), torch.nn.Softmax(dim=1)))
    with pytest.warns(LogitsWarning, match="look like probabilities .* drop the final softmax"):
        softmaxed.predict(images(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmaxed.predict(images(4))  # once per classifier
        ModelClassifier(tiny_net()).predict(images(4))  # logits: no warning
        ModelClassifier(_Out(lambda x: torch.eye(4)[: x.shape[0]])).predict(images(3))  # one-hot logits


def test_probabilities_through_the_surrogate_warn_too():
    softmaxed = ModelClassifier(torch.nn.Sequential(tiny_net(), torch.nn.Softmax(dim=1)))
    with pytest.warns(LogitsWarning):
        softmaxed.surrogate_logits(images(2).requires_grad_(True))


def test_images_the_module_cannot_take_are_named_with_a_channels_last_hint():
    """A torch RuntimeError inside the module (here: NHWC digits into a 1-channel conv)
    becomes one InvalidParameter naming the shape; other errors are left alone."""
    clf = ModelClassifier(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()))
    nhwc = torch.rand(5, 8, 8, 1)
    for call in (clf.predict, clf.surrogate_logits):
        with pytest.raises(InvalidParameter, match=r"expected images \[B, C, H, W\] that Sequential accepts, "
                                                   r"got shape \[5, 8, 8, 1\] \(channels last\? .*permute"):
            call(nhwc)

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise KeyError("a bug in the model")

    with pytest.raises(KeyError, match="a bug in the model"):
        ModelClassifier(Broken()).predict(images(2))
