"""evcsa.config: TOML → attrs records, one-line errors naming the key, round trips."""

from __future__ import annotations

import pathlib

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evcsa.config import (
    ComponentSpec,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    load_config,
    parse_config,
)
from evcsa.errors import ConfigError
from evcsa.games import Rules

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

MINIMAL = """
name = "tiny"
[game]
n_chosen = 5
[[defenses]]
kind = "none"
[[adversaries]]
kind = "graybox_transfer"
"""


def test_minimal_config_and_defaults():
    config = parse_config(MINIMAL)
    assert isinstance(config, ExperimentConfig)
    assert config.game == Rules(n_chosen=5)
    assert config.defenses == (ComponentSpec(kind="none"),)
    assert config.adversaries[0].name == "graybox_transfer"
    assert config.data.dataset == "mnist" and config.model.reference == "mnist"
    assert config.figures.taus == (1.0,)


def test_component_tables_keep_their_parameters():
    config = parse_config(MINIMAL + """
[[defenses]]
label = "rs"
kind = "randomized_squeezing"
squeezer = "median-2x2"
delta = 0.5
""")
    spec = config.defenses[1]
    assert spec.kind == "randomized_squeezing" and spec.label == "rs"
    assert spec.params == {"squeezer": "median-2x2", "delta": 0.5}
    assert spec.name == "rs"
    assert ComponentSpec(kind="x", params={"a": 1}).name == "x(a=1)"


# (snippet appended to / replacing part of MINIMAL, the error's expected text)
BAD = [
    ('runs = "3"', r"runs: expected an integer, got '3' \(a string\)"),
    ("runs = 2.5", r"runs: expected an integer, got 2.5 \(a number\)"),
    ("runs = 0", r"runs: expected runs as an integer ≥ 1, got 0"),
    ("seed = true", r"seed: expected an integer, got True \(a boolean\)"),
    ("reproducible = 1", r"reproducible: expected true or false, got 1 \(an integer\)"),
    ("runz = 1", r"runz: unknown key \(expected one of: name, seed, runs, reproducible, master_key, "
                 r"legitimate_draws, device, executor, jobs, dask_address, data, model, game, defenses, adversaries, figures\)"),
    ('name = "../up"', r"name: expected name of letters, digits"),
    ("[data]\nsamplez = 3", r"data.samplez: unknown key \(expected one of: dataset, split, samples, "
                            r"correctly_classified\)"),
    ('[data]\nsplit = "valid"', r"data.split: expected split in \('all', 'train', 'test'\), got 'valid'"),
    ('[model]\nweights = "w.pt"', r"model.architecture: expected architecture with weights, got none"),
    ('[model]\nreference = "mnist"\nweights = "w.pt"', r"model.weights: expected either reference or weights"),
    ('[model]\nreference = "mnist"\narchitecture = 3', r"model.architecture: expected a string, got 3"),
    ("[figures]\ntaus = 1.0", r"figures.taus: expected an array, got 1.0 \(a number\)"),
    ("[figures]\ntaus = [0.5, \"x\"]", r"figures.taus\[1\]: expected a number, got 'x' \(a string\)"),
    ("[figures]\ntaus = [2.0]", r"figures.taus: expected taus as numbers in \[1e-09, 1\], got 2.0"),
    ("[figures]\nn_values = [5, 1]", r"figures.n_values: expected n_values in increasing order, got \[5, 1\]"),
    ("[figures]\ndeltas = [0.0, 1.5]", r"figures.deltas: expected deltas as numbers in \[0, 1\], got 1.5"),
    ("[figures]\nattack_params = 3", r"figures.attack_params: expected a table, got 3 \(an integer\)"),
    ('[[defenses]]\nlabel = "a"', r"defenses\[1\].kind: expected a kind, got none"),
    ("[[defenses]]\nkind = 3", r"defenses\[1\].kind: expected kind as a string, got 3 \(an integer\)"),
    ('[[adversaries]]\nkind = "graybox_transfer"',
     r"adversaries: expected distinct adversary labels, got 'graybox_transfer' twice \(set label = ...\)"),
]


