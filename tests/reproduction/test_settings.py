"""The settings table (evcsa.reproduction.settings): it loads, ours agrees with the plans,
a malformed table is refused with a message naming the row, and the Markdown rendering
reads ours from the plan it is given."""

from __future__ import annotations

import attrs
import pytest

from evcsa.errors import DataError
from evcsa.reproduction.plans import PLANS, build_plan
from evcsa.reproduction.settings import (READERS, check_against_plan, format_settings, load_settings,
                                         ours_from_plan, settings_table)

ROW = '''
[[setting]]
plans = ["mix-n-squeeze"]
part = "Data"
setting = "samples"
seed = "100"
seed_where = "§ 5.1"
code = "100"
code_where = "main.py"
ours = "100"
read = "samples"
source = "the seed"
'''


def _table(row: str = ROW, schema: str = "schema = 1") -> str:
    return f"{schema}\n{row}"


@pytest.fixture(scope="module", params=sorted(PLANS))
def plan(request):
    return build_plan(request.param)


def test_the_table_loads_with_rows_for_every_plan() -> None:
    rows = settings_table()
    assert all(r.plans and r.setting and r.seed and r.code and r.ours and r.source for r in rows)
    for name in PLANS:
        assert sum(name in r.plans for r in rows) >= 15, name


def test_ours_agrees_with_the_default_plans(plan) -> None:
    disagree = [(r.setting, r.ours, value) for r, value in check_against_plan(plan)]
    assert disagree == []


def test_the_check_catches_a_claim_the_plan_does_not_hold(plan) -> None:
    rows = settings_table()
    first = next(r for r in rows if plan.name in r.plans and r.read == "samples")
    wrong = attrs.evolve(first, ours="7")
    assert check_against_plan(plan, (wrong,)) == [(wrong, "100")]


def test_ours_is_read_from_the_plan_not_typed() -> None:
    plan = build_plan("mix-n-squeeze", cw_schedule="reference", model="mnist")
    found = {r.setting: value for r, value in check_against_plan(plan)}
    assert found["C&W schedule (L2, L∞, L0)"] == "reference"
    assert found["C&W L∞ learning rate"] == "0.005"   # the reference schedule's Adam step
    assert found["model"] == "mnist"
    quick = build_plan("mix-n-squeeze", scale="quick")
    found = {r.setting: value for r, value in check_against_plan(quick)}
    assert found["samples |X_D| (attacked digits per attack)"] == "6"
    assert found["BIM steps"] == "3" and found["BIM step"] == "0.2"   # 2ε/steps at the quick scale's 3 steps
    assert found["APGD-EOT first step η⁽⁰⁾"] == "—"   # not set at the quick scale: the adversary's default


def test_the_table_covers_the_settings_the_issue_names() -> None:
    reads = {r.read for r in settings_table() if "mix-n-squeeze" in r.plans}
    needed = {"model", "model-accuracy", "samples", "runs:mix-n-squeeze-table2", "repetitions:table3",
              "legitimate-draws:mix-n-squeeze-table2", "epsilon:mix-n-squeeze-table3", "norm:mix-n-squeeze-table3",
              "attack:fgsm:epsilon", "attack:bim:epsilon", "attack:bim:step_size", "attack:bim:steps",
              "attack:cw_l2_next:confidence", "attack:cw_l2_next:max_iterations",
              "attack:cw_l2_next:binary_search_steps", "attack:cw_l2_next:learning_rate",
              "attack:cw_l2_next:initial_const", "attack:cw_l2_next:schedule", "attack:jsma_next:theta",
              "attack:jsma_next:gamma", "adversary:mix-n-squeeze-table3:BPDA+EOT:steps",
              "adversary:mix-n-squeeze-table3:BPDA+EOT:eot_samples", "adversary:mix-n-squeeze-table3:APGD-EOT:steps",
              "adversary:mix-n-squeeze-table3:APGD-EOT:eot_samples", "figures:mix-n-squeeze-figures-fgsm:deltas",
              "figures:mix-n-squeeze-figures-fgsm:n_values", "figures:mix-n-squeeze-figures-fgsm:draws"}
    assert needed - reads == set()
    deltas = {r.read.rsplit("=", 1)[-1] for r in settings_table() if r.read.endswith(("=bit-depth-1", "=median-2x2",
                                                                                        "=median-3x3"))}
    assert deltas == {"bit-depth-1", "median-2x2", "median-3x3"}


