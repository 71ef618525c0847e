"""The parts (evcsa.reproduction.parts): the figures part at N = 25, the § 4.3 Figure 6
values printed beside ours, with the expected-advantage interval (on the digits, 25
samples, a cut-down C&W L∞)."""

from __future__ import annotations

import attrs

from evcsa.reproduction import build_plan, format_comparisons
from evcsa.reproduction.engine import PlanEngine
from evcsa.reproduction.parts import sweep_part
from evcsa.reproduction.plans import Part


def test_figure6_rows(digits_cache, tmp_path) -> None:
    plan = build_plan("mix-n-squeeze", scale="quick", data="digits")
    (base,) = [c for c in plan.part("figures").configs if c.figures.attack == "cw_linf_next"]
    config = attrs.evolve(base, data=attrs.evolve(base.data, samples=25), game=attrs.evolve(base.game, n_chosen=25),
                          figures=attrs.evolve(base.figures, deltas=(0.0, 0.2, 0.5, 0.8), n_values=(25,), draws=3))
    part = Part(id="figures", title="Figure 6", configs=(config,), run="sweep")
    engine = PlanEngine(tmp_path, executor=None, cache_dir=str(digits_cache), overwrite=False, log=lambda line: None)
    res = sweep_part(plan, part, engine=engine)
    assert len(res.lines) == 3 * 4  # 3 squeezers × 4 δ
    rows = res.comparisons
    assert [r.paper.printed for r in rows] == ["1", "0.55", "0.1", "0.05"]
    assert all(r.ours.low <= r.ours.value <= r.ours.high for r in rows)   # expected_advantage's interval
    assert all(r.scale == 1.0 and r.inside is not None for r in rows)
    text = format_comparisons(rows)
    assert "Fig. 6 cw_linf_next median-2x2 δ=0.5 Adv(25, 1)" in text and "0.1" in text
    assert {p["delta"] for p in res.data} == {0.0, 0.2, 0.5, 0.8} and all(len(p["p_hat"]) == 25 for p in res.data)
    for p in res.data:  # the per-sample counts add up to the pooled accuracy's
        assert len(p["sample_correct"]) == 25 and p["sample_draws"] == (3 if p["delta"] > 0 else 1)
        assert sum(p["sample_correct"]) == p["adversarial_accuracy"]["successes"]
        assert 25 * p["sample_draws"] == p["adversarial_accuracy"]["trials"]


def test_sweep_points_use_the_interval_over_the_samples() -> None:
    from evcsa.reproduction.document import sweep_points
    from evcsa.reproduction.run import PartResult, ReproductionResult

    row = {"attack": "fgsm", "squeezer": "median-2x2", "delta": 0.5, "p_hat": [0.0] * 4,
           "legitimate_accuracy": {"successes": 9, "trials": 10},
           "adversarial_accuracy": {"successes": 400, "trials": 800}, "advantage_exact": {},
           "sample_correct": [200, 200, 0, 0], "sample_draws": 200}
    old = {k: v for k, v in row.items() if k not in ("sample_correct", "sample_draws")}
    plan = build_plan("mix-n-squeeze", scale="quick", data="digits")
    (new_pt,), (old_pt,) = (sweep_points(ReproductionResult(plan=plan, parts=(PartResult(
        id="figures", title="", comparisons=(), data=[d]),), seconds=0.0), "fgsm") for d in (row, old))
    assert new_pt.adversarial_accuracy.value == old_pt.adversarial_accuracy.value == 0.5
    # 2 of 4 samples (each sample's 200 draws agree), not 400 of 800 classifications
    assert "2 of 4 samples" in new_pt.adversarial_accuracy.method
    assert new_pt.adversarial_accuracy.low < old_pt.adversarial_accuracy.low