@pytest.mark.parametrize("snippet, message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_keys_and_values_give_one_line_errors_naming_the_key(snippet, message):
    text = MINIMAL.replace('name = "tiny"', snippet) if not snippet.startswith("[") else MINIMAL + snippet
    if snippet.startswith("name"):
        text = MINIMAL.replace('name = "tiny"', snippet)
    with pytest.raises(ConfigError, match=r"^cfg.toml: " + message) as info:
        parse_config(text, source="cfg.toml")
    assert "\n" not in str(info.value)
    assert info.value.key  # the offending key's path


@pytest.mark.parametrize("game, message", [
    ("n_chosen = 0", r"game.n_chosen: expected n_chosen as an integer ≥ 1, got 0"),
    ('n_chosen = 5\nepsilon = "a"', r"game.epsilon: expected a number, got 'a' \(a string\)"),
    ('n_chosen = 5\nnorm = "l3"', r"game.norm: expected norm in \('l0', 'l2', 'linf'\), got 'l3'"),
    ("n_chosen = 5\nfoo = 1", r"game.foo: unknown key \(expected one of: n_chosen, epsilon, norm"),
    ("epsilon = 0.3", r"game.n_chosen: required key missing"),
])
def test_game_rules_errors_name_the_key(game, message):
    text = MINIMAL.replace("n_chosen = 5", game)
    with pytest.raises(ConfigError, match=r"^cfg.toml: " + message):
        parse_config(text, source="cfg.toml")


@pytest.mark.parametrize("old, new, message", [
    # a typo'd key is reported as unknown, not as the key it stands for going missing
    ("n_chosen = 5", "n_chosn = 5",
     r"game.n_chosn: unknown key \(expected one of: n_chosen, epsilon, norm, goal, freshness, reveal, "
     r"untargeted_reference, knowledge, classify_budget, tolerance\); did you mean 'n_chosen'\?$"),
    ("[game]", "[gmae]", r"gmae: unknown key \(expected one of: name, seed, runs, .*, figures\); "
                         r"did you mean 'game'\?$"),
    ('name = "tiny"', 'nmae = "tiny"', r"nmae: unknown key \(expected one of: .*\); did you mean 'name'\?$"),
    ("n_chosen = 5", "n_chosn = 5\nepsilonn = 0.3",
     r"game.epsilonn: unknown key \(.*\); did you mean 'epsilon'\?; also unknown: n_chosn$"),
    # no close match: no hint; an unknown key comes before other errors in the file
    ("n_chosen = 5", "n_chosen = 5\nxyzzy = 1", r"game.xyzzy: unknown key \(expected one of: [^)]*\)$"),
    ('name = "tiny"', 'runs = "3"\n[data]\nsampels = 0',
     r"data.sampels: unknown key \(.*\); did you mean 'samples'\? \(and 1 more\)$"),
])
def test_unknown_keys_come_first_with_a_hint(old, new, message):
    assert old in MINIMAL
    with pytest.raises(ConfigError, match=r"^cfg.toml: " + message) as info:
        parse_config(MINIMAL.replace(old, new), source="cfg.toml")
    assert info.value.key == info.value.message.split(": ")[1]


def test_required_sections_and_top_level():
    with pytest.raises(ConfigError, match=r"^c: game: required key missing"):
        parse_config('[[defenses]]\nkind = "none"\n[[adversaries]]\nkind = "x"\n', source="c")
    with pytest.raises(ConfigError, match=r"defenses: expected at least one \[\[defenses\]\] table"):
        config_from_dict({"game": {"n_chosen": 1}, "defenses": [], "adversaries": [{"kind": "x"}]})
    with pytest.raises(ConfigError, match=r"base_dir: expected an absolute path .*, got 'rel'"):
        config_from_dict({"base_dir": "rel"})  # an absolute one is a run's stored copy (config_to_toml)
    with pytest.raises(ConfigError, match=r"expected a table at the top level"):
        config_from_dict([1, 2])  # type: ignore[arg-type]


def test_invalid_toml_reports_line_and_column():
    with pytest.raises(ConfigError, match=r"^f.toml: invalid TOML: .*\(at line 2, column \d+\)$"):
        parse_config('name = "x"\nruns = = 3\n', source="f.toml")


def test_load_config_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.toml: no such file"):
        load_config(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match=r"binary.toml: cannot read \(UnicodeDecodeError"):
        load_config(binary)
    good = tmp_path / "sub" / "good.toml"
    good.parent.mkdir()
    good.write_text(MINIMAL.replace("[game]", '[data]\ndataset = "d.npz"\nsplit = "all"\n[game]'))
    config = load_config(good)
    assert config.resolve(config.data.dataset) == good.parent.resolve() / "d.npz"
    assert config.resolve("/abs/x.npz") == pathlib.Path("/abs/x.npz")


def test_toml_round_trip():
    text = MINIMAL + """
[figures]
attack_params = { steps = 5, epsilon = 0.25 }
deltas = [0.0, 0.5]
[[defenses]]
label = "rs \\"quoted\\" δ"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.2
"""
    config = parse_config(text.replace("n_chosen = 5", "n_chosen = 5\nepsilon = 0.3\ntolerance = 1e-6"))
    again = parse_config(config_to_toml(config))
    assert again == config
    data = config_to_dict(config)
    assert "base_dir" not in data and data["game"]["epsilon"] == 0.3
    assert "classify_budget" not in data["game"], "None values are dropped (TOML has no null)"


def test_every_example_config_parses_and_checks():
    """examples/*.toml are complete, valid configurations (check_config builds every
    defense and adversary they name)."""
    from evcsa.experiments import check_config

    files = sorted(EXAMPLES.glob("*.toml"))
    assert files, "examples/ holds at least one configuration"
    for path in files:
        check_config(load_config(path))


def test_demo_configuration_is_package_data_and_checks():
    """The demo configuration exists once, as package data, and is a valid configuration."""
    from importlib import resources

    from evcsa.experiments import DEMO_TOML, check_config

    assert resources.files("evcsa.experiments").joinpath("demo.toml").read_text(encoding="utf-8") == DEMO_TOML
    assert not (EXAMPLES / "demo.toml").exists(), "one copy only: evcsa/experiments/demo.toml"
    config = parse_config(DEMO_TOML)
    assert config.name == "demo"
    check_config(config)


def test_master_key_is_a_config_key_checked_as_64_hex_digits():
    good = "ab" * 32
    assert parse_config(f'master_key = "{good}"\n' + MINIMAL).master_key == good
    assert parse_config(MINIMAL).master_key is None
    with pytest.raises(ConfigError, match="master_key: expected a master key as 64 hex digits, got 6"):
        parse_config('master_key = "abcdef"\n' + MINIMAL)


# -- config_to_toml writes with tomli_w: every configuration reads back equal ------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12).filter(str.strip)
_PARAM = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   _TEXT, st.lists(st.integers(0, 9), max_size=3),
                   st.dictionaries(st.from_regex(r"[a-z_]{1,6}", fullmatch=True), st.integers(0, 9), max_size=2))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(labels=st.lists(_TEXT, min_size=1, max_size=3, unique=True),
       params=st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,7}", fullmatch=True).filter(
           lambda k: k not in ("kind", "label")), _PARAM, max_size=4),
       epsilon=st.one_of(st.none(), st.floats(0, 1)), taus=st.lists(st.floats(1e-9, 1), min_size=1, max_size=3))
