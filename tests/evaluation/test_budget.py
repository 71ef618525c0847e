"""Budgets: the two presets, a user's own over a base (mapping or TOML file), and the errors."""

from __future__ import annotations

import pytest

from evcsa.errors import ConfigError, InvalidParameter
from evcsa.evaluation import QUICK, STANDARD, Budget, resolve_budget


def test_the_presets_state_the_seeds_settings():
    assert resolve_budget("standard") is STANDARD
    assert resolve_budget("quick") is QUICK
    # the demo's (seed 002 at the demo's precision): 100 samples, 100 games, A* ≤ 200 draws and 5,000 per
    # game, BPDA+EOT 40 steps × 10 draws ranked by 100 twin draws
    assert (STANDARD.samples, STANDARD.runs, STANDARD.astar_queries, STANDARD.astar_budget) == (100, 100, 200, 5000)
    assert (STANDARD.whitebox_steps, STANDARD.eot_draws, STANDARD.twin_draws) == (40, 10, 100)
    assert STANDARD.ensemble_queries == STANDARD.astar_budget
    assert QUICK.samples < STANDARD.samples and QUICK.runs < STANDARD.runs
    assert ("astar_budget", "5000") in STANDARD.rows() and ("legitimate_samples", "all") in STANDARD.rows()


def test_a_user_budget_is_a_table_over_a_base(tmp_path):
    mine = resolve_budget({"base": "quick", "runs": 7})
    assert (mine.name, mine.runs, mine.samples) == ("custom", 7, QUICK.samples)
    assert resolve_budget({"runs": 7}).whitebox_steps == STANDARD.whitebox_steps  # base: standard
    path = tmp_path / "b.toml"
    path.write_text('[budget]\nbase = "quick"\nname = "mine"\neot_draws = 2\n')
    assert resolve_budget(path) == Budget(**{**QUICK.to_dict(), "name": "mine", "eot_draws": 2})
    path.write_text("runs = 3\n")
    assert resolve_budget(str(path)).runs == 3


@pytest.mark.parametrize("value, message", [
    ({"runz": 3}, r"budget.runz: unknown budget field .*; did you mean 'runs'\?"),
    ({"base": "quik"}, r"budget.base: expected one of \('quick', 'standard'\), got 'quik'; did you mean 'quick'\?"),
    ({"runs": 0}, r"budget.runs: expected runs as an integer ≥ 1, got 0"),
    ({"whitebox_apgd": "yes"}, r"budget.whitebox_apgd: expected"),
    ("standrad", r"budget: expected 'quick', 'standard', .*got 'standrad'; did you mean 'standard'\?"),
    ("nowhere/budget.toml", r"nowhere/budget.toml: no such budget file"),
    (3, r"budget: expected 'quick', 'standard', a table"),
])
def test_bad_budgets_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        resolve_budget(value)


def test_a_budget_record_checks_its_fields():
    with pytest.raises(InvalidParameter, match=r"expected samples as an integer ≥ 1, got 0"):
        Budget(samples=0)
    with pytest.raises(InvalidParameter, match=r"expected ensemble_budget as an integer ≥ 1, got 0"):
        Budget(ensemble_budget=0)
