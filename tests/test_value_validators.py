"""evcsa._values: one validator per kind of value (δ, ε, probability, targeting, integers,
numbers), each a check_* function and an attrs validator whose key is the field."""

from __future__ import annotations

import subprocess
import sys

import attrs
import numpy as np
import pytest

from evcsa import _validation
from evcsa._values import (
    check_delta,
    check_epsilon,
    check_number,
    check_probability,
    check_targeting,
    delta,
    epsilon,
    probability,
    targeting,
)
from evcsa.errors import ConfigError, InvalidParameter


def test_check_delta_accepts_one_number_in_the_unit_interval():
    assert check_delta(0) == 0.0 and check_delta(np.float32(0.5)) == 0.5 and check_delta(1) == 1.0
    with pytest.raises(InvalidParameter, match=r"^expected delta in \[0, 1\] \(pixel scale\), got 1.5$"):
        check_delta(1.5)
    with pytest.raises(InvalidParameter, match=r"^expected radius as a number in \[0, 1\], got 'big'$"):
        check_delta("big", "radius")
    with pytest.raises(InvalidParameter, match=r"expected delta as a number in \[0, 1\], got True"):
        check_delta(True)
    with pytest.raises(InvalidParameter, match=r"expected delta as a number in \[0, 1\]"):
        check_delta(np.array([0.1, 0.2]))
    with pytest.raises(InvalidParameter, match=r"expected delta in \[0, 1\]"):
        check_delta(float("nan"))


def test_check_epsilon_bounded_unbounded_and_positive():
    assert check_epsilon(0) == 0.0 and check_epsilon(None, optional=True) is None
    assert check_epsilon(np.float64(0.3)) == 0.3
    for bad in (-0.1, float("inf"), float("nan"), True, "0.3", None):
        with pytest.raises(InvalidParameter, match=r"^expected epsilon as a finite number ≥ 0, got "):
            check_epsilon(bad)
    with pytest.raises(InvalidParameter, match=r"^expected epsilon as a finite number ≥ 0 or None \(unbounded\), got -1"):
        check_epsilon(-1, optional=True)
    with pytest.raises(InvalidParameter, match=r"^expected eps as a finite number > 0 or None \(unbounded\), got 0"):
        check_epsilon(0, "eps", optional=True, positive=True)


def test_check_probability_and_number_ranges():
    assert check_probability(1, "p") == 1.0 and check_probability(0.25, "p", open_low=True) == 0.25
    with pytest.raises(InvalidParameter, match=r"^expected p in \(0, 1\), got 1.0$"):
        check_probability(1.0, "p", open_low=True, open_high=True)
    with pytest.raises(InvalidParameter, match=r"^expected p as a number in \[0, 1\], got 'x'$"):
        check_probability("x", "p")
    assert check_number(3, "n", minimum=0) == 3.0
    with pytest.raises(InvalidParameter, match=r"^expected n > 0.0, got 0.0$"):
        check_number(0.0, "n", minimum=0.0, open_low=True)
    with pytest.raises(ConfigError, match=r"^expected n ≤ 1.0, got 2.0$"):
        check_number(2.0, "n", maximum=1.0, error=ConfigError)


def test_check_targeting_names_the_choices():
    modes = ("untargeted", "next", "least_likely")
    assert check_targeting("next", modes) == "next" and check_targeting(None, modes, optional=True) is None
    with pytest.raises(InvalidParameter, match=r"^expected targeting in \('untargeted', 'next', 'least_likely'\), "
                                              r"got 'nxt'$") as info:
        check_targeting("nxt", modes)
    assert info.value.key == "targeting"
    with pytest.raises(InvalidParameter, match=r"or None, got 3$"):
        check_targeting(3, modes, optional=True)


@attrs.frozen(kw_only=True)
class _Record:
    noise: float = attrs.field(default=0.1, validator=delta())
    bound: float | None = attrs.field(default=None, validator=epsilon(optional=True))
    rate: float = attrs.field(default=0.5, validator=probability(open_low=True))
    mode: str | None = attrs.field(default=None, validator=targeting(("next", "least_likely"), optional=True))


@pytest.mark.parametrize("field, value, message", [
    ("noise", 2.0, r"expected noise in \[0, 1\] \(pixel scale\), got 2.0"),
    ("bound", -1.0, r"expected bound as a finite number ≥ 0 or None \(unbounded\), got -1.0"),
    ("rate", 0.0, r"expected rate in \(0, 1\], got 0.0"),
    ("mode", "untargeted", r"expected mode in \('next', 'least_likely'\) or None, got 'untargeted'"),
])
def test_attrs_validators_name_the_field(field, value, message):
    assert _Record() == _Record(noise=0.1)
    with pytest.raises(InvalidParameter, match="^" + message + "$") as info:
        _Record(**{field: value})
    assert info.value.key == field


def test_validation_reexports_the_plain_validators_under_the_old_path():
    for name in ("check_positive_int", "check_probability", "int_at_least", "one_of", "is_bool",
                 "check_delta", "check_epsilon", "check_targeting", "check_number"):
        assert getattr(_validation, name).__module__ == "evcsa._values", name


def _imports_torch(statement: str) -> list[str]:
    """Run ``statement`` in a fresh interpreter: ``["False"]`` when torch stayed out of
    ``sys.modules``, ``["True"]`` when something loaded it."""
    code = (f"import sys\n{statement}\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_plain_validators_and_the_config_files_layer_do_not_import_torch():
    """What evcsa.config builds on below the game's rules: the plain validators, the errors,
    the key sources, the text helpers and the TOML libraries load without torch."""
    loaded = _imports_torch("import evcsa._values, evcsa.errors, evcsa.keys, evcsa.terms, evcsa._text, "
                            "attrs, cattrs, tomli_w")
    assert loaded == ["False"], "one of evcsa._values, errors, keys, terms, _text imports torch at import time"


def test_import_evcsa_config_does_not_import_torch():
    loaded = _imports_torch("import evcsa.config")
    assert loaded == ["False"], ("import evcsa.config loaded torch: a module it imports (see "
                                 "python -X importtime -c 'import evcsa.config') imports torch at import time")


def test_check_choice_and_non_empty_str():
    from evcsa._values import check_choice, non_empty_str

    assert check_choice("l2", ("linf", "l2"), "norm") == "l2"
    with pytest.raises(InvalidParameter, match=r"^expected norm in \('linf', 'l2'\), got 'l3'$"):
        check_choice("l3", ("linf", "l2"), "norm")

    @attrs.frozen
    class Named:
        name: str = attrs.field(validator=non_empty_str(error=ConfigError))
        alias: str | None = attrs.field(default=None, validator=non_empty_str(optional=True))

    assert Named("a").alias is None
    with pytest.raises(ConfigError, match=r"^expected name as a non-empty string, got ' '$"):
        Named(" ")
    with pytest.raises(InvalidParameter, match=r"^expected alias as a non-empty string, got 3$"):
        Named("a", 3)  # type: ignore[arg-type]
