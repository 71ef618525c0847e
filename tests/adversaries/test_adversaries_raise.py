"""Every error path of the shipped adversaries: clear InvalidParameter messages."""

from __future__ import annotations

import pytest

from evcsa.adversaries import BPDAEOT, GrayboxTransfer, GreedyAStar
from evcsa.errors import InvalidParameter
from evcsa.games import EVCSA


@pytest.mark.parametrize("make,message", [
    (lambda: GrayboxTransfer(attack="cw_l3"), "expected an attack name in"),
    (lambda: GrayboxTransfer(attack=3), "expected an attack"),
    (lambda: GrayboxTransfer(params=[1]), "expected params as a mapping"),
    (lambda: GrayboxTransfer(attack="fgsm", params={"eps": 0.1}), r"parameters of fgsm .*got unknown \['eps'\]"),
    (lambda: GreedyAStar(attack="bim", params={"step": 0.1}), r"parameters of bim .*got unknown \['step'\]"),
    (lambda: GrayboxTransfer(targeting="farthest"), "expected targeting in .* or None"),
    (lambda: GrayboxTransfer(n_candidates=0), "expected n_candidates as an integer ≥ 1"),
    (lambda: GrayboxTransfer(source_order="sorted"), "expected source_order in"),
    (lambda: GrayboxTransfer(round_to_grid="yes"), "expected round_to_grid as true or false"),
    (lambda: GrayboxTransfer(batch_size=0), "expected batch_size as an integer ≥ 1"),
    (lambda: GreedyAStar(queries_per_candidate=0), "expected queries_per_candidate as an integer ≥ 1"),
    (lambda: GreedyAStar(rank_by="mean"), "expected rank_by in"),
    (lambda: GreedyAStar(alpha=1.0), r"expected alpha in \(0, 1\)"),
    (lambda: GreedyAStar(query_batch=0), "expected query_batch as an integer ≥ 1"),
    (lambda: BPDAEOT(epsilon=-0.1), "expected epsilon as a finite number > 0 or None"),
    (lambda: BPDAEOT(step_size=0.0), "expected step_size as a positive number or None"),
    (lambda: BPDAEOT(norm="l0"), "expected norm 'linf', 'l2' or None"),
    (lambda: BPDAEOT(targeting="untargeted"), r"expected targeting in \('next', 'least_likely'\)"),
    (lambda: BPDAEOT(selection="best"), "expected selection in"),
    (lambda: BPDAEOT(loss="mse"), "expected loss in"),
    (lambda: BPDAEOT(confidence=-1), "expected confidence ≥ 0"),
    (lambda: BPDAEOT(steps=0), "expected steps as an integer ≥ 1"),
    (lambda: BPDAEOT(eot_samples=0), "expected eot_samples as an integer ≥ 1"),
    (lambda: BPDAEOT(restarts=1.5), "expected restarts as an integer"),
    (lambda: BPDAEOT(random_start=1), "expected random_start as true or false"),
])
def test_bad_hyperparameters(make, message):
    with pytest.raises(InvalidParameter, match=message):
        make()


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        GrayboxTransfer("bim")  # type: ignore[misc]
    with pytest.raises(TypeError):
        BPDAEOT(0.3)  # type: ignore[misc]


def test_knowledge_requirements(digits):
    model, x, y = digits
    blackbox = EVCSA(model, x[:5], y[:5], n_chosen=3, epsilon=0.1, knowledge="blackbox")
    for adversary in (GrayboxTransfer(), GreedyAStar()):
        # refused up front by check_rules, before any crafting ...
        with pytest.raises(InvalidParameter, match=f"expected graybox knowledge for {type(adversary).__name__}, "
                                                    "got blackbox"):
            blackbox.play(adversary)
        with pytest.raises(InvalidParameter, match="expected graybox knowledge"):
            blackbox.repeat(adversary, runs=2)
        # ... and by prepare itself when called directly
        with pytest.raises(InvalidParameter, match="expected graybox or whitebox knowledge"):
            adversary.prepare(blackbox.knowledge(0))
    graybox = EVCSA(model, x[:5], y[:5], n_chosen=3, epsilon=0.1, knowledge="graybox")
    with pytest.raises(InvalidParameter, match="expected whitebox knowledge for BPDAEOT, got graybox"):
        graybox.play(BPDAEOT(steps=1))
    with pytest.raises(InvalidParameter, match="expected whitebox knowledge for GreedyAStar, got graybox"):
        graybox.play(GreedyAStar(attack=BPDAEOT(steps=1)))  # A* crafting with BPDA+EOT needs the twin too
    assert GreedyAStar(attack=BPDAEOT(steps=1)).knowledge_needed == "whitebox"
    assert (GrayboxTransfer().knowledge_needed, GreedyAStar().knowledge_needed) == ("graybox", "graybox")
    unbounded = EVCSA(model, x[:5], y[:5], n_chosen=3)
    with pytest.raises(InvalidParameter, match="expected a distortion bound"):
        unbounded.play(BPDAEOT(steps=1))
    l0 = EVCSA(model, x[:5], y[:5], n_chosen=3, epsilon=4, norm="l0")
    with pytest.raises(InvalidParameter, match="expected an L∞ or L2 game"):
        l0.play(BPDAEOT(steps=1))


def test_candidates_and_prepared_games(digits):
    model, x, y = digits
    game = EVCSA(model, x[:5], y[:5], n_chosen=3, epsilon=0.1, knowledge="graybox")
    with pytest.raises(InvalidParameter, match=r"expected at most \|X_D\| = 5 candidates"):
        game.play(GrayboxTransfer(n_candidates=6))
    prepared = GrayboxTransfer().prepare(game.knowledge(0))
    other = EVCSA(model, x[:7], y[:7], n_chosen=3, epsilon=0.1, knowledge="graybox")
    with pytest.raises(InvalidParameter, match="expected the game this adversary was prepared for"):
        other.play(prepared)
    report = game.play(GrayboxTransfer()).report
    with pytest.raises(InvalidParameter, match="expected success estimates in the report"):
        report.advantage(1.0)
