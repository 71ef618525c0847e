"""Every check of an evaluation fires on a planted faulty defense (tests/evaluation/planted.py)
and stays silent where nothing is wrong: on the shipped defenses (test_evaluate.py runs each
kind at the quick budget and asserts no warning) and on the synthetic numbers below."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from evcsa.attacks import GradientHealth
from evcsa.defenses import CroppingRescaling, RandomizedSqueezing, RegionBasedClassification
from evcsa.errors import EvaluationWarning, InvalidParameter
from evcsa.evaluation import CHECKS, CheckResult, evaluate
from evcsa.evaluation.checks import (check_convergence, check_gradients, check_transfer, check_twin_randomness,
                                     check_unbounded, paired_gain, summarize)
from evcsa.evaluation.suite import GradientProbe
from evcsa.randomness import DerivedKeys
from tests.evaluation import planted

#: a small budget: the planted faults are large, a few games tell them
TINY = {"base": "quick", "runs": 4, "samples": 40, "astar_budget": 200, "twin_draws": 10, "rejudge_draws": 10}
OK_PROBE = GradientProbe(status="ok", samples=8, zero=0, detail="finite, non-zero input gradients")


def _fired(ev):
    return {c.name for c in ev.warnings}


def _evaluate_warns(match, defense, **kwargs):
    """evaluate(defense, …), asserting an EvaluationWarning matching ``match`` was issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = evaluate(defense, data="digits", rules={"n_chosen": 5}, **kwargs)
    messages = [str(w.message) for w in caught if issubclass(w.category, EvaluationWarning)]
    assert any(re.search(match, m) for m in messages), messages
    assert len(messages) == len(ev.warnings)
    return ev


def test_a_gradient_masking_layer_fires_the_gradient_the_unbounded_and_the_transfer_checks(digits_model):
    ev = _evaluate_warns(r"gradient-health: probe: identically zero input gradients.*What to do: the whitebox "
                         r"numbers do not measure robustness", planted.GradientMasking(digits_model), budget=TINY)
    assert _fired(ev) == {"gradient-health", "unbounded-attack", "transfer-beats-whitebox"}
    assert ev.row("BPDA+EOT").advantage.value == 0.0 and ev.ensemble.advantage.value == 1.0
    assert ev.worst_case is ev.ensemble  # the ensemble still finds the transfer samples


def test_a_defense_that_breaks_bpda_fires_the_transfer_and_the_unbounded_checks(digits_model):
    ev = _evaluate_warns(r"transfer-beats-whitebox: graybox PGD succeeds \+1\.000 more often",
                         planted.WrongBPDA(digits_model), budget=TINY)
    assert _fired(ev) == {"unbounded-attack", "transfer-beats-whitebox"}  # its gradients look healthy
    unbounded = next(c for c in ev.checks if c.name == "unbounded-attack")
    assert unbounded.values["mean"] == 0.0 and unbounded.values["epsilon"] == 1.0


def test_an_attack_that_has_not_converged_fires_not_converged(digits_model):
    """NoisyGradient flips each draw's gradient with probability 0.4: at 2 EOT draws per step the
    attack gains +0.17 [+0.07, +0.26] (mean success per sample, 200 digits) when the draws double."""
    defense = planted.NoisyGradient(digits_model, DerivedKeys.from_seed(3))
    ev = _evaluate_warns(r"not-converged: BPDA\+EOT \(10 steps × 2 draws\).*still gains with 2× EOT draws", defense,
                         budget={**TINY, "runs": 2, "samples": 200, "eot_draws": 2, "astar_budget": 50, "twin_draws": 5})
    assert "not-converged" in _fired(ev)


@pytest.mark.parametrize("make, message", [
    (lambda m: planted.GlobalNoise(m, keys=DerivedKeys.from_seed(1)), "twins from two independent key sources drew "
                                                                     "identical outputs"),
    (lambda m: planted.FixedSeedNoise(m, keys=DerivedKeys.from_seed(1)), "twins from two independent key sources "
                                                                         "drew identical outputs"),
    (lambda m: planted.SelfTwin(m, keys=DerivedKeys.from_seed(1)), "the twin contract fails, so the game refuses "
                                                                   "whitebox knowledge"),
])
def test_a_twin_that_shares_the_games_randomness_fires_twin_randomness(digits_xy, make, message):
    model, x, _ = digits_xy
    result = check_twin_randomness(make(model), x[:4])
    assert result.fired and message in result.finding


