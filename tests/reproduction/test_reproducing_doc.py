"""docs/reproducing.md shows the committed full runs: each generated section is exactly what
evcsa.reproduction.document makes from docs/results/<plan>/, and the figures it shows exist.
Regenerate with scripts/update_reproducing_doc.py [--plan PLAN] [RUN_DIR]."""

from __future__ import annotations

import pathlib

import pytest

from evcsa.errors import DataError
from evcsa.reproduction import load_result
from evcsa.reproduction.document import BEGIN, END, RESULTS, generated_section, markers, replace_section

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "reproducing.md"
#: plan → (its parts, the repetitions of Table 3 or None)
EXPECTED = {"mix-n-squeeze": (["table1", "table2", "table3", "figures"], 20),
            "randomized-squeezing": (["graybox", "whitebox"], None)}


@pytest.fixture(scope="module", params=sorted(RESULTS))
def committed(request):
    return request.param, load_result(ROOT / RESULTS[request.param])


def test_every_plan_has_a_committed_run() -> None:
    assert set(EXPECTED) == set(RESULTS)


def test_the_page_is_generated_from_the_committed_results(committed) -> None:
    plan, result = committed
    begin, end = markers(plan)
    page = PAGE.read_text(encoding="utf-8")
    assert page.count(begin) == 1 and page.count(end) == 1
    section = page[page.index(begin):page.index(end) + len(end)]
    assert section == generated_section(result), f"run scripts/update_reproducing_doc.py --plan {plan}"


def test_the_committed_run_is_the_full_one_on_mnist(committed) -> None:
    plan, result = committed
    parts, repetitions = EXPECTED[plan]
    assert result.plan.name == plan and result.plan.scale.name == "full" and result.plan.data == "mnist"
    assert [p.id for p in result.parts] == parts
    env = result.environment
    assert env["workers"] >= 1 and env["commit"] and result.seconds > 0
    if repetitions is not None:
        t3 = next(p for p in result.parts if p.id == "table3").data
        assert all(len(cols["adversarial BPDA+EOT"]) == repetitions for cols in t3.values())


def test_the_figures_the_page_shows_exist() -> None:
    page = PAGE.read_text(encoding="utf-8")
    shown = [line.split("(", 1)[1].rstrip(")") for line in page.splitlines() if line.startswith("![")]
    assert len(shown) >= 3 and all((PAGE.parent / path).is_file() for path in shown)


def test_the_plans_markers_differ() -> None:
    assert markers("mix-n-squeeze") == (BEGIN, END)
    assert len({m for plan in RESULTS for m in markers(plan)}) == 2 * len(RESULTS)
    with pytest.raises(DataError, match="expected a plan in"):
        markers("no-such-plan")


def test_replace_section_needs_the_markers() -> None:
    assert replace_section(f"a\n{BEGIN}\nold\n{END}\nb", "new") == "a\nnew\nb"
    begin, end = markers("randomized-squeezing")
    assert replace_section(f"a\n{begin}\nold\n{end}\nb", "new", "randomized-squeezing") == "a\nnew\nb"
    with pytest.raises(DataError, match="markers"):
        replace_section("no markers here", "new")
    with pytest.raises(DataError, match="randomized-squeezing section's markers"):
        replace_section(f"a\n{BEGIN}\nold\n{END}\nb", "new", "randomized-squeezing")


def test_a_run_without_the_pages_parts_is_refused(committed) -> None:
    import attrs

    _, result = committed
    with pytest.raises(DataError, match="without"):
        generated_section(attrs.evolve(result, parts=result.parts[:1]))


def test_in_interval_counts_the_cells_and_sorts_the_outside_ones_by_difference() -> None:
    from evcsa.reproduction.compare import Comparison
    from evcsa.reproduction.document import in_interval
    from evcsa.reproduction.run import PartResult
    from evcsa.reproduction.values import PaperValue
    from evcsa.stats import IntervalEstimate

    def cell(label, value, low, high, paper):
        return Comparison(label=label, ours=IntervalEstimate(value, low, high, 0.05, "handmade"),
                                  paper=PaperValue(id=f"x/{label}", paper="mix-n-squeeze", source="Table 1", table="table1",
                                                   dataset="mnist", row=label, delta=0.0, column="c",
                                                   printed=f"{paper:g}", value=paper, spread=None, units="percent",
                                                   measures="accuracy"))

    part = PartResult(id="table1", title="T1", comparisons=(
        cell("a", 0.50, 0.40, 0.60, 55), cell("b", 0.50, 0.45, 0.55, 70), cell("c", 0.90, 0.85, 0.95, 80),
        Comparison(label="d", ours=None)))
    inside, total, outside = in_interval([part])
    assert (inside, total) == (1, 3)
    assert [c.label for c in outside] == ["b", "c"]   # 20 points, then 10


def test_the_page_shows_each_plans_settings_table(committed) -> None:
    from evcsa.reproduction.settings import format_settings

    plan, result = committed
    begin, end = markers(plan)
    page = PAGE.read_text(encoding="utf-8")
    section = page[page.index(begin):page.index(end)]
    table = format_settings(result.plan)
    assert table in section and table.count("\n") >= 16
