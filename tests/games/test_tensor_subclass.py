"""A torch.Tensor subclass handed to the oracles is read as a plain tensor: its
``__torch_function__`` (the adversary's code) never answers the game's own checks.

Found by a hostile review: a subclass whose float64 subtraction returned zeros was recorded
at distance 0 and counted as a success at ε = 0.01, where the honest maximum is 0; another
passed a pixel of 100, and a third counted a 1,000-image Classify as one query.
"""

import pytest
import torch

from evcsa.adversaries import Adversary
from evcsa.defenses import ModelClassifier
from evcsa.errors import BudgetExhausted, InvalidQuery
from evcsa.games import EVCSA
from evcsa.testing import PixelCodeModel, coded_samples

K = 10
LABELS = torch.arange(8) % K
SAMPLES = coded_samples(LABELS)  # class y written at pixel (0, 0): bins 0.1 wide


class Liar(torch.Tensor):
    """Answers float64 subtraction with zeros, min/max with [0, 1], and a shape of one image."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if func in (torch.Tensor.__sub__, torch.Tensor.sub, torch.sub) and out.dtype == torch.float64:
            return torch.zeros_like(out)
        if func in (torch.Tensor.amin, torch.Tensor.min, torch.amin, torch.min) and isinstance(out, torch.Tensor):
            return torch.zeros_like(out)
        if func in (torch.Tensor.amax, torch.Tensor.max, torch.amax, torch.max) and isinstance(out, torch.Tensor):
            return torch.ones_like(out)
        return out


def _other_class(i: int) -> torch.Tensor:
    x = SAMPLES[i].clone()
    x[0, 0, 0] = ((int(LABELS[i]) + 1) % K + 0.5) / K  # L∞ distance 0.1 from the source
    return x


def _game(**kw):
    return EVCSA(ModelClassifier(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, knowledge="blackbox", **kw)


class _Submit(Adversary):
    def __init__(self, make):
        self.make = make

    def play(self, oracles, knowledge):
        for i in range(knowledge.n_chosen):
            oracles.attack(i, self.make(i))


def test_a_subclass_cannot_lie_to_the_distance_check():
    result = _game(n_chosen=8, epsilon=0.01).play(_Submit(lambda i: _other_class(i).as_subclass(Liar)), seed=0)
    assert result.success_rate == 0.0
    assert all(s.distance == pytest.approx(0.1, abs=1e-6) and not s.within_epsilon for s in result.transcript)


def test_a_subclass_cannot_pass_an_out_of_range_pixel():
    def big(i):
        x = SAMPLES[i].clone()
        x[0, 1, 1] = 100.0
        return x.as_subclass(Liar)

    with pytest.raises(InvalidQuery, match=r"expected x_adv values in \[0, 1\], got values in \[0, 100\]"):
        _game(n_chosen=2, epsilon=None).play(_Submit(big), seed=0)


def test_a_subclass_counts_every_image_against_the_budget():
    class Many(Adversary):
        def play(self, oracles, knowledge):
            oracles.classify(SAMPLES[:1].repeat(1000, 1, 1, 1).as_subclass(Liar))

    with pytest.raises(BudgetExhausted, match=r"budget 10\), got 1000"):
        _game(n_chosen=2, classify_budget=10).play(Many(), seed=0)


def test_a_subclass_index_is_read_as_plain_integers():
    result = _game(n_chosen=2, epsilon=None).play(
        _Submit(lambda i: _other_class(i)), seed=0)
    assert [s.source for s in result.transcript] == [0, 1]

    class Sources(Adversary):
        def play(self, oracles, knowledge):
            oracles.attack(torch.tensor(0).as_subclass(Liar), _other_class(0))

    assert _game(n_chosen=1, epsilon=None).play(Sources(), seed=0).transcript[0].source == 0


def test_a_seeded_series_against_os_entropy_keys_says_it_cannot_repeat():
    """Issue 14: the same script with the same seed= prints another advantage each run when
    the defense's keys come from OS entropy; the run says so, once, and how to fix it."""
    import warnings

    from evcsa.defenses import BitDepth, RandomizedSqueezing
    from evcsa.errors import NotReproducibleWarning
    from evcsa.randomness import DerivedKeys, MasterKey, SystemKeys

    model = ModelClassifier(PixelCodeModel(K), num_classes=K)
    adversary = _Submit(_other_class)
    noisy = RandomizedSqueezing(model, BitDepth(3), 0.01, SystemKeys())
    game = EVCSA(noisy, SAMPLES, LABELS, n_chosen=2, epsilon=None, knowledge="blackbox")
    with pytest.warns(NotReproducibleWarning, match=r"RandomizedSqueezing's keys come from OS entropy.*MasterKey"):
        game.repeat(adversary, runs=2, seed=1)
    keyed = RandomizedSqueezing(model, BitDepth(3), 0.01, DerivedKeys(MasterKey.generate(), "t"))
    game = EVCSA(keyed, SAMPLES, LABELS, n_chosen=2, epsilon=None, knowledge="blackbox")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotReproducibleWarning)
        game.repeat(adversary, runs=2, seed=1)