@pytest.mark.parametrize("make", [
    lambda m: RandomizedSqueezing(m, "median-2x2", 0.5, DerivedKeys.from_seed(1)),
    lambda m: CroppingRescaling(m, 6, 4, DerivedKeys.from_seed(1)),
    lambda m: RegionBasedClassification(m, 0.1, 8, DerivedKeys.from_seed(1)),
    lambda m: planted.NoisyGradient(m, DerivedKeys.from_seed(1)),
])
def test_a_keyed_twin_passes_twin_randomness(digits_xy, make):
    model, x, _ = digits_xy
    result = check_twin_randomness(make(model), x[:4])
    assert result.status == "passed" and "independent keys draw different outputs" in result.finding
    assert check_twin_randomness(model, x[:4]).status == "skipped"


def test_a_twin_contract_failure_plays_the_games_at_graybox_knowledge(digits_model):
    ev = _evaluate_warns(r"twin-randomness: the twin contract fails",
                         planted.SelfTwin(digits_model, keys=DerivedKeys.from_seed(2)), budget=TINY)
    assert ev.rules.knowledge == "graybox" and [r.label for r in ev.rows] == ["ensemble", "graybox PGD", "A* PGD"]
    assert any("played at graybox knowledge" in n for n in ev.notes)
    assert {c.name: c.status for c in ev.checks}["unbounded-attack"] == "skipped"


def test_gradient_health_on_records():
    healthy = GradientHealth(evaluations=[3, 3], zero_evaluations=[0, 1], nonfinite_evaluations=[0, 0],
                             missing=[False, False])
    masked = GradientHealth(evaluations=[3, 3], zero_evaluations=[3, 3], nonfinite_evaluations=[0, 0],
                            missing=[False, False])
    assert check_gradients(OK_PROBE, {"BPDA+EOT": healthy}).status == "passed"
    fired = check_gradients(OK_PROBE, {"BPDA+EOT": masked})
    assert fired.fired and "BPDA+EOT: 2 of 2 samples flagged: 2 with only zero gradients" in fired.finding
    nan = GradientProbe(status="nonfinite", samples=4, zero=0, detail="NaN/inf entries")
    assert check_gradients(nan, {"BPDA+EOT": healthy}).fired
    none = GradientProbe(status="none", samples=4, zero=0, detail="no surrogate_logits method")
    assert check_gradients(none, {"graybox PGD": healthy}).status == "skipped"


def test_unbounded_transfer_and_convergence_on_numbers():
    assert check_unbounded(np.ones(20), label="PGD", epsilon=1.0).status == "passed"
    assert check_unbounded(np.r_[np.ones(15), np.zeros(5)], label="PGD", epsilon=1.0).fired  # 0.75 < 0.95
    assert check_unbounded(None, label="", reason="no whitebox attack").status == "skipped"
    white = {"BPDA+EOT": np.r_[np.ones(30), np.zeros(10)]}
    assert not check_transfer(white, {"graybox PGD": np.r_[np.ones(29), np.zeros(11)]}).fired
    beaten = check_transfer(white, {"graybox PGD": np.ones(40)})
    assert beaten.fired and "graybox PGD succeeds +0.250 more often per sample than BPDA+EOT" in beaten.finding
    assert check_transfer({}, {"graybox PGD": np.ones(4)}, reason="no surrogate").status == "skipped"
    base = np.r_[np.ones(20), np.zeros(20)]
    assert not check_convergence("BPDA+EOT", base, {"2× steps": base.copy()}).fired
    rising = check_convergence("BPDA+EOT", base, {"2× steps": np.r_[np.ones(30), np.zeros(10)]})
    assert rising.fired and "still gains with 2× steps" in rising.finding
    # a small, noisy gain is not enough: the margin and the interval must both say so
    assert not check_convergence("BPDA+EOT", base, {"2× steps": np.r_[np.ones(21), np.zeros(19)]}).fired


def test_paired_gain_and_the_records():
    g = paired_gain([0, 0, 1, 1], [1, 1, 1, 1])
    assert g.mean == 0.5 and g.low < 0.5 < g.high and g.samples == 4
    assert paired_gain([0.5], [1.0]).low == 0.5
    with pytest.raises(InvalidParameter, match=r"expected two equal-length non-empty arrays of probabilities, got 2 "
                                               r"and 3"):
        paired_gain([0, 1], [0, 1, 1])
    with pytest.raises(InvalidParameter, match=r"expected a check in .*got 'nope'"):
        CheckResult(name="nope", status="passed", finding="")
    with pytest.raises(InvalidParameter, match=r"expected status 'warning', 'passed' or 'skipped', got 'ok'"):
        CheckResult(name="not-converged", status="ok", finding="")
    results = [CheckResult(name=n, status="passed", finding="fine") for n in CHECKS]
    results[3] = CheckResult(name="not-converged", status="warning", finding="rising")
    assert summarize(results) == "5 checks: 4 passed, 1 warning (not-converged)"
    assert results[3].to_dict()["advice"].startswith("the attack had not converged")
    assert results[0].to_dict()["advice"] is None
