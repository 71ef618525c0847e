"""Validators of plain values, one per kind of value: integers, numbers, probabilities,
the noise magnitude δ, the distortion bound ε, targeting modes, choices and names.

Each kind has a ``check_*`` function (returns the value, normalised; raises the caller's
error class, :class:`~evcsa.errors.InvalidParameter` by default) and an attrs validator
built on it (``key`` = the field's name). Every message reads "expected …, got …".

This module imports neither torch nor anything that does, so that :mod:`evcsa.config`
can use it without loading torch; the tensor checks (images, labels) are in
:mod:`evcsa._validation`, which re-exports everything here under its old names.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

import attrs
import numpy as np

from evcsa.errors import EvcsaError, InvalidParameter

__all__ = [
    "Validator",
    "check_choice",
    "check_delta",
    "check_epsilon",
    "check_number",
    "check_positive_int",
    "check_probability",
    "check_targeting",
    "delta",
    "epsilon",
    "int_at_least",
    "is_bool",
    "non_empty_str",
    "one_of",
    "probability",
    "targeting",
]

#: An attrs validator: ``(instance, attribute, value) -> None``, raising on a bad value.
Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

_REAL = (int, float, np.integer, np.floating)
_T = TypeVar("_T")


def check_positive_int(value: object, name: str, *, minimum: int = 1,
                       error: type[EvcsaError] = InvalidParameter) -> int:
    """Return ``value`` as an int ≥ ``minimum``, or raise ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error(f"expected {name} as an integer ≥ {minimum}, got {value!r}", got=value)
    if value < minimum:
        raise error(f"expected {name} ≥ {minimum}, got {value}", got=int(value))
    return int(value)


def check_number(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 open_low: bool = False, error: type[EvcsaError] = InvalidParameter) -> float:
    """``value`` as a finite float in the stated range, or ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise error(f"expected {name} as a number, got {value!r}", got=value)
    v = float(value)
    if not math.isfinite(v):
        raise error(f"expected {name} as a finite number, got {v}", got=v)
    if minimum is not None and (v < minimum or (open_low and v == minimum)):
        op = ">" if open_low else "≥"
        raise error(f"expected {name} {op} {minimum}, got {v}", got=v)
    if maximum is not None and v > maximum:
        raise error(f"expected {name} ≤ {maximum}, got {v}", got=v)
    return v


def check_probability(value: object, name: str, *, open_low: bool = False, open_high: bool = False,
                      error: type[EvcsaError] = InvalidParameter) -> float:
    """Return ``value`` as a float in [0, 1] (ends open as asked), or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise error(f"expected {name} as a number in [0, 1], got {value!r}", got=value)
    v = float(value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (np.isfinite(v) and low_ok and high_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise error(f"expected {name} in {interval}, got {v}", got=v)
    return v


def check_delta(value: Any, name: str = "delta", *, error: type[EvcsaError] = InvalidParameter) -> float:
    """δ (a noise magnitude or a radius on the [0, 1] pixel scale; seed 000 § 4.3, seed 002
    § 4.2) as a float in [0, 1]; anything with ``__float__`` of one value is accepted (a
    numpy or torch scalar).

    Raises:
        error: not one number, or outside [0, 1] (NaN included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise error(f"expected {name} as a number in [0, 1], got {value!r}", got=value)
    try:
        v = float(value)
    except (TypeError, ValueError):  # an array or tensor of several values
        raise error(f"expected {name} as a number in [0, 1], got {value!r}", got=value) from None
    if not 0.0 <= v <= 1.0:
        raise error(f"expected {name} in [0, 1] (pixel scale), got {v}", got=v)
    return v


def check_epsilon(value: object, name: str = "epsilon", *, optional: bool = False, positive: bool = False,
                  error: type[EvcsaError] = InvalidParameter) -> float | None:
    """ε, a distortion bound (on the [0, 1] pixel scale; a pixel count for L0; seed 000
    Fig. 1), as a finite float ≥ 0 (> 0 when ``positive``), or None when ``optional``
    (unbounded, seed 002).

    Raises:
        error: not a number (a bool included), NaN, infinite or out of range.
    """
    if value is None and optional:
        return None
    op = "> 0" if positive else "≥ 0"
    if isinstance(value, bool) or not isinstance(value, _REAL) \
            or not math.isfinite(float(value)) or not (float(value) > 0 if positive else float(value) >= 0):
        raise error(f"expected {name} as a finite number {op}{' or None (unbounded)' if optional else ''}, "
                    f"got {value!r}", key=name, got=value)
    return float(value)


def check_choice(value: object, choices: tuple[_T, ...], name: str, *,
                 error: type[EvcsaError] = InvalidParameter) -> _T:
    """``value`` if it is one of ``choices`` (a norm, a loss, a mode), else ``error``."""
    if value not in choices:
        raise error(f"expected {name} in {tuple(choices)}, got {value!r}", key=name, got=value)
    return value  # (narrowed to a choice by the check)


def check_targeting(value: object, choices: tuple[str, ...], name: str = "targeting", *, optional: bool = False,
                    error: type[EvcsaError] = InvalidParameter) -> str | None:
    """A targeting mode (how an attack picks y_t: "untargeted", "next" = (y + 1) mod K,
    "least_likely"), one of ``choices``, or None when ``optional``.

    Raises:
        error: any other value.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str) or value not in choices:
        raise error(f"expected {name} in {tuple(choices)}{' or None' if optional else ''}, got {value!r}",
                    key=name, got=value)
    return value


# -- attrs validators (``key`` = the field's name) -------------------------------------------

def one_of(choices: tuple[Any, ...], *, error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: the value is one of ``choices``."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_choice(value, choices, attribute.name, error=error)
    return check


def non_empty_str(*, optional: bool = False, error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: a string with a non-blank character, or None when ``optional``."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value.strip():
            raise error(f"expected {attribute.name} as a non-empty string, got {value!r}",
                        key=attribute.name, got=value)
    return check


def int_at_least(minimum: int, *, optional: bool = False,
                 error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: an integer (not a bool) ≥ ``minimum``, or None when ``optional``."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise error(f"expected {attribute.name} as an integer ≥ {minimum}, got {value!r}",
                        key=attribute.name, got=value)
    return check


def is_bool(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An attrs validator: ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise InvalidParameter(f"expected {attribute.name} as true or false, got {value!r}",
                               key=attribute.name, got=value)


def probability(*, open_low: bool = False, open_high: bool = False,
                error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: :func:`check_probability` on the field."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        try:
            check_probability(value, attribute.name, open_low=open_low, open_high=open_high, error=error)
        except EvcsaError as exc:
            raise error(exc.message, key=attribute.name, got=value) from None
    return check


def delta(*, error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: :func:`check_delta` on the field."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        try:
            check_delta(value, attribute.name, error=error)
        except EvcsaError as exc:
            raise error(exc.message, key=attribute.name, got=value) from None
    return check


def epsilon(*, optional: bool = False, positive: bool = False,
            error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: :func:`check_epsilon` on the field."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_epsilon(value, attribute.name, optional=optional, positive=positive, error=error)
    return check


def targeting(choices: tuple[str, ...], *, optional: bool = False,
              error: type[EvcsaError] = InvalidParameter) -> Validator:
    """An attrs validator: :func:`check_targeting` on the field."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_targeting(value, choices, attribute.name, optional=optional, error=error)
    return check
