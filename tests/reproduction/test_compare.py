"""The comparison table: ours with its interval, the paper's, the difference, inside."""

from __future__ import annotations

import pytest

from evcsa.errors import InvalidParameter
from evcsa.reproduction import Comparison, compare, format_comparisons, paper_value
from evcsa.stats import BinomialEstimate


def test_difference_and_inside_in_the_papers_units() -> None:
    ours = BinomialEstimate.from_counts(90, 100)          # 0.90 [0.824, 0.951]
    row = compare("bit-depth-1 × FGSM", ours, "table1/mnist/bit-depth-1@0/fgsm")  # paper: 92
    assert row.difference == pytest.approx(0.90 - 0.92)
    assert row.inside is True
    far = compare("x", BinomialEstimate.from_counts(50, 100), "table1/mnist/bit-depth-1@0/fgsm")
    assert far.inside is False and far.difference == pytest.approx(-0.42)


def test_rounding_of_the_printed_value_counts() -> None:
    """Paper '0' (a whole percent, i.e. [0, 0.5) %) meets an interval whose low end is 0.4 %."""
    ours = BinomialEstimate(successes=1, trials=100, alpha=0.05, value=0.01, low=0.004, high=0.05)
    assert compare("x", ours, "table1/mnist/none@0/cw_linf_next").inside is True


def test_missing_sides_print_dashes() -> None:
    text = format_comparisons([Comparison(label="not run", paper=paper_value("table1/mnist/none@0/bim")),
                               Comparison(label="no paper value", ours=BinomialEstimate.from_counts(3, 4),
                                          units="percent"),
                               compare("omitted by the seed", BinomialEstimate.from_counts(1, 2),
                                       "table1/mnist/none@0/deepfool")])
    lines = text.splitlines()
    assert lines[2].split() == ["not", "run", "—", "9", "—", "—"]
    assert lines[3].split() == ["no", "paper", "value", "75.0", "[19.4,", "99.4]", "—", "—", "—"]
    assert lines[4].split() == ["omitted", "by", "the", "seed", "50.0", "[1.3,", "98.7]", "-", "—", "—"]


def test_table_layout_and_markdown() -> None:
    rows = [compare("median-2x2 δ=0.5 adversarial", BinomialEstimate.from_counts(1400, 2000),
                    "table3/mnist/median-2x2@0.5/adversarial", spread=0.0448, note="20 repetitions"),
            compare("Adv(25, 1) δ=0.5", 0.12, "stated/fig6-cwinf-median2x2-delta0.5")]
    text = format_comparisons(rows, title="T")
    lines = text.splitlines()
    assert lines[0] == "T" and "ours [95 % CI]" in lines[1] and set(lines[2]) <= {"-", " "}
    assert "70.0 [" in lines[3] and "± 4.5" in lines[3] and "70.20±4.48" in lines[3] and "-0.2" in lines[3]
    assert "yes" in lines[3] and lines[3].endswith("20 repetitions")
    assert "0.120 (no interval)" in lines[4] and "+0.020" in lines[4]
    md = format_comparisons(rows, title="T", markdown=True).splitlines()
    assert md[0] == "**T**" and md[2].startswith("| ") and md[3].startswith("|:--") and len(md) == 6


def test_bad_estimates_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="value, low and high"):
        Comparison(label="x", ours="0.5")
    with pytest.raises(InvalidParameter, match="low ≤ value ≤ high"):
        Comparison(label="x", ours=BinomialEstimate(successes=1, trials=2, alpha=0.05, value=0.5, low=0.6,
                                                    high=0.9))
    with pytest.raises(InvalidParameter):
        Comparison(label="x", ours=1.5)
