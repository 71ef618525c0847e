"""evcsa.reproduction.document.draw_figures on a small stored sweep (handmade rows in the
layout of figures.json, two attacks × two squeezers × two δ, four samples): it writes the
paper's Figures 5–7 of every attack beside evcsa's own views, and the page's section names
them; the accuracy bands follow the stored per-sample counts."""

from __future__ import annotations

import numpy as np
import pytest

from evcsa.errors import DataError
from evcsa.reproduction import build_plan
from evcsa.reproduction.document import PAPER_FIGURES, _paper_figure_lines, draw_figures, swept_attacks, sweep_points
from evcsa.reproduction.run import PartResult, ReproductionResult

ATTACKS = ("fgsm", "cw_linf_next")
SQUEEZERS = ("bit-depth-1", "median-3x3")


def _stored(*, counts: bool) -> ReproductionResult:
    """A result whose figures part holds the rows a run stores (p̂ from a fixed generator;
    1 draw at δ = 0, 5 at δ = 0.5); ``sample_correct``/``sample_draws`` only when ``counts``."""
    rng = np.random.default_rng(11)
    rows = []
    for attack in ATTACKS:
        for squeezer in SQUEEZERS:
            for delta in (0.0, 0.5):
                draws = 1 if delta == 0 else 5
                successes = rng.integers(0, draws + 1, size=4)
                correct = draws - successes
                top = np.sort(successes / draws)[::-1]
                row = {"attack": attack, "squeezer": squeezer, "delta": delta,
                       "legitimate_accuracy": {"successes": 95, "trials": 100},
                       "adversarial_accuracy": {"successes": int(correct.sum()), "trials": 4 * draws},
                       "p_hat": [float(v) for v in successes / draws],
                       "advantage_exact": {str(n): float(top[:n].prod()) for n in (1, 2, 4)}}
                if counts:
                    row.update(sample_correct=[int(c) for c in correct], sample_draws=draws)
                rows.append(row)
    plan = build_plan("mix-n-squeeze", scale="quick", data="digits")
    return ReproductionResult(plan=plan, parts=(PartResult(id="figures", title="", comparisons=(), data=rows),),
                              seconds=0.0)


def test_draw_figures_writes_the_papers_figures_of_every_attack_and_evcsas_views(tmp_path) -> None:
    result = _stored(counts=False)
    assert swept_attacks(result) == ATTACKS
    paths = draw_figures(result, tmp_path / "figures", dpi=40)
    names = [p.name for p in paths]
    assert names == ["reproduce_fig5.png", "reproduce_fig6_bit-depth-1.png", "reproduce_fig6_median-3x3.png",
                     "reproduce_fig7.png", "reproduce_accuracy_vs_delta.png", "reproduce_advantage_vs_n.png",
                     "reproduce_error_heatmap.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
    # the page's block names each figure it writes, and says there are no bands
    block = "\n".join(_paper_figure_lines(result))
    assert all(f"(figures/{name})" in block for name in names[:4])
    assert "for each of the 2 attacks (FGSM, C&W L∞ next)" in block and "no bands" in block
    assert PAPER_FIGURES[1].format(squeezer="median-3x3") in names


def test_the_bands_follow_the_stored_per_sample_counts(tmp_path) -> None:
    result = _stored(counts=True)
    points = sweep_points(result, "fgsm")
    assert all(p.sample_correct is not None and p.sample_draws in (1, 5) for p in points)
    assert "bands: the 95 % interval of the adversarial accuracy over the samples" in "\n".join(
        _paper_figure_lines(result))
    assert all(p.sample_correct is None for p in sweep_points(_stored(counts=False), "fgsm"))
    with pytest.raises(DataError, match="expected a stored sweep of 'cw_l2_next'"):
        draw_figures(result, tmp_path, attack="cw_l2_next")
