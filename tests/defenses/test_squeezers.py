"""Squeezers: value-for-value parity with the reference (scipy, OpenCV), C01–C03, BPDA (C05)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import median_filter

from evcsa.defenses import (
    BitDepth,
    Compose,
    MedianSmoothing,
    NonLocalMeans,
    bpda,
    squeezer_from_spec,
    straight_through,
)
from evcsa.errors import InvalidParameter


def _batch(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    # ties and grid values, as on real uint8 images
    x[: max(1, shape[0] // 2)] = np.round(x[: max(1, shape[0] // 2)] * 4) / 4
    return x


# -- C01 bit depth ----------------------------------------------------------------------
def test_c01_bit_depth_level_counts():
    """C01: 1001 evenly spaced points → exactly 2, 8, 16 distinct outputs for b = 1, 3, 4."""
    x = torch.linspace(0, 1, 1001, dtype=torch.float32).view(1, 1, 1, -1)
    for bits, levels in [(1, 2), (3, 8), (4, 16)]:
        assert BitDepth(bits)(x).unique().numel() == levels


def test_c01_bit_depth_values_and_threshold():
    """C01: b = 3, [0.2, 0.6, 0.99] → [1/7, 4/7, 1]; b = 1 on the uint8 grid: k ≤ 127 → 0,
    k ≥ 128 → 1; and x ≤ 0.5 → 0 (0.5 rounds half to even)."""
    got = BitDepth(3)(torch.tensor([0.2, 0.6, 0.99]).view(1, 1, 1, 3)).flatten()
    want = torch.tensor([1, 4, 7], dtype=torch.float32) / 7
    assert torch.equal(got, want)
    grid = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 1, -1)
    out = BitDepth(1)(grid).flatten()
    assert torch.equal(out, (torch.arange(256) >= 128).to(torch.float32))
    assert BitDepth(1)(torch.full((1, 1, 1, 1), 0.5)).item() == 0.0


def test_c01_bit_depth_float32_near_tie():
    """C01: float32 0.78571427 · 7 is exactly 5.5 in float32 → rint 6 → 6/7 (the
    reference's float32 arithmetic); float64 would give 5/7."""
    x = np.float32(0.78571427)
    assert float(x) * 7 < 5.5 and x * np.float32(7) == np.float32(5.5)
    got = BitDepth(3)(torch.tensor([[[[x]]]]))
    assert got.item() == np.float32(6) / np.float32(7)


@pytest.mark.parametrize("bits", [1, 2, 4, 5, 8])
def test_bit_depth_matches_reference_formula(bits):
    """Parity with EvadeML-Zoo's numpy reduce_precision (float32 in, float32 arithmetic)."""
    x = _batch(bits, (4, 3, 8, 8))
    levels = 2**bits - 1
    ref = np.rint(x * levels) / levels
    assert ref.dtype == np.float32
    np.testing.assert_array_equal(BitDepth(bits)(torch.from_numpy(x)).numpy(), ref)


# -- C02 median -------------------------------------------------------------------------
def test_c02_median_witnesses():
    """C02: the 4×4 grid 0…15 and [[1, 2], [3, 4]] (2×2: upper middle, up/left alignment,
    edge repeated)."""
    grid = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    two = MedianSmoothing(2)(grid)[0, 0]
    three = MedianSmoothing(3)(grid)[0, 0]
    assert two.tolist() == [[0, 1, 2, 3], [4, 4, 5, 6], [8, 8, 9, 10], [12, 12, 13, 14]]
    assert three.tolist() == [[1, 2, 3, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 12, 13, 14]]
    small = MedianSmoothing(2)(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))[0, 0]
    assert small.tolist() == [[1, 2], [3, 3]]


@pytest.mark.parametrize("size", [2, 3, (2, 3), 5])
def test_c02_median_never_mixes_channels_or_images(size):
    """C02: constant planes 0, 1, 0 are unchanged; images of a batch stay apart."""
    x = torch.zeros(3, 3, 6, 6)
    x[:, 1] = 1.0
    x[1] = 1.0 - x[1]
    assert torch.equal(MedianSmoothing(size)(x), x)


