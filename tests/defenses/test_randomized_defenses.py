"""Randomized Squeezing, Cropping-Rescaling and Region-Based Classification: keyed noise
(C04), gradients through noise + clip + squeeze (C05), ensembles, votes, radius selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evcsa.defenses import (
    REJECTED,
    BitDepth,
    Classifier,
    CroppingRescaling,
    MedianSmoothing,
    ModelClassifier,
    RandomizedSqueezing,
    RegionBasedClassification,
    crop_size_pixels,
    random_crop_rescale,
    select_radius,
)
from evcsa.errors import InvalidParameter
from evcsa.randomness import (
    INTEGER_NONCE,
    DerivedKeys,
    SystemKeys,
    keyed_uniform,
    keystream_words,
    words_to_integers,
)

from .conftest import NUM_CLASSES, images, master_keys, tiny_net


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().double().numpy(), b.flatten().double().numpy())[0, 1])


# -- C04: keyed noise never repeats -------------------------------------------------------
def test_c04_default_keys_give_fresh_noise_every_call():
    """C04: two classifications of the same image with the default key source get
    uncorrelated noise; a re-created defense does not restart the stream. Correlation of
    784 independent pairs has sd 1/28 ≈ 0.036; |r| < 0.2 fails with probability < 1e-7."""
    x = torch.full((1, 1, 28, 28), 0.5)
    rs = RandomizedSqueezing(tiny_net(size=28), None, 0.1)
    assert isinstance(rs.keys, SystemKeys)
    n1, n2 = rs.randomize_pixels(x) - 0.5, rs.randomize_pixels(x) - 0.5
    n3 = RandomizedSqueezing(tiny_net(size=28), None, 0.1).randomize_pixels(x) - 0.5
    for a, b in [(n1, n2), (n1, n3), (n2, n3)]:
        assert not torch.equal(a, b)
        assert abs(_corr(a, b)) < 0.2


def test_c04_master_key_reproduces_experiment_and_varies_within_it():
    """C04: with a fixed master key the same experiment twice gives identical noise, and
    different queries inside it still get different noise."""
    x = torch.full((3, 1, 28, 28), 0.5)

    def experiment() -> list[torch.Tensor]:
        rs = RandomizedSqueezing(tiny_net(size=28), None, 0.2, keys=DerivedKeys(b"k" * 32))
        return [rs.randomize_pixels(x) for _ in range(3)]

    first, second = experiment(), experiment()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert not torch.equal(first[0][0], first[0][1])  # images of one call differ too


def test_c04_noise_in_range_and_clipped_before_squeezing():
    """C04: noise values in [−δ, δ]; the noisy image is clipped to [0, 1] before the
    squeezer (pixel 0.0 with noise −0.05 stays 0.0). Reproduced from the documented
    stream: key 0 of the same DerivedKeys, image i at item i."""
    delta = 0.05
    x = torch.zeros(4, 1, 6, 6)
    x[2:] = 1.0
    rs = RandomizedSqueezing(tiny_net(size=6), MedianSmoothing(2), delta, keys=master_keys())
    noise = keyed_uniform(master_keys().next_key(), tuple(x.shape), delta)
    assert float(noise.abs().max()) <= delta
    want = (x + noise).clamp(0, 1)
    assert torch.equal(rs.randomize_pixels(x), want)
    assert float(want[:2].min()) == 0.0 and float(want[2:].max()) == 1.0
    second = keyed_uniform(_second_key(), tuple(x.shape), delta)  # preprocess: the next key
    assert torch.equal(rs.preprocess(x), MedianSmoothing(2)((x + second).clamp(0, 1)))


def _second_key() -> bytes:
    keys = master_keys()
    keys.next_key()
    return keys.next_key()


def test_predict_uses_squeezed_noisy_input():
    x = images(5, (1, 6, 6))
    rs = RandomizedSqueezing(tiny_net(size=6), MedianSmoothing(3), 0.2, keys=master_keys())
    model = ModelClassifier(tiny_net(size=6))
    noise = keyed_uniform(master_keys().next_key(), tuple(x.shape), 0.2)
    want = model.predict(MedianSmoothing(3)((x + noise).clamp(0, 1)))
    assert torch.equal(rs.predict(x), want)


# -- C05: gradients through noise + clip + squeeze ----------------------------------------
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_c05_saturated_pixels_receive_gradient(value):
    """C05: pixels exactly 0.0 or 1.0 get gradient through noise + clip + BPDA squeeze: in
    one draw exactly where the noisy pixel stayed inside [0, 1] (the real clip), over EOT
    draws nearly everywhere (a pixel misses 10 draws with probability 2^-10)."""
    net = tiny_net(size=8)
    w0 = net[1].weight[0].detach().view(1, 1, 8, 8)
    x = torch.full((1, 1, 8, 8), value, requires_grad=True)
    rs = RandomizedSqueezing(net, BitDepth(1), 0.3, keys=master_keys())
    (g,) = torch.autograd.grad(rs.surrogate_logits(x)[0, 0], x)
    noisy = x.detach() + keyed_uniform(master_keys().next_key(), (1, 1, 8, 8), 0.3)
    inside = ((noisy >= 0) & (noisy <= 1)).float()
    assert torch.equal(g, w0 * inside)
    assert 10 < int((g != 0).sum()) < 54  # about half of 64
    total = torch.zeros_like(x)
    for _ in range(10):
        (g,) = torch.autograd.grad(rs.surrogate_logits(x)[0, 0], x)
        total += g.abs()
    assert int((total > 0).sum()) >= 60


def test_surrogate_value_matches_one_classification_draw():
    """surrogate_logits is one draw: same key → same logits as the model on preprocess."""
    x = images(3, (1, 6, 6))
    a = RandomizedSqueezing(tiny_net(size=6), MedianSmoothing(2), 0.2, keys=master_keys())
    b = RandomizedSqueezing(tiny_net(size=6), MedianSmoothing(2), 0.2, keys=master_keys())
    logits = a.surrogate_logits(x.clone().requires_grad_(True))
    want = b.model.surrogate_logits(b.preprocess(x))
    assert torch.allclose(logits, want, atol=1e-6)


# -- Cropping-Rescaling ---------------------------------------------------------------------
def test_crops_follow_documented_positions_and_bilinear_rescale():
    x = images(2, (3, 8, 8))
    cr = CroppingRescaling(tiny_net(3, 8), 5, n_crops=4, keys=master_keys())
    crops = cr.crops(x)
    words = keystream_words(master_keys().next_key(), 2, 8, nonce=INTEGER_NONCE).reshape(2, 4, 2)
    tops, lefts = words_to_integers(words[..., 0].copy(), 4), words_to_integers(words[..., 1].copy(), 4)
    for i in range(2):
        for j in range(4):
            t, l = int(tops[i, j]), int(lefts[i, j])
            patch = x[i:i + 1, :, t:t + 5, l:l + 5]
            want = F.interpolate(patch, size=(8, 8), mode="bilinear", align_corners=False)
            assert torch.allclose(crops[i, j], want[0], atol=0, rtol=0)


def test_crop_positions_cover_the_image():
    """Every one of the 4×4 corner positions of a 5-pixel crop on 8×8 images appears among
    600 crops (each is missed with probability (15/16)^600 < 1e-16)."""
    words = keystream_words(master_keys().next_key(), 1, 1200, nonce=INTEGER_NONCE).reshape(600, 2)
    pos = {(int(t), int(l)) for t, l in zip(words_to_integers(words[:, 0].copy(), 4),
                                           words_to_integers(words[:, 1].copy(), 4))}
    assert pos == {(t, l) for t in range(4) for l in range(4)}


def test_full_size_crops_average_to_the_model():
    x = images(4)
    cr = CroppingRescaling(tiny_net(), 8, n_crops=5, keys=master_keys())
    assert torch.allclose(cr.predict_proba(x), ModelClassifier(tiny_net()).predict_proba(x), atol=1e-6)


def test_cropping_surrogate_is_log_mean_softmax():
    x = images(3)
    cr = CroppingRescaling(tiny_net(), 6, n_crops=5, keys=master_keys(), surrogate_crops=4)
    logp = cr.surrogate_logits(x)
    assert torch.allclose(logp.exp().sum(dim=1), torch.ones(3), atol=1e-5)


def test_crop_size_fraction_and_training_augmentation():
    assert crop_size_pixels(90 / 299, 299, 299) == (90, 90)
    assert crop_size_pixels(0.5, 8, 6) == (4, 3)
    x = images(6)
    a = random_crop_rescale(x, 0.5, generator=torch.Generator().manual_seed(3))
    b = random_crop_rescale(x, 0.5, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(random_crop_rescale(x, 8, generator=torch.Generator().manual_seed(0)), x)


@pytest.mark.parametrize("make, match", [
    (lambda: CroppingRescaling(tiny_net(), 0), r"crop_size in \[1,"),
    (lambda: CroppingRescaling(tiny_net(), 1.5), r"fraction in \(0, 1\]"),
    (lambda: CroppingRescaling(tiny_net(), "90"), "crop_size as pixels"),
    (lambda: CroppingRescaling(tiny_net(), 4, n_crops=0), "n_crops ≥ 1"),
    (lambda: CroppingRescaling(tiny_net(), 4, keys=b"k" * 16), "KeySource"),
    (lambda: CroppingRescaling(tiny_net(), 9).predict(images(1)), r"crop_size in \[1, 8\]"),
    (lambda: random_crop_rescale(images(1), 4, generator=0), "torch.Generator"),
])
def test_cropping_errors(make, match):
    with pytest.raises(InvalidParameter, match=match):
        make()


# -- Region-Based Classification ----------------------------------------------------------
class _Recorder(Classifier):
    """A base classifier that records the batches it sees and returns fixed labels."""

    def __init__(self, labels_for=None) -> None:
        self.batches: list[torch.Tensor] = []
        self.labels_for = labels_for or (lambda x: torch.zeros(x.shape[0], dtype=torch.int64))
        self._model = ModelClassifier(tiny_net(1, 2), num_classes=NUM_CLASSES)

    num_classes = NUM_CLASSES
    device = torch.device("cpu")

    @property
    def model(self):
        return self._model

    def predict(self, x):
        self.batches.append(x.clone())
        return self.labels_for(x)


def test_region_samples_are_chunked_clipped_and_in_the_hypercube():
    """10,000 samples per image never sit in memory at once: the base sees at most
    batch_size samples per call, all within r of x and inside [0, 1]."""
    rec = _Recorder()
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.02]]]])
    rb = RegionBasedClassification(rec, 0.1, keys=master_keys(), batch_size=500)
    assert rb.n_samples == 10_000
    assert rb.predict(x).tolist() == [0]
    assert max(b.shape[0] for b in rec.batches) == 500
    allx = torch.cat(rec.batches)
    assert allx.shape[0] == 10_000
    assert float((allx - x).abs().max()) <= 0.1 + 1e-7
    assert float(allx.min()) == 0.0 and float(allx.max()) == 1.0
    assert float(allx[:, 0, 0, 0].max()) > 0.05  # the 0-pixel moved up, not only clipped


def test_region_ties_go_to_the_lowest_label():
    rec = _Recorder(lambda x: torch.tensor([3, 1] * (x.shape[0] // 2), dtype=torch.int64))
    rb = RegionBasedClassification(rec, 0.1, n_samples=4, keys=master_keys(), batch_size=2)
    assert rb.predict(torch.zeros(2, 1, 2, 2)).tolist() == [1, 1]
    assert rb.predict_proba(torch.zeros(1, 1, 2, 2)).tolist() == [[0.0, 0.5, 0.0, 0.5]]


def test_region_rejections_win_only_with_a_strict_majority():
    all_rejected = _Recorder(lambda x: torch.full((x.shape[0],), REJECTED, dtype=torch.int64))
    rb = RegionBasedClassification(all_rejected, 0.1, n_samples=6, keys=master_keys())
    assert rb.predict(torch.zeros(1, 1, 2, 2)).tolist() == [REJECTED]
    half = _Recorder(lambda x: torch.tensor([REJECTED, 2] * (x.shape[0] // 2), dtype=torch.int64))
    rb = RegionBasedClassification(half, 0.1, n_samples=6, keys=master_keys(), batch_size=2)
    assert rb.predict(torch.zeros(1, 1, 2, 2)).tolist() == [2]


def test_region_radius_zero_is_the_model():
    x = images(5)
    rb = RegionBasedClassification(tiny_net(), 0.0, n_samples=20, keys=master_keys())
    model = ModelClassifier(tiny_net())
    assert torch.equal(rb.predict(x), model.predict(x))
    assert torch.equal(rb.predict_proba(x), F.one_hot(model.predict(x), NUM_CLASSES).float())


def test_select_radius_stops_at_the_first_failure():
    """Cao & Gong: search upward; the chosen radius is the last whose accuracy stays within
    the tolerance of the undefended model's."""
    x = images(40)
    model = ModelClassifier(tiny_net())
    y = model.predict(x)
    sel = select_radius(tiny_net(), x, y, max_radius=0.5, step=0.05, tolerance=0.05,
                        n_samples=30, keys=master_keys())
    assert sel.baseline_accuracy == 1.0
    ok = [a >= 1.0 - 0.05 for a in sel.accuracies]
    assert len(ok) >= 3, "the grid must be searched past its first steps for this test to mean anything"
    assert all(ok[:-1]) and not ok[-1], "search stops at the first radius below the tolerance"
    assert sel.radius == sel.radii[-2]
    assert sel.radii == tuple(round(0.05 * (i + 1), 12) for i in range(len(sel.radii)))
    # a bound reached without failure returns the bound itself
    within = select_radius(tiny_net(), x, y, max_radius=sel.radius, step=0.05, tolerance=0.05,
                           n_samples=30, keys=master_keys())
    assert within.radius == sel.radius and all(a >= 0.95 for a in within.accuracies)


