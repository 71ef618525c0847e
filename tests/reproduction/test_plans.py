"""The reproduction plans: the configurations match the papers' settings."""

from __future__ import annotations

import attrs
import pytest

from evcsa.errors import InvalidParameter
from evcsa.experiments import check_config
from evcsa.reproduction import GAPS, build_plan
from evcsa.reproduction.plans import MNIST_SQUEEZERS, MODEL_GAPS, TABLE1_ATTACKS, plan_gaps


def test_mix_n_squeeze_full_is_the_seed_setting() -> None:
    plan = build_plan("mix-n-squeeze")
    assert [p.id for p in plan.parts] == ["table1", "table2", "table3", "figures"]
    (t1,) = plan.part("table1").configs
    assert t1.data.samples == 100 and t1.data.correctly_classified and t1.data.split == "test"
    assert t1.game.n_chosen == 100 and t1.game.epsilon is None and t1.game.knowledge == "graybox"
    assert t1.runs == 1 and t1.model.reference == "mnist-carlini-evademl" == plan.model  # the seeds' model
    assert [d.name for d in t1.defenses] == ["none", *MNIST_SQUEEZERS]
    assert [a.params["attack"] for a in t1.adversaries] == list(TABLE1_ATTACKS) and "deepfool" not in TABLE1_ATTACKS
    assert all(a.kind == "graybox_transfer" and a.params["round_to_grid"] for a in t1.adversaries)
    (t2,) = plan.part("table2").configs
    assert t2.runs == 200
    assert {(d.params["squeezer"], d.params["delta"]) for d in t2.defenses} == set(MNIST_SQUEEZERS.items())
    t3 = plan.part("table3").configs
    assert len(t3) == 20 and len({c.seed for c in t3}) == 20
    assert all(attrs.evolve(c, seed=0) == attrs.evolve(t3[0], seed=0) for c in t3)
    assert [a.name for a in t3[0].adversaries] == ["BPDA+EOT", "APGD-EOT"] and t3[0].game.knowledge == "whitebox"
    assert t3[0].adversaries[1].params["method"] == "apgd"
    budgets = [a.params["steps"] * a.params["eot_samples"] for a in t3[0].adversaries]
    assert budgets == [400, 400]  # equal model evaluations per sample (issue 12's comparison)
    figures = plan.part("figures").configs
    assert [c.figures.attack for c in figures] == list(TABLE1_ATTACKS)
    f = figures[0].figures
    assert f.deltas == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8) and f.draws == 200 and 25 in f.n_values


@pytest.mark.parametrize("name", ["mix-n-squeeze", "randomized-squeezing"])
@pytest.mark.parametrize("scale", ["full", "quick"])
def test_every_configuration_checks(name: str, scale: str) -> None:
    plan = build_plan(name, scale=scale, data="digits")
    for part in plan.parts:
        assert part.configs and part.run in ("cells", "repetitions", "sweep")
        for config in part.configs[:2]:
            check_config(config)
    assert plan.gaps == plan_gaps(name, "digits") == GAPS[name] and plan.model == "digits"
    for gap in plan.gaps:
        assert gap.part and gap.missing and gap.instead


def test_quick_is_small() -> None:
    quick = build_plan("mix-n-squeeze", scale="quick")
    assert quick.scale.samples <= 8 and quick.scale.runs <= 5 and len(quick.part("table3").configs) <= 2
    assert all(a.params.get("params") for a in quick.part("table1").configs[0].adversaries
               if a.params["attack"].startswith("cw_"))


def test_seed000_axes() -> None:
    plan = build_plan("randomized-squeezing")
    graybox = plan.part("graybox").configs
    assert [c.name for c in graybox] == ["randomized-squeezing-graybox-squeezing", "randomized-squeezing-graybox-crop",
                                         "randomized-squeezing-graybox-region"]
    defenses = [d for c in graybox for d in c.defenses]
    kinds = {d.kind for d in defenses}
    assert kinds == {"none", "feature_squeezing", "randomized_squeezing", "cropping_rescaling", "region_based"}
    crops = [d for d in defenses if d.kind == "cropping_rescaling"]
    regions = [d for d in defenses if d.kind == "region_based"]
    assert all(d.params["n_crops"] == 30 for d in crops) and all(d.params["n_samples"] == 1_000 for d in regions)
    assert max(d.params["radius"] for d in regions) <= 0.3
    assert [c.runs for c in graybox] == [200, 20, 1] and graybox[2].legitimate_draws == 1  # cost per classification
    labels = [a.name for a in plan.part("whitebox").configs[0].adversaries]
    assert labels == ["BPDA", "BPDA+EOT"] and plan.part("whitebox").configs[0].game.epsilon == 0.3
    assert any("10,000 samples per prediction" in g.missing for g in plan.gaps)


def test_bad_names() -> None:
    with pytest.raises(InvalidParameter, match="did you mean 'mix-n-squeeze'"):
        build_plan("mix-and-squeeze")
    with pytest.raises(InvalidParameter, match="scale"):
        build_plan("mix-n-squeeze", scale="huge")
    with pytest.raises(InvalidParameter, match="expected a part"):
        build_plan("mix-n-squeeze").part("table4")


def test_cw_schedule_is_fast_by_default_and_reference_on_request() -> None:
    for schedule in (None, "reference"):
        plan = build_plan("mix-n-squeeze", cw_schedule=schedule)
        (t1,) = plan.part("table1").configs
        cw = [a for a in t1.adversaries if a.params["attack"].startswith("cw_")]
        assert len(cw) == 6 and all(a.params["params"]["schedule"] == (schedule or "fast") for a in cw)
        assert all("params" not in a.params for a in t1.adversaries if not a.params["attack"].startswith("cw_"))
        assert plan.part("figures").configs[2].figures.attack_params == {"schedule": schedule or "fast"}
    with pytest.raises(InvalidParameter, match="cw_schedule"):
        build_plan("mix-n-squeeze", cw_schedule="slow")


@pytest.mark.parametrize("name", ["mix-n-squeeze", "randomized-squeezing"])
def test_the_model_is_the_seeds_by_default_and_another_on_request(name: str) -> None:
    """On MNIST every configuration of a plan uses the seeds' model unless another reference
    model is named (``--model``); its gaps say what the model costs against the paper."""
    plan = build_plan(name)
    assert plan.model == "mnist-carlini-evademl"
    assert {c.model.reference for part in plan.parts for c in part.configs} == {"mnist-carlini-evademl"}
    assert plan.gaps[: len(MODEL_GAPS[(name, plan.model)])] == MODEL_GAPS[(name, plan.model)]
    own = build_plan(name, model="mnist")
    assert {c.model.reference for part in own.parts for c in part.configs} == {"mnist"}
    assert own.gaps == plan_gaps(name, "mnist")
    with pytest.raises(InvalidParameter, match=r"expected a model for data 'digits', got 'mnist', a model for "
                                               r"'mnist'"):
        build_plan(name, data="digits", model="mnist")
    with pytest.raises(InvalidParameter, match=r"expected a reference model in .*got 'resnet'"):
        build_plan(name, model="resnet")