SIZES = [1, 2, 3, 4, 5, (1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (7, 2)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_median_parity_with_scipy(size, channels):
    """Value for value: scipy.ndimage.median_filter(size=(1, 1, kh, kw), mode='reflect')."""
    x = _batch(channels * 7, (5, channels, 9, 11))
    kh, kw = (size, size) if isinstance(size, int) else size
    ref = median_filter(x, size=(1, 1, kh, kw), mode="reflect")
    np.testing.assert_array_equal(MedianSmoothing(size)(torch.from_numpy(x)).numpy(), ref)


@settings(max_examples=40)
@given(kh=st.integers(1, 6), kw=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_median_parity_property(kh, kw, h, w, c, seed):
    """Any window on any image size, including windows larger than the image (repeated
    reflection), equals scipy."""
    x = _batch(seed, (2, c, h, w))
    ref = median_filter(x, size=(1, 1, kh, kw), mode="reflect")
    np.testing.assert_array_equal(MedianSmoothing((kh, kw))(torch.from_numpy(x)).numpy(), ref)


def test_median_large_batch_crosses_chunks():
    x = _batch(3, (300, 1, 6, 6))  # > one internal chunk of 256
    ref = median_filter(x, size=(1, 1, 3, 3), mode="reflect")
    np.testing.assert_array_equal(MedianSmoothing(3)(torch.from_numpy(x)).numpy(), ref)


# -- C03 non-local means ----------------------------------------------------------------
def _nlm_reference(x: np.ndarray, a: int, b: int, c: float) -> np.ndarray:
    """The per-image OpenCV loop of the reference (EvadeML-Zoo opencv_wrapper)."""
    out = []
    for img in x.transpose(0, 2, 3, 1):
        u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
        if u8.shape[2] == 1:
            r = cv2.fastNlMeansDenoising(u8[..., 0], None, c, b, a)[..., None]
        else:
            r = cv2.fastNlMeansDenoisingColored(u8, None, c, c, b, a)
        out.append(r.astype(np.float32) / 255.0)
    return np.stack(out).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("spec", ["11-3-4", "13-3-2", "5-3-10", "7-5-30"])
@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (5, 3, 32, 32), (3, 3, 9, 13), (4, 1, 5, 6)])
def test_nlm_parity_with_opencv(spec, shape):
    """The strip gives exactly the per-image OpenCV result, grey and colour, also for
    images smaller than OpenCV's border."""
    x = _batch(sum(shape), shape)
    a, b, c = (int(v) for v in spec.split("-"))
    got = NonLocalMeans.from_string(spec, tiles_per_call=4)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, _nlm_reference(x, a, b, c))
    loop = NonLocalMeans.from_string(spec, tiles_per_call=1)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(loop, got)


def test_c03_uint8_conversion_clips_before_cast():
    """C03: [−0.004, 0.5, 1.004] → uint8 [0, 128, 255] (a bare cast gives [255, 127, 0])."""
    from evcsa.defenses.nonlocal_means import _to_uint8

    x = torch.tensor([-0.004, 0.5, 1.004]).view(1, 1, 1, 3)
    assert _to_uint8(x).ravel().tolist() == [0, 128, 255]
    # and through the squeezer: a constant image stays constant
    y = NonLocalMeans(11, 3, 4)(torch.full((1, 1, 8, 8), 1.004))
    assert torch.all(y == 1.0)


def test_c03_grey_batch_of_one_keeps_shape():
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert NonLocalMeans(11, 3, 4)(x).shape == (1, 1, 28, 28)


# -- BPDA (C05) -------------------------------------------------------------------------
def test_c05_bpda_gives_identity_gradient():
    """C05: logits w · g(x), g = 1-bit squeeze, w = (1, −2, 3), x = (0.3, 0.6, 0.9): plain
    autograd gives 0, BPDA gives w."""
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.tensor([0.3, 0.6, 0.9], requires_grad=True)
    plain = (w * torch.round(x * 1.0) / 1.0).sum()
    (g_plain,) = torch.autograd.grad(plain, x)
    assert torch.equal(g_plain, torch.zeros(3))
    xb = x.view(1, 1, 1, 3)
    (g_bpda,) = torch.autograd.grad((w * BitDepth(1).bpda(xb).flatten()).sum(), x)
    assert torch.equal(g_bpda, w)


