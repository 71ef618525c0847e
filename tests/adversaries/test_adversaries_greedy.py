"""GreedyAStar (seed 002 § 4.3, Eq. 6): p̂ from Classify, top-N submission."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch

from evcsa.adversaries import BPDAEOT, Candidates, GrayboxTransfer, GreedyAStar, SuccessEstimates
from evcsa.adversaries._common import rank
from evcsa.attacks import GradientHealth
from evcsa.defenses import ModelClassifier
from evcsa.games import EVCSA, Rules
from evcsa.randomness import DerivedKeys
from evcsa.testing import CoinFlipClassifier, PixelCodeModel, coded_samples
from tests.attacks.tiny_models import NoisyBinarizer

M = 40
PROBS = torch.arange(M, dtype=torch.float32) / M  # candidate i succeeds with probability i / 40


class KnownOdds:
    """A crafter whose candidate for source i succeeds with probability PROBS[i] against
    CoinFlipClassifier (pixel (0, 1) holds the flip probability)."""

    def craft(self, knowledge, sources):
        idx = torch.as_tensor(sources)
        x = knowledge.samples[idx].clone()
        x[:, 0, 0, 1] = PROBS[idx]
        return Candidates(sources=np.asarray(sources), x_adv=x, targets=None,
                          failed=np.zeros(len(sources), dtype=bool), health=GradientHealth.clean(len(sources)))


def _coin_game(n_chosen=10, seed=11, **rules):
    labels = torch.arange(M) % 10
    clf = CoinFlipClassifier(ModelClassifier(PixelCodeModel(), num_classes=10), keys=DerivedKeys.from_seed(seed))
    fields = dict(knowledge="graybox")
    fields.update(rules)
    return EVCSA.from_rules(clf, coded_samples(labels), labels, Rules.seed_002(n_chosen, **fields))


def test_astar_estimates_contain_the_true_probabilities():
    """Each candidate's p̂ comes with an exact Clopper–Pearson interval at level 1 − 1e-4
    that holds its true success probability. False-failure probability ≤ 40 × 1e-4 = 0.004
    (deterministic: keys derived from a fixed seed)."""
    game = _coin_game()
    result = game.play(GreedyAStar(attack=KnownOdds(), queries_per_candidate=200, alpha=1e-4), seed=0)
    est = result.report.estimates
    assert isinstance(est, SuccessEstimates) and est.mode == "online"
    assert len(est) == M and np.all(est.draws == 200)
    p = PROBS.numpy()
    assert np.all((est.low <= p + 1e-12) & (p <= est.high + 1e-12))
    assert est.estimate(5).trials == 200 and est.estimate(5).value == pytest.approx(est.values[5])
    assert result.classify_queries == M * 200


def test_astar_submits_the_top_n_by_estimate_and_keeps_eq6():
    game = _coin_game(n_chosen=10)
    result = game.play(GreedyAStar(attack=KnownOdds(), queries_per_candidate=200), seed=0)
    rep = result.report
    p_hat = rep.estimates.values
    chosen = rep.submitted
    assert len(chosen) == 10 == result.submissions
    assert np.all(np.diff(p_hat[chosen]) <= 0), "best first"
    others = np.setdiff1d(np.arange(M), chosen)
    assert p_hat[chosen].min() >= p_hat[others].max()
    assert rep.advantage(1.0) == pytest.approx(float(np.prod(p_hat[chosen])))
    assert rep.log_advantage(1.0) == pytest.approx(float(np.sum(np.log(p_hat[chosen]))))
    assert 0.0 <= rep.advantage(0.5) <= 1.0


def test_greedy_selection_beats_submitting_the_first_candidates():
    """A* picks candidates with p ≈ 0.8–1 while the first 10 have p ≤ 0.225: over 30 games its
    mean success rate is far higher. With these p the means are ≈ 0.88 and ≈ 0.11; the
    test asks only for a gap of 0.5 (false-failure probability far below 1e-9)."""

    class FirstTen(GrayboxTransfer):
        def craft(self, knowledge, sources):
            return KnownOdds().craft(knowledge, sources)

    game = _coin_game(n_chosen=10)
    astar = game.repeat(GreedyAStar(attack=KnownOdds(), queries_per_candidate=50), runs=30, seed=1)
    first = game.repeat(FirstTen(), runs=30, seed=1)
    assert astar.mean - first.mean > 0.5


def test_rank_by_lower_bound_prefers_well_measured_candidates():
    """p̂ = 1 from one draw (interval [0.025, 1]) vs 190 of 200 (interval ≈ [0.91, 0.98]):
    the point estimate prefers the first, the lower bound the second."""
    est = SuccessEstimates.from_counts([1, 190], [1, 200], 0.05, "online")
    sources = np.array([0, 1])
    assert rank(est, sources, 1, "estimate", "source").tolist() == [0]
    assert rank(est, sources, 1, "lower_bound", "source").tolist() == [1]


def test_rank_keeps_one_candidate_per_source_under_source_freshness():
    est = SuccessEstimates.from_counts([9, 8, 7, 1], [10, 10, 10, 10], 0.05, "offline")
    sources = np.array([3, 3, 5, 6])
    assert rank(est, sources, 3, "estimate", "source").tolist() == [0, 2, 3]
    assert rank(est, sources, 3, "estimate", "sample").tolist() == [0, 1, 2]


def test_classify_budget_cuts_the_draws_instead_of_failing():
    game = _coin_game(n_chosen=5, classify_budget=M * 30 + 7)
    result = game.play(GreedyAStar(attack=KnownOdds(), queries_per_candidate=200), seed=0)
    assert result.classify_queries == M * 30
    assert np.all(result.report.estimates.draws == 30)
    assert any("budget allowed 30 of 200" in n for n in result.report.notes)
    none = _coin_game(n_chosen=5, classify_budget=10).play(GreedyAStar(attack=KnownOdds()), seed=0)
    assert none.classify_queries == 0 and none.submissions == 5
    assert np.all(none.report.estimates.draws == 0)


def test_prediction_reference_classifies_the_natural_sample_each_draw():
    """Seed 000's untargeted success is C(x′) ≠ C(x) on fresh randomness: A* estimates it
    with one fresh C(x) per draw, 2 queries per draw."""
    labels = torch.arange(M) % 10
    clf = CoinFlipClassifier(ModelClassifier(PixelCodeModel(), num_classes=10), keys=DerivedKeys.from_seed(2))
    game = EVCSA.from_rules(clf, coded_samples(labels), labels,
                            Rules.seed_000(5, None, knowledge="graybox", freshness="sample"))
    result = game.play(GreedyAStar(attack=KnownOdds(), queries_per_candidate=20), seed=0)
    assert result.classify_queries == 2 * M * 20


def test_astar_with_bpda_eot_candidates(digits):
    """A* composes with any crafter: here BPDA+EOT through the whitebox twin."""
    model, x, y = digits
    defended = NoisyBinarizer(model, 0.2, DerivedKeys.from_seed(4))
    game = EVCSA(defended, x[:12], y[:12], n_chosen=4, epsilon=0.3)
    adv = GreedyAStar(attack=BPDAEOT(steps=5, eot_samples=2), queries_per_candidate=10)
    result = game.play(adv, seed=0)
    assert result.submissions == 4 and result.classify_queries == 12 * 10
    assert len(result.report.estimates) == 12 and not result.report.gradient_flagged


def test_default_attack_is_graybox_bim_on_every_sample(digits):
    model, x, y = digits
    game = EVCSA(model, x[:15], y[:15], n_chosen=5, epsilon=0.3, knowledge="graybox")
    result = game.play(GreedyAStar(queries_per_candidate=3), seed=0)
    assert len(result.report.sources) == 15 and result.successes == 5
    assert math.isclose(result.report.advantage(1.0), 1.0)


# -- adaptive sampling (issue 12) ---------------------------------------------------------
class TwoLevels(KnownOdds):
    """Candidates 0..9 always succeed, 10..39 with probability 0.2."""

    def craft(self, knowledge, sources):
        c = super().craft(knowledge, sources)
        x = c.x_adv.clone()
        x[:, 0, 0, 1] = torch.where(torch.as_tensor(sources) < 10, 1.0, 0.2)
        return attrs.evolve(c, x_adv=x)


def test_adaptive_decides_a_clear_top_n_with_few_queries():
    """Ten sure candidates among 30 at p = 0.2: the bounds decide every one (inside or
    outside), the ten are submitted, for a fraction of the fixed mode's 40 × 200 queries.
    The decisions err with probability ≤ stop_alpha = 0.05 (Bonferroni over candidates and
    rounds); deterministic with the derived keys."""
    game = _coin_game(n_chosen=10)
    result = game.play(GreedyAStar(attack=TwoLevels(), sampling="adaptive"), seed=0)
    rep = result.report
    assert sorted(rep.submitted.tolist()) == list(range(10))
    assert result.classify_queries < 40 * 200 / 4
    draws = rep.estimates.draws
    assert np.all(draws >= 10) and np.all(draws <= 200)
    assert draws[:10].min() > draws[10:].max(), "draws go to the candidates that decide the top N"
    assert any("10 candidates surely in, 30 surely out" in note for note in rep.notes)


def test_adaptive_draws_go_to_the_top_of_the_ranking():
    game = _coin_game(n_chosen=10)
    result = game.play(GreedyAStar(attack=KnownOdds(), sampling="adaptive", focus=0), seed=0)
    est = result.report.estimates
    assert np.all(est.draws[:20] == 10), "candidates with p ≤ 0.475 never enter the window after round 1"
    assert est.draws.max() == 200
    assert result.classify_queries == int(est.draws.sum())


def test_adaptive_keeps_to_its_budget_and_to_the_games():
    game = _coin_game(n_chosen=10)
    result = game.play(GreedyAStar(attack=KnownOdds(), sampling="adaptive", query_budget=700), seed=0)
    assert 400 <= result.classify_queries <= 700
    assert any("budget of 700" in note for note in result.report.notes)
    game = _coin_game(n_chosen=10, classify_budget=500)
    result = game.play(GreedyAStar(attack=KnownOdds(), sampling="adaptive"), seed=0)
    assert result.classify_queries <= 500 and result.submissions == 10
    assert any("Classify budget left 500" in note for note in result.report.notes)


def test_adaptive_counts_two_queries_per_draw_against_the_prediction():
    game = _coin_game(n_chosen=10, untargeted_reference="prediction")
    result = game.play(GreedyAStar(attack=KnownOdds(), sampling="adaptive", query_budget=1000), seed=0)
    assert result.classify_queries <= 1000
    assert result.classify_queries == 2 * int(result.report.estimates.draws.sum())


def test_adaptive_with_fewer_candidates_than_n_submits_them_all():
    game = _coin_game(n_chosen=10)
    result = game.play(GreedyAStar(attack=KnownOdds(), sampling="adaptive", n_candidates=8), seed=0)
    assert result.submissions == 8 and np.all(result.report.estimates.draws == 10)


def test_adaptive_selection_breaks_ties_by_draws():
    from evcsa.adversaries.greedy import select_adaptive

    est = SuccessEstimates.from_counts([10, 200, 10, 190], [10, 200, 10, 200], 0.05, "online")
    assert select_adaptive(est, np.arange(4), 3, "estimate", "sample").tolist() == [1, 0, 2]


@pytest.mark.parametrize("field, value", [("sampling", "lucb"), ("round_draws", 0), ("query_budget", 0),
                                          ("focus", -1), ("stop_alpha", 1.0)])
def test_adaptive_parameters_are_checked(field, value):
    from evcsa.errors import InvalidParameter

    with pytest.raises(InvalidParameter):
        GreedyAStar(**{field: value})
