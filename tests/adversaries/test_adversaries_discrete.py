"""DiscreteSearch: search over the quantized images reachable within ε (bit depth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evcsa.adversaries import BPDAEOT, DiscreteSearch
from evcsa.adversaries.discrete import quantized_levels
from evcsa.defenses import BitDepth, FeatureSqueezing, MedianSmoothing, RandomizedSqueezing
from evcsa.distances import distance
from evcsa.errors import InvalidParameter
from evcsa.games import EVCSA, Rules
from evcsa.randomness import DerivedKeys


def test_one_bit_levels_reachable_at_eps_03():
    """1 bit at ε 0.3: the values in (0.2, 0.8] can take both levels (the ends move with
    the game's 1e-6 tolerance and float32 rounding), and the points reaching them are
    within ε and quantize as claimed."""
    v = torch.tensor([0.0, 0.199, 0.201, 0.5, 0.501, 0.799, 0.801, 1.0]).view(1, 1, 1, 8)
    q = BitDepth(1)
    natural, l_min, l_max, points = quantized_levels(v, 1, 0.3, q._squeeze)
    free = (l_max > l_min).flatten().tolist()
    assert free == [False, False, True, True, True, True, False, False]
    assert natural.flatten().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    for level in (0, 1):
        ok = (l_min <= level) & (level <= l_max)
        p = points[level][ok]
        assert bool((q._squeeze(points[level]) == level)[ok].all())
        assert float((p - v[ok]).abs().max()) <= 0.3 + 1e-6


def test_multi_bit_levels_are_a_contiguous_range():
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    natural, l_min, l_max, points = quantized_levels(x, 3, 0.1, BitDepth(3)._squeeze)
    assert bool((l_min <= natural).all() and (natural <= l_max).all())
    assert bool(((l_max - l_min) <= 2).all()), "ε 0.1 spans at most one level either side at 7 steps of 1/7"


def _game(model, x, y, defense, **rules):
    return EVCSA.from_rules(defense, x, y, Rules(n_chosen=min(10, len(x)), epsilon=0.3, norm="linf", **rules))


def test_discrete_search_never_worse_than_bpda_when_combined(digits):
    """Against 1-bit depth the union with BPDA+EOT fools at least the digits BPDA+EOT
    fools (here: strictly more on the tiny model's 40 digits), within ε."""
    model, x, y = digits
    defense = FeatureSqueezing(model, [BitDepth(1)])
    game = _game(model, x, y, defense)
    sources = np.arange(len(x))
    bpda = BPDAEOT(steps=10, eot_samples=1)
    base = bpda.craft(game.knowledge(0), sources).x_adv
    cand = DiscreteSearch(combine=bpda, steps=20, restarts=1).craft(game.knowledge(0), sources)
    assert float(distance(x, cand.x_adv, "linf").max()) <= 0.3 + 1e-6
    fooled_b = defense.predict(base).cpu() != y
    fooled_d = defense.predict(cand.x_adv).cpu() != y
    assert bool((fooled_d | ~fooled_b).all()), "every digit BPDA+EOT fools is fooled"
    assert int(fooled_d.sum()) > int(fooled_b.sum())


def test_discrete_search_through_a_chain_and_in_a_game(digits):
    """A chain bit depth → median 2×2: the median is differentiated through (BPDA); the
    game accepts every submission (within ε) and counts successes itself."""
    model, x, y = digits
    defense = FeatureSqueezing(model, [BitDepth(1), MedianSmoothing(2)])
    game = _game(model, x[:20], y[:20], defense)
    result = game.play(DiscreteSearch(steps=10, restarts=1), seed=0)
    assert result.submissions == 10 and all(s.within_epsilon for s in result.transcript)
    est = result.report.estimates
    assert est.mode == "offline" and result.successes == min(10, int(est.successes.sum()))


def test_discrete_search_refuses_what_it_cannot_search(digits):
    model, x, y = digits
    for defense, match in ((FeatureSqueezing(model, [MedianSmoothing(2)]), "start with a bit-depth"),
                           (RandomizedSqueezing(model, BitDepth(1), 0.2, DerivedKeys.from_seed(0)),
                            "FeatureSqueezing twin")):
        game = _game(model, x[:10], y[:10], defense)
        with pytest.raises(InvalidParameter, match=match):
            game.play(DiscreteSearch(steps=1), seed=0)
    with pytest.raises(InvalidParameter, match="L∞ game with an ε"):
        DiscreteSearch().check_rules(Rules(n_chosen=1, epsilon=None))
    with pytest.raises(InvalidParameter):
        DiscreteSearch(combine="bpda")
    with pytest.raises(InvalidParameter):
        DiscreteSearch(confidence=-1.0)