@pytest.mark.parametrize("make, match", [
    (lambda: RegionBasedClassification(tiny_net(), 1.5), r"radius in \[0, 1\]"),
    (lambda: RegionBasedClassification(tiny_net(), 0.1, n_samples=0), "n_samples ≥ 1"),
    (lambda: RegionBasedClassification(tiny_net(), 0.1, surrogate_samples=True), "surrogate_samples as an integer"),
    (lambda: select_radius(tiny_net(), images(2), [0, 1], max_radius=0.0), r"max_radius in \(0, 1\]"),
    (lambda: select_radius(tiny_net(), images(2), [0, 1], max_radius=0.1, step=0.2), r"step in \(0, 0.1\]"),
    (lambda: select_radius(tiny_net(), images(2), [0], max_radius=0.1), "expected 2 labels"),
])
def test_region_errors(make, match):
    with pytest.raises(InvalidParameter, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: RandomizedSqueezing(tiny_net(), "median-2x2", 1.2), r"delta in \[0, 1\]"),
    (lambda: RandomizedSqueezing(tiny_net(), "median-2x2", "0.1"), "delta as a number"),
    (lambda: RandomizedSqueezing(tiny_net(), "median-2x2", torch.tensor([0.1, 0.2])), "delta as a number"),
    (lambda: RandomizedSqueezing(tiny_net(), "median-2x2", np.zeros(3)), "delta as a number"),
    (lambda: RandomizedSqueezing(tiny_net(), "blur-3", 0.1), "squeezer spec like"),
    (lambda: RandomizedSqueezing(tiny_net(), None, 0.1, keys="os"), "KeySource"),
    (lambda: RandomizedSqueezing("net", None, 0.1), "Classifier or torch.nn.Module"),
])
def test_randomized_squeezing_errors(make, match):
    with pytest.raises(InvalidParameter, match=match):
        make()


def test_wrap_takes_noisy_values_mod_one_instead_of_clipping():
    """Seed 002 § 5.2.3's wrap-around variant: x̃ = (x + r) mod 1, from the same stream as
    the clipped defense (key 0 of the same DerivedKeys)."""
    delta = 0.3
    x = torch.full((2, 1, 6, 6), 0.9)
    rs = RandomizedSqueezing(tiny_net(size=6), None, delta, keys=master_keys(), wrap=True)
    noise = keyed_uniform(master_keys().next_key(), tuple(x.shape), delta)
    got = rs.randomize_pixels(x)
    assert torch.equal(got, torch.remainder(x + noise, 1.0))
    assert float(got.min()) < 0.2  # 0.9 + r > 1 wrapped near 0, never clipped to 1
    assert rs.with_keys(master_keys()).wrap is True
    with pytest.raises(InvalidParameter, match="expected wrap as a bool"):
        RandomizedSqueezing(tiny_net(size=6), None, delta, wrap=1)
