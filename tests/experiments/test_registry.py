"""evcsa.experiments.registry: a [[defenses]] table → its kind's parameter record → the
defense; every error names the table and the key."""

from __future__ import annotations

import attrs
import pytest
import torch

from evcsa.config import ComponentSpec
from evcsa.defenses import CroppingRescaling, FeatureSqueezing, RandomizedSqueezing, RegionBasedClassification
from evcsa.defenses.params import DEFENSE_PARAMS, DefenseParams
from evcsa.errors import ConfigError
from evcsa.experiments import registry
from evcsa.experiments.registry import DEFENSES, build_adversary, build_defense, sweep_attack
from evcsa.randomness import DerivedKeys
from evcsa.testing import PixelCodeModel


@pytest.fixture
def model() -> PixelCodeModel:
    return PixelCodeModel()


def _build(model: torch.nn.Module, kind: str, **params: object) -> object:
    return build_defense(ComponentSpec(kind=kind, params=params), model, DerivedKeys.from_seed(0), where="defenses[1]")


def test_every_shipped_kind_is_a_parameter_record_that_builds_its_defense(model):
    assert DEFENSES == DEFENSE_PARAMS and all(issubclass(r, DefenseParams) and attrs.has(r) for r in DEFENSES.values())
    assert _build(model, "none") is model
    assert isinstance(_build(model, "feature_squeezing", squeezers=["bit-depth-1"], threshold=0.5),
                      FeatureSqueezing)
    rs = _build(model, "randomized_squeezing", squeezer="median-2x2", delta=0.5)
    assert isinstance(rs, RandomizedSqueezing) and rs.delta == 0.5
    cr = _build(model, "cropping_rescaling", crop_size=3)
    assert isinstance(cr, CroppingRescaling) and cr.n_crops == 30, "the record's default"
    rb = _build(model, "region_based", radius=0.1, n_samples=7)
    assert isinstance(rb, RegionBasedClassification) and rb.n_samples == 7


@pytest.mark.parametrize("kind, params, message", [
    ("randomized_squeezing", {"squeezer": "bit-depth-1", "detla": 0.2},
     r"defenses\[1\].detla: unknown key for kind 'randomized_squeezing' \(expected one of: kind, label, "
     r"squeezer, delta\); did you mean 'delta'\?"),
    ("randomized_squeezing", {"squeezer": "bit-depth-1"},
     r"defenses\[1\].delta: required key missing for kind 'randomized_squeezing'"),
    ("randomized_squeezing", {"squeezer": "bit-depth-1", "delta": 1.5},
     r"defenses\[1\].delta: expected delta in \[0, 1\] \(pixel scale\), got 1.5"),
    ("randomized_squeezing", {"squeezer": "bit-depth-1", "delta": "big"},
     r"defenses\[1\].delta: expected delta as a number in \[0, 1\], got 'big'"),
    ("region_based", {"radius": -0.1}, r"defenses\[1\].radius: expected radius in \[0, 1\] \(pixel scale\)"),
    ("feature_squeezing", {"squeezers": "bit-depth-1", "classify_on": "cooked"},
     r"defenses\[1\].classify_on: expected classify_on in \('squeezed', 'raw'\), got 'cooked'"),
    ("cropping_rescaling", {"crop_size": 3, "n_crops": 0}, r"defenses\[1\].n_crops: expected n_crops ≥ 1, got 0"),
])
def test_errors_name_the_field(model, kind, params, message):
    with pytest.raises(ConfigError, match="^" + message) as info:
        _build(model, kind, **params)
    assert info.value.key == message.split(":")[0].replace("\\", "")


def test_a_users_builder_function_or_record_is_still_accepted(model, monkeypatch):
    """Registry entries added at run time: a function ``(model, keys, **params)`` (its
    signature gives its keys) or a DefenseParams record of one's own (its fields do)."""
    def halved(model: torch.nn.Module, keys: object, strength: float = 0.5) -> RandomizedSqueezing:
        return RandomizedSqueezing(model, "bit-depth-1", strength, keys)

    @attrs.frozen(kw_only=True)
    class Mine(DefenseParams):
        strength: float

        def build(self, model, keys):  # type: ignore[no-untyped-def]
            return RandomizedSqueezing(model, "bit-depth-1", self.strength, keys)

    monkeypatch.setitem(registry.DEFENSES, "halved", halved)
    monkeypatch.setitem(registry.DEFENSES, "mine", Mine)
    assert _build(model, "halved").delta == 0.5
    assert _build(model, "mine", strength=0.25).delta == 0.25
    with pytest.raises(ConfigError, match=r"^defenses\[1\].strenght: unknown key for kind 'halved' \(expected one "
                                          r"of: kind, label, strength\)"):
        _build(model, "halved", strenght=0.1)
    with pytest.raises(ConfigError, match=r"^defenses\[1\].strength: required key missing for kind 'mine'"):
        _build(model, "mine")


def test_sweep_attack_names_figures_attack():
    from evcsa.config import parse_config

    text = ('[game]\nn_chosen = 1\n[[defenses]]\nkind = "none"\n[[adversaries]]\nkind = "graybox_transfer"\n'
            '[figures]\nattack = "{}"\n')
    assert sweep_attack(parse_config(text.format("fgsm"))).name == "fgsm"
    with pytest.raises(ConfigError, match=r"^figures.attack: expected an attack name"):
        sweep_attack(parse_config(text.format("fgsn")))


class _NotAnAdversary:
    """A class with neither prepare nor play, added to the registry by mistake."""


def test_a_kind_added_to_adversaries_must_build_an_adversary(monkeypatch):
    monkeypatch.setitem(registry.ADVERSARIES, "not_one", _NotAnAdversary)
    with pytest.raises(ConfigError, match=r"^adversaries\[0\]\.kind: expected 'not_one' to build an "
                                          r"evcsa\.adversaries\.Adversary, got _NotAnAdversary$") as info:
        build_adversary(ComponentSpec(kind="not_one"), where="adversaries[0]")
    assert info.value.key == "adversaries[0].kind"
