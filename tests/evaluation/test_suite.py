"""The suite is chosen from what the defense declares and holds: EOT only where randomized,
BPDA where not differentiable (stated), DiscreteSearch where quantizing, graybox transfer
and A* always; no whitebox adversary without a surrogate or at graybox knowledge."""

from __future__ import annotations

import pytest

from evcsa.defenses import (BitDepth, CroppingRescaling, FeatureSqueezing, MedianSmoothing, ModelClassifier,
                            RandomizedSqueezing, RegionBasedClassification)
from evcsa.errors import InvalidParameter
from evcsa.evaluation import QUICK, STANDARD, choose_suite, describe_defense
from evcsa.evaluation.suite import probe_gradients
from evcsa.games import Rules
from evcsa.randomness import DerivedKeys
from tests.evaluation.planted import GradientMasking, SaturatedLogits

RULES = Rules(n_chosen=10, epsilon=0.3)


def _suite(defense, x, y, rules=RULES, budget=QUICK):
    traits = describe_defense(defense, x[:8], y[:8])
    return traits, choose_suite(traits, rules, budget, n_samples=len(x), image_shape=tuple(x.shape[1:]))


def _labels(suite):
    return [m.label for m in suite.members]


def test_a_deterministic_squeezer_gets_bpda_without_eot(digits_xy):
    model, x, y = digits_xy
    traits, suite = _suite(FeatureSqueezing(model, [MedianSmoothing(2)]), x, y)
    assert not traits.randomized and traits.gradients.status == "ok" and not traits.quantizing
    assert "BPDA: the squeezer (median-2x2)" in traits.approximation and "identity in the backward" in \
        traits.approximation
    assert _labels(suite) == ["graybox PGD", "A* PGD", "BPDA+EOT"]
    bpda = suite.member("BPDA+EOT").adversary
    assert (bpda.eot_samples, bpda.estimate_draws) == (1, 1)  # no EOT where there is no randomness
    assert suite.member("A* PGD").adversary.queries_per_candidate == 1
    assert any("deterministic defense: no EOT" in n for n in suite.notes)


def test_a_randomized_defense_gets_eot_and_adaptive_a_star(digits_xy):
    model, x, y = digits_xy
    defense = RandomizedSqueezing(model, "median-2x2", 0.5, DerivedKeys.from_seed(1))
    traits, suite = _suite(defense, x, y, budget=STANDARD)
    assert traits.randomized and "noise addition and clip are differentiated exactly" in traits.approximation
    assert _labels(suite) == ["graybox PGD", "graybox APGD-DLR", "graybox APGD-CE", "A* PGD", "BPDA+EOT",
                              "APGD-DLR+EOT"]
    assert suite.member("BPDA+EOT").adversary.eot_samples == STANDARD.eot_draws
    assert suite.member("APGD-DLR+EOT").adversary.method == "apgd"
    astar = suite.member("A* PGD").adversary
    assert (astar.sampling, astar.query_budget) == ("adaptive", STANDARD.astar_budget)
    assert [m.label for m in suite.ensemble_order][0] == "BPDA+EOT"  # ties go to the one that knows more


def test_a_quantizer_gets_discrete_search_where_it_can_search_it(digits_xy):
    model, x, y = digits_xy
    traits, suite = _suite(FeatureSqueezing(model, [BitDepth(1)]), x, y)
    assert traits.quantizing and traits.discrete and "DiscreteSearch" in _labels(suite)
    traits, suite = _suite(RandomizedSqueezing(model, "bit-depth-1", 0.2, DerivedKeys.from_seed(1)), x, y)
    assert traits.quantizing and not traits.discrete and "DiscreteSearch" not in _labels(suite)
    assert any("quantizing, but DiscreteSearch cannot search it (expected a FeatureSqueezing twin" in n
               for n in suite.notes)


@pytest.mark.parametrize("make", [
    lambda m: CroppingRescaling(m, 6, 4, DerivedKeys.from_seed(2)),
    lambda m: RegionBasedClassification(m, 0.1, 8, DerivedKeys.from_seed(2)),
])
def test_the_approximation_names_the_randomized_step(digits_xy, make):
    model, x, y = digits_xy
    traits, suite = _suite(make(model), x, y)
    assert traits.randomized and traits.gradients.status == "ok" and "log of the mean softmax" in traits.approximation
    assert "BPDA+EOT" in _labels(suite)


class PredictOnly:
    """A user's defense with predict and nothing else (no surrogate)."""

    randomized = False

    def __init__(self, model):
        self.model, self.num_classes, self.device = model, model.num_classes, model.device

    def predict(self, x):
        return self.model.predict(x)


def test_no_surrogate_no_whitebox_attack_and_it_says_so(digits_xy):
    model, x, y = digits_xy
    traits, suite = _suite(PredictOnly(model), x, y)
    assert traits.gradients.status == "none" and not traits.gradients.differentiable
    assert _labels(suite) == ["graybox PGD", "A* PGD"]
    assert any("no whitebox gradient attack: no surrogate_logits method" in n for n in suite.notes)
    assert traits.approximation.startswith("none: the defense offers no differentiable surrogate")


def test_masked_and_saturated_gradients_are_probed(digits_xy):
    model, x, y = digits_xy
    assert probe_gradients(GradientMasking(model), x[:4], y[:4]).status == "zero"
    assert probe_gradients(SaturatedLogits(model), x[:4], y[:4]).status == "nonfinite"
    assert probe_gradients(model, x[:4], y[:4]).status == "ok"


def test_graybox_knowledge_and_other_norms(digits_xy):
    model, x, y = digits_xy
    _, suite = _suite(model, x, y, rules=Rules(n_chosen=5, epsilon=0.3, knowledge="graybox"))
    assert _labels(suite) == ["graybox PGD", "A* PGD"] and "graybox knowledge: no whitebox adversary" in suite.notes[0]
    _, suite = _suite(model, x, y, rules=Rules(n_chosen=5, epsilon=1.5, norm="l2"))
    assert suite.member("graybox APGD-CE").adversary.params["norm"] == "l2" and "BPDA+EOT" in _labels(suite)
    _, suite = _suite(model, x, y, rules=Rules(n_chosen=5, epsilon=6, norm="l0"))
    assert _labels(suite) == ["graybox JSMA", "A* JSMA"]
    with pytest.raises(InvalidParameter, match=r"expected graybox or whitebox knowledge for an evaluation .*got "
                                               r"blackbox"):
        _suite(model, x, y, rules=Rules(n_chosen=5, epsilon=0.3, knowledge="blackbox"))


def test_a_model_alone_is_a_defense_too(digits_xy):
    model, x, y = digits_xy
    traits, suite = _suite(ModelClassifier(model.module), x, y)
    assert traits.squeezers == () and "own surrogate_logits" in traits.approximation