def test_config_to_toml_reads_back_equal(labels, params, epsilon, taus):
    """load(config_to_toml(c)) == c, component names (their keys' order) included, for
    labels with any character TOML can hold (controls, quotes, DEL, bidi marks) and any
    parameter values (derandomized: the same examples every run, no false failures)."""
    config = parse_config(MINIMAL)
    config = attrs.evolve(
        config, game=attrs.evolve(config.game, epsilon=epsilon),
        figures=attrs.evolve(config.figures, taus=tuple(taus)),
        defenses=tuple(ComponentSpec(kind="none", label=label) for label in labels),
        adversaries=(ComponentSpec(kind="graybox_transfer", params=params),))
    again = parse_config(config_to_toml(config))
    assert again == config
    assert [c.name for c in again.adversaries] == [c.name for c in config.adversaries]
    stored = parse_config(config_to_toml(config, base_dir=True))
    assert stored == attrs.evolve(config, base_dir=str(pathlib.Path(".").resolve()))


def test_config_to_toml_keeps_the_layout_of_examples():
    """The top-level keys, then the sections, then one [[...]] section per component; a
    lone surrogate (no encoding stores it) is refused."""
    text = config_to_toml(load_config(EXAMPLES / "digits.toml"))
    assert text.startswith('name = "digits"\nseed = 7\n')
    assert text.index("[data]") < text.index("[game]") < text.index("[[defenses]]") < text.index("[[adversaries]]")
    assert text.count("[[defenses]]") == 2 and 'label = "bit-depth-1 δ=0.2"' in text
    config = parse_config(MINIMAL)
    with pytest.raises(ConfigError, match=r"expected text TOML can hold, got '\\ud800' \(a lone surrogate\)"):
        config_to_toml(attrs.evolve(config, defenses=(ComponentSpec(kind="none", label="x\ud800"),)))
