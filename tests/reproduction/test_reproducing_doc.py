"""docs/reproducing.md shows the committed full run: its generated section is exactly what
evcsa.reproduction.document makes from docs/results/mix-n-squeeze/, and the figures it
shows exist. Regenerate both with scripts/update_reproducing_doc.py."""

from __future__ import annotations

import pathlib

import pytest

from evcsa.errors import DataError
from evcsa.reproduction import load_result
from evcsa.reproduction.document import BEGIN, END, generated_section, replace_section

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "reproducing.md"
COMMITTED = ROOT / "docs" / "results" / "mix-n-squeeze"


@pytest.fixture(scope="module")
def committed():
    return load_result(COMMITTED)


def test_the_page_is_generated_from_the_committed_results(committed) -> None:
    page = PAGE.read_text(encoding="utf-8")
    section = page[page.index(BEGIN):page.index(END) + len(END)]
    assert section == generated_section(committed), "run scripts/update_reproducing_doc.py"


def test_the_committed_run_is_the_full_one_on_mnist(committed) -> None:
    assert committed.plan.scale.name == "full" and committed.plan.data == "mnist"
    assert [p.id for p in committed.parts] == ["table1", "table2", "table3", "figures"]
    env = committed.environment
    assert env["workers"] >= 1 and env["commit"] and committed.seconds > 0
    t3 = next(p for p in committed.parts if p.id == "table3").data
    assert all(len(cols["adversarial BPDA+EOT"]) == 20 for cols in t3.values())  # 20 repetitions


def test_the_figures_the_page_shows_exist() -> None:
    page = PAGE.read_text(encoding="utf-8")
    shown = [line.split("(", 1)[1].rstrip(")") for line in page.splitlines() if line.startswith("![")]
    assert len(shown) >= 3 and all((PAGE.parent / path).is_file() for path in shown)


def test_replace_section_needs_the_markers() -> None:
    assert replace_section(f"a\n{BEGIN}\nold\n{END}\nb", "new") == "a\nnew\nb"
    with pytest.raises(DataError, match="markers"):
        replace_section("no markers here", "new")