def test_c05_bpda_chain_uses_squeezed_value():
    """C05: g2(g1(x)), g1 = 1-bit squeeze with identity backward, g2(u) = u², x = 0.8 →
    gradient 2·g1(x) = 2.0 (not 2x = 1.6)."""
    x = torch.full((1, 1, 1, 1), 0.8, requires_grad=True)
    (g,) = torch.autograd.grad((BitDepth(1).bpda(x) ** 2).sum(), x)
    assert g.item() == 2.0
    (g2,) = torch.autograd.grad((bpda(BitDepth(1))(x) ** 2).sum(), x)
    assert g2.item() == 2.0


@pytest.mark.parametrize("squeezer", [BitDepth(3), MedianSmoothing(2), MedianSmoothing(3),
                                      NonLocalMeans(5, 3, 4), Compose([BitDepth(1), MedianSmoothing(2)])],
                         ids=lambda s: s.spec)
def test_bpda_forward_equals_squeezer_and_backward_is_identity(squeezer):
    x = torch.from_numpy(_batch(1, (2, 1, 6, 6))).requires_grad_(True)
    y = squeezer.bpda(x)
    assert torch.equal(y.detach(), squeezer(x.detach()))
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (g,) = torch.autograd.grad((y * weights).sum(), x)
    assert torch.equal(g, weights)


def test_straight_through_without_grad_returns_value():
    x, y = torch.zeros(2), torch.ones(2)
    out = straight_through(x, y)
    assert torch.equal(out, y) and not out.requires_grad


# -- construction, specs, errors --------------------------------------------------------
def test_specs_round_trip():
    for s in [BitDepth(5), MedianSmoothing(2), MedianSmoothing((2, 3)), NonLocalMeans(11, 3, 4),
              NonLocalMeans(13, 3, 2.5), Compose([BitDepth(1), MedianSmoothing(2)])]:
        assert squeezer_from_spec(s.spec) == s
    assert squeezer_from_spec("median-3") == MedianSmoothing(3)
    assert NonLocalMeans.from_string("11-3-4") == NonLocalMeans(11, 3, 4)
    assert squeezer_from_spec(["bit-depth-1", "median-2x2"]) == Compose([BitDepth(1), MedianSmoothing(2)])


def test_compose_applies_in_order():
    x = torch.from_numpy(_batch(2, (2, 1, 7, 7)))
    both = Compose([BitDepth(2), MedianSmoothing(2)])(x)
    assert torch.equal(both, MedianSmoothing(2)(BitDepth(2)(x)))


def test_numpy_input_and_device_preserved():
    x = _batch(5, (2, 3, 5, 5))
    out = MedianSmoothing(3)(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == torch.device("cpu")


@pytest.mark.parametrize("make, match", [
    (lambda: BitDepth(0), r"bits as an integer in \[1, 16\]"),
    (lambda: BitDepth(17), r"bits as an integer in \[1, 16\]"),
    (lambda: BitDepth(2.0), "bits as an integer"),
    (lambda: MedianSmoothing(0), "positive integers"),
    (lambda: MedianSmoothing((2, 2, 2)), r"integer or \(height, width\)"),
    (lambda: NonLocalMeans(10, 3, 4), "search_window as an odd integer"),
    (lambda: NonLocalMeans(11, 3, 0), "strength as a number > 0"),
    (lambda: NonLocalMeans.from_string("11-3"), "'a-b-c'"),
    (lambda: squeezer_from_spec("gauss-3"), "squeezer spec like"),
    (lambda: squeezer_from_spec("median-axb"), "squeezer spec like"),
    (lambda: Compose([]), "non-empty sequence of squeezers"),
])
def test_construction_errors(make, match):
    with pytest.raises(InvalidParameter, match=match):
        make()


@pytest.mark.parametrize("x, match", [
    (torch.zeros(3, 4, 4), r"shape \[B, C, H, W\]"),
    (torch.zeros(1, 1, 4, 4, dtype=torch.int64), "floating images"),
    (torch.full((1, 1, 2, 2), float("nan")), "finite values"),
    ([[0.5]], "torch tensor or numpy array"),
])
def test_call_errors(x, match):
    with pytest.raises(InvalidParameter, match=match):
        MedianSmoothing(2)(x)


def test_nlm_rejects_other_channel_counts():
    with pytest.raises(InvalidParameter, match="1 or 3 channel"):
        NonLocalMeans(11, 3, 4)(torch.zeros(1, 2, 8, 8))