def test_a_well_formed_row_loads() -> None:
    (row,) = load_settings(_table())
    assert (row.plans, row.setting, row.read, row.differs) == (("mix-n-squeeze",), "samples", "samples", ())


@pytest.mark.parametrize(("change", "match"), [
    (("read = \"samples\"", "read = \"samples\"\ncolour = \"red\""), r"row 1 \('samples'\).*unknown \['colour'\]"),
    (("seed_where = \"§ 5.1\"\n", ""), r"got none for \['seed_where'\]"),
    (("plans = [\"mix-n-squeeze\"]", "plans = [\"mix-n-match\"]"), "expected plans as a non-empty list"),
    (("plans = [\"mix-n-squeeze\"]", "plans = []"), "expected plans as a non-empty list"),
    (("source = \"the seed\"", "source = \"the seed\"\ndiffers = [\"paper\"]"), "expected differs as a list of"),
    (("read = \"samples\"", "read = \"guess:it\""), "expected read to name a reader"),
    (("ours = \"100\"", "ours = 100"), "expected ours as a string, got int"),
    (("setting = \"samples\"", "setting = \" \""), "expected a non-empty setting"),
])
def test_a_malformed_row_is_refused_with_a_clear_message(change, match) -> None:
    old, new = change
    assert old in ROW
    with pytest.raises(DataError, match=match):
        load_settings(_table(ROW.replace(old, new)))


def test_a_malformed_table_is_refused() -> None:
    with pytest.raises(DataError, match="expected TOML"):
        load_settings("[[setting]\n")
    with pytest.raises(DataError, match="expected schema = 1, got 2"):
        load_settings(_table(schema="schema = 2"))
    with pytest.raises(DataError, match=r"expected \[\[setting\]\] rows"):
        load_settings("schema = 1\n")
    with pytest.raises(DataError, match="expected a table of fields"):
        load_settings("schema = 1\nsetting = [1]\n")


def test_a_reader_naming_nothing_in_the_plan_is_refused() -> None:
    (row,) = load_settings(_table())
    plan = build_plan("mix-n-squeeze")
    with pytest.raises(DataError, match="expected a configuration of plan 'mix-n-squeeze'"):
        ours_from_plan(attrs.evolve(row, read="runs:no-such-config"), plan)
    with pytest.raises(DataError, match="with the reader's arguments"):
        ours_from_plan(attrs.evolve(row, read="runs"), plan)
    with pytest.raises(DataError, match="expected a parameter of fgsm"):
        ours_from_plan(attrs.evolve(row, read="attack:fgsm:gamma"), plan)
    with pytest.raises(DataError, match="to run attack 'deepfool'"):
        ours_from_plan(attrs.evolve(row, read="attack:deepfool:overshoot"), plan)
    with pytest.raises(DataError, match="expected 'stepz' among the parameters of 'BPDA\\+EOT'"):
        ours_from_plan(attrs.evolve(row, read="adversary:mix-n-squeeze-table3:BPDA+EOT:stepz"), plan)
    with pytest.raises(DataError, match="expected an adversary labelled 'PGD'"):
        ours_from_plan(attrs.evolve(row, read="adversary:mix-n-squeeze-table3:PGD:steps"), plan)
    with pytest.raises(DataError, match="expected a median-9x9"):
        ours_from_plan(attrs.evolve(row, read="values:mix-n-squeeze-table2:median-9x9:delta"), plan)
    assert set(READERS) >= {"model", "samples", "attack", "adversary", "values", "figures"}


def test_the_markdown_table_has_one_line_per_row_and_reads_the_plan(plan) -> None:
    text = format_settings(plan)
    lines = text.splitlines()
    mine = [r for r in settings_table() if plan.name in r.plans]
    assert lines[0].startswith("| part | setting | seed (where) | cited code (where) | ours |")
    assert len(lines) == 2 + len(mine)
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    assert "≠ default plan" not in text
    assert any("≠ seed" in line for line in lines)


def test_a_plan_off_the_default_is_shown_in_bold_and_flagged() -> None:
    plan = build_plan("mix-n-squeeze", model="mnist")
    line = next(line for line in format_settings(plan).splitlines() if line.startswith("| Model | model |"))
    assert "**mnist** † (default plan: mnist-carlini-evademl)" in line and line.endswith("≠ default plan |")


def test_a_plan_without_rows_is_refused() -> None:
    (row,) = load_settings(_table())
    with pytest.raises(DataError, match="expected settings rows for plan 'randomized-squeezing'"):
        format_settings(build_plan("randomized-squeezing"), (row,))
