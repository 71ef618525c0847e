"""BPDAEOT: whitebox PGD through the defense twin with BPDA and EOT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evcsa.adversaries import BPDAEOT, GrayboxTransfer, eot_gradient
from evcsa.attacks._common import cross_entropy, input_gradient
from evcsa.defenses import (
    BitDepth,
    CroppingRescaling,
    FeatureSqueezing,
    MedianSmoothing,
    NonLocalMeans,
    RandomizedSqueezing,
    RegionBasedClassification,
)
from evcsa.distances import distance
from evcsa.games import EVCSA
from evcsa.randomness import DerivedKeys
from tests.attacks.tiny_models import NoisyBinarizer, Spy


def _defenses(model):
    keys = DerivedKeys.from_seed
    return {
        "bit_depth_1": FeatureSqueezing(model, [BitDepth(1)]),
        "median_2x2": FeatureSqueezing(model, [MedianSmoothing(2)]),
        "median_3x3": FeatureSqueezing(model, [MedianSmoothing(3)]),
        "nlm_11_3_4": FeatureSqueezing(model, [NonLocalMeans(11, 3, 4)]),
        "randomized_bit_depth": RandomizedSqueezing(model, BitDepth(1), 0.2, keys(1)),
        "randomized_median": RandomizedSqueezing(model, MedianSmoothing(2), 0.5, keys(2)),
        "cropping_rescaling": CroppingRescaling(model, 6, n_crops=5, keys=keys(3)),
        "region_based": RegionBasedClassification(model, 0.1, n_samples=50, keys=keys(4)),
    }


NAMES = list(_defenses(torch.nn.Linear(1, 1)).keys())


@pytest.mark.parametrize("name", NAMES)
def test_bpdaeot_works_against_every_defense(name, digits):
    """Gradients flow through every defense's twin (BPDA for squeezers, EOT over noise,
    crops and region samples); every submission lies within ε."""
    model, x, y = digits
    defense = _defenses(model)[name]
    game = EVCSA(defense, x[:10], y[:10], n_chosen=10, epsilon=0.1)
    result = game.play(BPDAEOT(steps=8, eot_samples=3), seed=0)
    assert result.submissions == 10
    assert all(s.within_epsilon for s in result.transcript)
    assert result.report.health.ok, result.report.health.summary()
    assert int(result.report.health.evaluations.min()) == 8
    assert result.successes >= 1


def test_bpda_beats_graybox_transfer_on_median_smoothing(digits):
    """Against 2×2 median smoothing the adaptive attack succeeds more often than graybox BIM
    samples (seed 002 Table 1 vs Table 3: adaptive attacks break deterministic squeezing)."""
    model, x, y = digits
    game = EVCSA(FeatureSqueezing(model, [MedianSmoothing(2)]), x, y, n_chosen=40, epsilon=0.1)
    adaptive = game.play(BPDAEOT(steps=30, restarts=2), seed=0)
    transfer = game.play(GrayboxTransfer(), seed=0)
    assert adaptive.successes > transfer.successes


def test_eot_is_a_mean_not_a_sum(digits):
    """On a deterministic classifier S draws average to the single gradient; on a
    randomized twin the EOT gradient is the mean of S single-draw gradients."""
    model, x, y = digits
    loss = lambda z: cross_entropy(z, y)  # noqa: E731
    one, _, _ = input_gradient(model, x, loss)
    mean, logits, _ = eot_gradient(model, x, loss, 5)
    assert logits.shape == (5, len(y), 10)
    assert torch.allclose(mean, one, atol=1e-6)
    twin_a = NoisyBinarizer(model, 0.3, DerivedKeys.from_seed(5))
    twin_b = NoisyBinarizer(model, 0.3, DerivedKeys.from_seed(5))
    eot, _, _ = eot_gradient(twin_a, x, loss, 4)
    manual = sum(input_gradient(twin_b, x, loss)[0] for _ in range(4)) / 4
    assert torch.allclose(eot, manual, atol=1e-6)


def test_eot_differentiates_a_deterministic_classifier_once_and_a_randomized_one_every_draw(digits):
    """From the declarations: the undefended model (randomized = False) takes one forward
    and backward pass for S = 5 draws, its gradient exactly the single draw's; a randomized
    twin (it holds a key source) takes all S."""
    model, x, y = digits
    loss = lambda z: cross_entropy(z, y)  # noqa: E731

    plain = Spy(model)
    mean, logits, _ = eot_gradient(plain, x, loss, 5)
    assert len(plain.queries) == 1 and logits.shape == (5, len(y), 10)
    assert torch.equal(mean, input_gradient(model, x, loss)[0])
    noisy = Spy(NoisyBinarizer(model, 0.3, DerivedKeys.from_seed(5)))  # it holds a key source: randomized
    eot_gradient(noisy, x, loss, 5)
    assert len(noisy.queries) == 5


def test_c05_background_pixels_get_gradient_through_noise_clip_and_squeeze(digits):
    """C05: pixels at exactly 0.0 or 1.0 still receive gradient through noise + clip +
    squeeze under BPDA (EOT over 20 draws of randomized 1-bit squeezing). A pixel would get
    none only if all 20 draws pushed it out of [0, 1]: probability 2⁻²⁰ per pixel
    (deterministic keys)."""
    model, x, y = digits
    binary = torch.round(x[:4])
    twin = RandomizedSqueezing(model, BitDepth(1), 0.2, DerivedKeys.from_seed(6))
    grad, _, _ = eot_gradient(twin, binary, lambda z: cross_entropy(z, y[:4]), 20)
    assert bool((grad != 0).all())


def test_c05_a_zero_gradient_defense_is_flagged_not_robust(digits):
    """C05: plain autograd through rounding gives zero gradients: BPDAEOT then fails to move,
    and its report flags that instead of letting the low success read as robustness."""
    model, x, y = digits
    defense = NoisyBinarizer(model, 0.0, bpda=False)
    result = EVCSA(defense, x[:6], y[:6], n_chosen=6, epsilon=0.3).play(BPDAEOT(steps=3, random_start=False),
                                                                        seed=0)
    assert result.report.gradient_flagged
    assert result.report.health.all_zero.all()
    assert any("gradient check" in n for n in result.report.notes)


def test_the_defense_keys_are_never_touched_while_crafting(digits):
    """Whitebox knowledge is a twin with the adversary's own keys: preparing BPDAEOT draws
    no key from the defense's key source; only the game's classifications do."""
    model, x, y = digits
    keys = DerivedKeys.from_seed(7)
    defense = RandomizedSqueezing(model, BitDepth(1), 0.2, keys)
    game = EVCSA(defense, x[:8], y[:8], n_chosen=8, epsilon=0.1)
    knowledge = game.knowledge(0)
    assert knowledge.defense is not defense
    before = keys.keys_issued
    BPDAEOT(steps=4, eot_samples=3).prepare(knowledge)
    assert keys.keys_issued == before
    assert knowledge.defense.keys.keys_issued > 0


def test_eot_samples_and_restarts_set_the_number_of_draws(digits):
    model, x, y = digits
    det = Spy(FeatureSqueezing(model, [MedianSmoothing(2)]))
    EVCSA(det, x[:5], y[:5], n_chosen=5, epsilon=0.1).knowledge(0)
    game = EVCSA(det, x[:5], y[:5], n_chosen=5, epsilon=0.1)
    k = game.knowledge(0)
    prepared = BPDAEOT(steps=6, eot_samples=7, restarts=2).prepare(k)
    # a deterministic twin needs one draw per step: 2 restarts × (6 steps + 1 final check)
    assert len(k.defense.queries) == 2 * (6 + 1)
    assert prepared.candidates.health.evaluations.tolist() == [12] * 5
    rnd = NoisyBinarizer(model, 0.2, DerivedKeys.from_seed(8))
    spy = Spy(rnd)
    k2 = EVCSA(spy, x[:5], y[:5], n_chosen=5, epsilon=0.1).knowledge(0)
    BPDAEOT(steps=3, eot_samples=4).prepare(k2)
    assert len(k2.defense.queries) == 3 * 4 + 4


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_submissions_respect_the_game_bound(norm, eps, digits):
    model, x, y = digits
    defense = NoisyBinarizer(model, 0.2, DerivedKeys.from_seed(9))
    game = EVCSA(defense, x[:10], y[:10], n_chosen=10, epsilon=eps, norm=norm)
    prepared = BPDAEOT(steps=10, eot_samples=2, round_to_grid=(norm == "linf")).prepare(game.knowledge(0))
    d = distance(x[:10], prepared.candidates.x_adv, norm)
    assert float(d.max()) <= eps + 1e-6
    result = game.play(BPDAEOT(steps=10, eot_samples=2), seed=0)
    assert all(s.within_epsilon for s in result.transcript) and result.successes >= 1


def test_a_larger_epsilon_than_the_game_is_cut_to_the_game(digits):
    model, x, y = digits
    game = EVCSA(model, x[:5], y[:5], n_chosen=5, epsilon=0.05)
    prepared = BPDAEOT(epsilon=0.3, steps=5).prepare(game.knowledge(0))
    assert float((prepared.candidates.x_adv - x[:5]).abs().max()) <= 0.05 + 1e-6


def test_offline_selection_uses_the_twin_not_the_oracle(digits):
    model, x, y = digits
    defense = NoisyBinarizer(model, 0.3, DerivedKeys.from_seed(10))
    game = EVCSA(defense, x[:16], y[:16], n_chosen=5, epsilon=0.1)
    adv = BPDAEOT(steps=6, eot_samples=2, selection="offline", estimate_draws=20)
    result = game.play(adv, seed=0)
    est = result.report.estimates
    assert result.classify_queries == 0 and est.mode == "offline" and len(est) == 16
    p = est.values
    chosen = result.report.submitted
    assert p[chosen].min() >= np.delete(p, chosen).max()


def test_online_selection_spends_classify_queries(digits):
    model, x, y = digits
    defense = NoisyBinarizer(model, 0.3, DerivedKeys.from_seed(11))
    game = EVCSA(defense, x[:12], y[:12], n_chosen=4, epsilon=0.1)
    result = game.play(BPDAEOT(steps=4, eot_samples=2, selection="online", estimate_draws=15), seed=0)
    assert result.classify_queries == 12 * 15
    assert result.report.estimates.mode == "online" and result.report.rank_by == "estimate"


def test_targeted_game_attacks_the_next_or_least_likely_class(digits):
    model, x, y = digits
    game = EVCSA(model, x[:8], y[:8], n_chosen=8, epsilon=0.3, goal="targeted")
    nxt = game.play(BPDAEOT(steps=20), seed=0)
    assert [s.target for s in nxt.transcript] == ((y[:8] + 1) % 10).tolist()
    assert nxt.successes >= 6
    ll = game.play(BPDAEOT(steps=20, targeting="least_likely"), seed=0)
    assert [s.target for s in ll.transcript] == model.logits(x[:8]).argmin(dim=1).tolist()


def test_randomness_comes_from_the_game_seed_only(digits):
    model, x, y = digits
    defense = NoisyBinarizer(model, 0.2, DerivedKeys.from_seed(12))
    game = EVCSA(defense, x[:6], y[:6], n_chosen=6, epsilon=0.1)
    state = torch.get_rng_state()
    a = BPDAEOT(steps=3, eot_samples=2).prepare(game.knowledge(3)).candidates.x_adv
    b = BPDAEOT(steps=3, eot_samples=2).prepare(game.knowledge(3)).candidates.x_adv
    c = BPDAEOT(steps=3, eot_samples=2).prepare(game.knowledge(4)).candidates.x_adv
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_bpdaeot_with_apgd_through_a_randomized_twin(loss, digits):
    """method="apgd": APGD + BPDA + EOT through the twin (Croce & Hein 2020); every
    submission within ε, gradients healthy, one EOT mean per step plus the start."""
    model, x, y = digits
    defense = _defenses(model)["randomized_median"]
    game = EVCSA(defense, x[:10], y[:10], n_chosen=10, epsilon=0.1)
    result = game.play(BPDAEOT(method="apgd", loss=loss, steps=8, eot_samples=3), seed=0)
    assert result.submissions == 10 and all(s.within_epsilon for s in result.transcript)
    assert result.report.health.ok and int(result.report.health.evaluations.min()) == 9
    assert result.successes >= 1


def test_bpdaeot_apgd_refuses_the_cw_loss():
    from evcsa.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="'ce' or 'dlr'"):
        BPDAEOT(method="apgd", loss="cw")
    with pytest.raises(InvalidParameter):
        BPDAEOT(method="fgsm")
