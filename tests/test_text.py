"""evcsa._text: counted nouns and "did you mean" hints for messages."""

from __future__ import annotations

from evcsa._text import counted, did_you_mean


def test_counted_nouns():
    assert counted(1, "game") == "1 game"
    assert counted(0, "game") == "0 games"
    assert counted(4, "game") == "4 games"
    assert counted(1, "adversary", "adversaries") == "1 adversary"
    assert counted(3, "adversary", "adversaries") == "3 adversaries"


def test_did_you_mean():
    assert did_you_mean("n_chosn", ["n_chosen", "epsilon", "norm"]) == "; did you mean 'n_chosen'?"
    assert did_you_mean("gmae", ["data", "game", "model"]) == "; did you mean 'game'?"
    assert did_you_mean("zzz", ["data", "game", "model"]) == ""
    assert did_you_mean("x", []) == ""
