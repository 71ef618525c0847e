"""The papers' numbers as data: structure, internal consistency, spot values.

Spot values are the seed texts' numbers, cited by table, row and column (the seed files are
not in the repository, so the constants below are the citation)."""

from __future__ import annotations

import math

import pytest

from evcsa.errors import InvalidParameter
from evcsa.reproduction import PAPERS, paper_table, paper_value, paper_values
from evcsa.reproduction.plans import TABLE1_ATTACKS

COLUMNS = ("fgsm", "bim", "cw_linf_next", "cw_linf_ll", "deepfool", "cw_l2_next", "cw_l2_ll", "cw_l0_next",
           "cw_l0_ll", "jsma_next", "jsma_ll", "all_attacks", "legitimate")


def test_every_value_has_a_source_units_and_meaning() -> None:
    values = paper_values()
    assert len(values) > 300
    ids = [v.id for v in values]
    assert len(ids) == len(set(ids))
    for v in values:
        assert v.paper in PAPERS and v.source and v.units and v.measures and v.printed, v.id
        if v.table is None:
            assert v.quote, v.id


@pytest.mark.parametrize("table, rows", [("table1", 15), ("table2", 12)])
def test_tables_1_and_2_have_every_row_and_column(table: str, rows: int) -> None:
    meta = paper_table(table)
    assert meta.columns == COLUMNS and meta.units == "percent"
    values = paper_values(table=table)
    assert len(values) == rows * len(COLUMNS)
    assert {v.dataset for v in values} == {"mnist", "cifar10", "imagenet"}


@pytest.mark.parametrize("table", ["table1", "table2"])
def test_all_attacks_is_the_mean_of_the_printed_attacks(table: str) -> None:
    """Each row's 'All Attacks' is the mean of its evaluated attacks to the printed
    rounding (checks the transcription column by column)."""
    rows = {(v.dataset, v.row, v.delta) for v in paper_values(table=table)}
    for dataset, row, delta in rows:
        cells = {v.column: v for v in paper_values(table=table, dataset=dataset, row=row, delta=delta)}
        attacks = [cells[c].value for c in COLUMNS[:11] if cells[c].value is not None]
        assert math.isclose(sum(attacks) / len(attacks), cells["all_attacks"].value, abs_tol=0.006), (dataset, row)


def test_missing_cells_are_the_seed_omissions() -> None:
    missing = {(v.table, v.dataset, v.column) for v in paper_values() if v.table in ("table1", "table2")
               and v.value is None}
    assert missing == {(t, "mnist", "deepfool") for t in ("table1", "table2")} | {
        (t, "imagenet", c) for t in ("table1", "table2") for c in ("jsma_next", "jsma_ll")}
    assert paper_value("table1/mnist/none@0/deepfool").printed == "-"


@pytest.mark.parametrize("id, printed", [
    ("table1/mnist/none@0/fgsm", "54"),                      # Table 1, MNIST None, FGSM
    ("table1/mnist/bit-depth-1@0/cw_l2_ll", "66"),           # Table 1, MNIST Bit Depth 1-bit, CW2 LL
    ("table1/mnist/median-3x3@0/jsma_ll", "79"),             # Table 1, MNIST Median 3×3, JSMA LL
    ("table1/mnist/none@0/legitimate", "99.43"),             # Table 1, MNIST None, Legitimate
    ("table1/cifar10/nlm-11-3-4@0/deepfool", "76"),          # Table 1, CIFAR-10 NLM 11-3-4, DeepFool
    ("table1/imagenet/median-2x2@0/all_attacks", "68.11"),   # Table 1, ImageNet Median 2×2, All Attacks
    ("table2/mnist/bit-depth-1@0.2/cw_l0_ll", "0.42"),       # Table 2, MNIST Bit Depth (δ = 0.2), CW0 LL
    ("table2/mnist/median-2x2@0.5/all_attacks", "44.68"),    # Table 2, MNIST Median 2×2 (δ = 0.5)
    ("table2/mnist/median-3x3@0.5/legitimate", "97.99"),     # Table 2, MNIST Median 3×3 (δ = 0.5)
    ("table2/cifar10/bit-depth-4@0.05/fgsm", "30.70"),       # Table 2, CIFAR-10 4-bit (δ = 0.05)
    ("table2/imagenet/nlm-11-3-4@0.1/cw_l0_ll", "68.71"),    # Table 2, ImageNet NLM (δ = 0.1)
])
def test_spot_values(id: str, printed: str) -> None:
    v = paper_value(id)
    assert v.printed == printed and v.value == float(printed) and v.fraction == pytest.approx(float(printed) / 100)


def test_table3_means_spreads_and_brackets() -> None:
    """Table 3: 'Median Smoothing 2×2 (δ = 0.5) 96.35±1.42 (100) 70.20±4.48 (0.00)' and
    'Bit Depth 1-bit (δ = 0.2) 100±0 (100) 96.05±1.61 (1.00)'."""
    adv = paper_value("table3/mnist/median-2x2@0.5/adversarial")
    assert (adv.value, adv.spread) == (70.20, 4.48)
    assert paper_value("table3/mnist/median-2x2@0.5/non_adversarial").spread == 1.42
    assert paper_value("table3/mnist/median-2x2@0/adversarial").value == 0.0
    assert paper_value("table3/mnist/bit-depth-1@0/adversarial").printed == "(1.00)"
    assert paper_value("table3/mnist/bit-depth-1@0.2/non_adversarial").spread == 0.0
    assert paper_value("table3/mnist/median-3x3@0.5/adversarial").value == 73.75
    assert len(paper_values(table="table3")) == 12


def test_stated_figure6_values() -> None:
    """§ 4.3 on Figure 6: N = 25, median 2×2, targeted CW L∞: Adv 1 → 0.55, 0.1, 0.05 at
    δ = 0.2, 0.5, 0.8."""
    fig6 = sorted((v.delta, v.value) for v in paper_values(table="stated") if v.id.startswith("stated/fig6-"))
    assert fig6 == [(0.0, 1.0), (0.2, 0.55), (0.5, 0.1), (0.8, 0.05)]
    v = paper_value("stated/fig6-cwinf-median2x2-delta0.5")
    assert v.units == "probability" and v.fraction == 0.1 and v.context["n_chosen"] == 25


def test_seed000_holds_settings_only() -> None:
    values = paper_values(paper="randomized-squeezing")
    assert values and all(v.table is None for v in values)
    assert paper_value("stated/cropping-rescaling-crops").value == 30
    assert paper_value("stated/region-based-samples").value == 10_000


def test_filters_and_errors() -> None:
    assert {v.column for v in paper_values(table="table1", dataset="mnist", row="none")} == set(COLUMNS)
    assert set(TABLE1_ATTACKS) < set(COLUMNS)
    with pytest.raises(InvalidParameter, match="did you mean"):
        paper_value("table1/mnist/none@0/fgsn")
    with pytest.raises(InvalidParameter, match="expected paper"):
        paper_values(paper="mix")
    with pytest.raises(InvalidParameter, match="expected a table"):
        paper_table("table4")
