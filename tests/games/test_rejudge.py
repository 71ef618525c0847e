"""evcsa.games.rejudge: fresh-key successes of submitted samples, with the game's rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from evcsa.defenses import REJECTED, Defense, ModelClassifier
from evcsa.errors import InvalidParameter
from evcsa.games import Rules, rejudge
from evcsa.randomness import DerivedKeys
from evcsa.stats import expected_advantage
from evcsa.testing import CoinFlipClassifier, PixelCodeModel, coded_samples

K = 10


def coin(keys=None) -> CoinFlipClassifier:
    return CoinFlipClassifier(ModelClassifier(PixelCodeModel(K), num_classes=K), keys)


def with_p(x: torch.Tensor, p) -> torch.Tensor:
    x = x.clone()
    x[:, 0, 0, 1] = torch.as_tensor(p, dtype=torch.float32)
    return x


LABELS = torch.tensor([0, 1, 2, 3])
SOURCES = coded_samples(LABELS, num_classes=K)


def test_counts_follow_the_true_probabilities():
    """Sample i flips with probability pᵢ: its count is Binomial(draws, pᵢ); every count
    lies inside its two-sided 1 − 1e-6 binomial range (false-failure probability < 4e-6
    for the 4 samples; deterministic with the derived keys)."""
    p = np.array([0.0, 0.25, 0.75, 1.0])
    x_adv = with_p(SOURCES, p)
    draws = 400
    k = rejudge(coin(), x_adv, SOURCES, LABELS, Rules(n_chosen=4, epsilon=None), draws=draws,
                keys=DerivedKeys(bytes(16), "rejudge"))
    assert k.dtype == np.int64 and k.shape == (4,)
    assert k[0] == 0 and k[3] == draws
    for ki, pi in zip(k[1:3], p[1:3]):
        lo, hi = sps.binom.interval(1 - 1e-6, draws, pi)
        assert lo <= ki <= hi


def test_keys_make_it_reproducible_and_independent_of_the_classifier_keys():
    x_adv = with_p(SOURCES, [0.5] * 4)
    rules = Rules(n_chosen=4)
    a = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=50, keys=DerivedKeys(bytes(16), "r"))
    b = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=50, keys=DerivedKeys(bytes(16), "r"))
    c = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=50, keys=DerivedKeys(bytes(16), "other"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_chunking_does_not_change_the_counts():
    x_adv = with_p(SOURCES, [0.3, 0.6, 0.1, 0.9])
    rules = Rules(n_chosen=4)
    a = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=30, keys=DerivedKeys(bytes(16), "r"))
    b = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=30, keys=DerivedKeys(bytes(16), "r"),
                query_batch=7)
    # the keys are consumed per call, so chunks see other noise: only the law is equal
    assert a.shape == b.shape and np.all((0 <= b) & (b <= 30))


def test_outside_epsilon_never_succeeds():
    x_adv = with_p(SOURCES, [1.0] * 4)  # moves pixel (0, 1) by 1.0 in L∞
    k = rejudge(coin(), x_adv, SOURCES, LABELS, Rules(n_chosen=4, epsilon=0.5), draws=5)
    assert k.tolist() == [0, 0, 0, 0]
    k = rejudge(coin(), x_adv, SOURCES, LABELS, Rules(n_chosen=4, epsilon=1.0), draws=5)
    assert k.tolist() == [5, 5, 5, 5]


def test_targeted_counts_hits_of_the_target():
    x_adv = with_p(SOURCES, [1.0] * 4)  # always (y + 1) mod K
    rules = Rules(n_chosen=4, goal="targeted")
    k = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=3, targets=(LABELS + 1) % K)
    assert k.tolist() == [3, 3, 3, 3]
    k = rejudge(coin(), x_adv, SOURCES, LABELS, rules, draws=3, targets=(LABELS + 2) % K)
    assert k.tolist() == [0, 0, 0, 0]


def test_prediction_reference_draws_c_of_x_afresh():
    """Against C(x) (seed 000): x itself flips with p = 1 too, so C(x′) = C(x) always."""
    src = with_p(SOURCES, [1.0] * 4)
    x_adv = src.clone()
    k = rejudge(coin(), x_adv, src, LABELS, Rules(n_chosen=4, untargeted_reference="prediction"), draws=4)
    assert k.tolist() == [0, 0, 0, 0]
    k = rejudge(coin(), x_adv, src, LABELS, Rules(n_chosen=4, untargeted_reference="label"), draws=4)
    assert k.tolist() == [4, 4, 4, 4]


class _Reject(Defense):
    def predict(self, x):
        return torch.full((x.shape[0],), REJECTED, dtype=torch.int64)


def test_rejected_is_never_a_success():
    base = ModelClassifier(PixelCodeModel(K), num_classes=K)
    k = rejudge(_Reject(base), SOURCES, SOURCES, LABELS, Rules(n_chosen=4), draws=3)
    assert k.tolist() == [0, 0, 0, 0]


def test_feeds_expected_advantage():
    p = np.array([0.9, 0.95, 1.0, 1.0])
    k = rejudge(coin(), with_p(SOURCES, p), SOURCES, LABELS, Rules(n_chosen=4), draws=200,
                keys=DerivedKeys(bytes(16), "adv"))
    est = expected_advantage(k, 200, 1.0)
    assert np.prod(p) in est and est.low < est.value < est.high <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(draws=0), "draws"),
    (dict(draws=2, targets=LABELS), "no targets"),
])
def test_raises(kwargs, match):
    with pytest.raises(InvalidParameter, match=match):
        rejudge(coin(), SOURCES, SOURCES, LABELS, Rules(n_chosen=4), **kwargs)


def test_raises_on_mismatch():
    with pytest.raises(InvalidParameter, match="source images"):
        rejudge(coin(), SOURCES, SOURCES[:2], LABELS, Rules(n_chosen=4), draws=1)
    with pytest.raises(InvalidParameter, match="labels"):
        rejudge(coin(), SOURCES, SOURCES, LABELS[:2], Rules(n_chosen=4), draws=1)
    with pytest.raises(InvalidParameter, match="targets"):
        rejudge(coin(), SOURCES, SOURCES, LABELS, Rules(n_chosen=4, goal="targeted"), draws=1)
    with pytest.raises(InvalidParameter, match="Rules"):
        rejudge(coin(), SOURCES, SOURCES, LABELS, {"goal": "untargeted"}, draws=1)
