"""Configuration files: TOML text ↔ :class:`~evcsa.config.records.ExperimentConfig`.

Reading structures the parsed document with a strict cattrs converter (no int for a float
silently, no unknown key) and turns its detailed validation error into one line with
cattrs' own :func:`cattrs.transform_error`; writing goes through ``tomli_w``.
"""

from __future__ import annotations

import difflib
import os
import pathlib
import sys
from typing import Any, Callable, Mapping, NoReturn

import attrs
import cattrs
import tomli_w
from cattrs.errors import BaseValidationError, ForbiddenExtraKeysError

from evcsa._text import did_you_mean
from evcsa.config.records import ComponentSpec, ExperimentConfig
from evcsa.errors import ConfigError, EvcsaError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["config_from_dict", "config_to_dict", "config_to_toml", "load_config", "parse_config"]


# -- cattrs: strict scalars, component tables, readable errors -----------------------------

def _strict(kind: type, description: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _type: Any) -> Any:
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return float(value) if ok else _wrong(value, description)
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        return value if ok else _wrong(value, description)
    return structure


def _wrong(value: Any, description: str) -> NoReturn:
    shown = f"{value!r} ({_toml_type(value)})"
    raise ConfigError(f"expected {description}, got {shown}", got=value)


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _structure_component(value: Any, _type: Any) -> ComponentSpec:
    if not isinstance(value, Mapping):
        _wrong(value, "a table with a kind")
    if "kind" not in value:
        raise ConfigError("expected a kind, got none", key="kind")
    for key in ("kind", "label"):
        if key in value and not isinstance(value[key], str):
            raise ConfigError(f"expected {key} as a string, got {value[key]!r} ({_toml_type(value[key])})",
                              key=key, got=value[key])
    rest = {k: v for k, v in value.items() if k not in ("kind", "label")}
    return ComponentSpec(kind=value["kind"], label=value.get("label"), params=rest)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(float, _strict(float, "a number"))
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(ComponentSpec, _structure_component)
    def is_homogeneous_tuple(type_: Any) -> bool:
        args: tuple[Any, ...] = getattr(type_, "__args__", ())
        return getattr(type_, "__origin__", None) is tuple and len(args) == 2 and args[1] is Ellipsis

    def structure_tuple(value: Any, type_: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            _wrong(value, "an array")
        return tuple(conv.structure(list(value), list[type_.__args__[0]]))

    conv.register_structure_hook_func(is_homogeneous_tuple, structure_tuple)
    conv.register_structure_hook_func(lambda t: t == Mapping[str, Any],
                                      lambda v, _t: dict(v) if isinstance(v, Mapping) else _wrong(v, "a table"))
    conv.register_unstructure_hook(ComponentSpec, lambda c: {"kind": c.kind, **({"label": c.label} if c.label else {}),
                                                             **dict(c.params)})
    return conv


_CONVERTER = _make_converter()


@attrs.frozen
class _Problem:
    """One problem in a configuration: the key path relative to where cattrs found it,
    what is wrong, and for an unknown key the known keys it may stand for (a typo of
    ``n_chosen`` makes ``n_chosen`` missing too: one problem, reported once)."""

    key: str
    message: str
    unknown: bool = False
    meant: tuple[str, ...] = ()


def _problems(exc: BaseException) -> list[tuple[str, _Problem]]:
    """cattrs' own error transformation (:func:`cattrs.transform_error`) of a detailed
    validation error, as (dotted key path, problem), unknown keys first, less the missing
    keys a typo of them causes."""
    found: list[_Problem] = []

    def describe(leaf: BaseException, _type: Any) -> str:
        found.append(_describe(leaf))
        return str(len(found) - 1)

    join = (lambda p, k: f"{p}.{k}" if p else k)
    out: list[tuple[str, _Problem]] = []
    meant: set[str] = set()
    for line in cattrs.transform_error(exc, path="", format_exception=describe):
        index, path = line.rsplit(" @ ", 1)
        problem = found[int(index)]
        path = path.lstrip(".")
        meant.update(join(path, m) for m in problem.meant)
        if problem.key and path != problem.key and not path.endswith(f".{problem.key}"):
            path = join(path, problem.key)
        out.append((path, problem))
    unknown = [(path, p) for path, p in out if p.unknown]
    rest = [(path, p) for path, p in out if not p.unknown
            and not (p.message == "required key missing" and path in meant)]
    return unknown + rest


def _describe(exc: BaseException) -> _Problem:
    """What one leaf error of cattrs says, in the configuration's words."""
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        fields = [f.name for f in attrs.fields(exc.cl)]
        known = [f.name for f in attrs.fields(exc.cl) if f.metadata.get("toml", True)]
        meant = tuple(k for e in extra for k in difflib.get_close_matches(e, fields, n=1))
        return _Problem(extra[0], f"unknown key (expected one of: {', '.join(known)})"
                        + did_you_mean(extra[0], known)
                        + (f"; also unknown: {', '.join(extra[1:])}" if extra[1:] else ""),
                        unknown=True, meant=meant)
    if isinstance(exc, KeyError):
        return _Problem(str(exc.args[0]), "required key missing")
    if isinstance(exc, EvcsaError):
        return _Problem(str(exc.details.get("key") or ""), exc.message)
    return _Problem("", f"{type(exc).__name__}: {exc}")


def config_from_dict(data: Mapping[str, Any], *, source: str = "<config>",
                     base_dir: str | pathlib.Path = ".") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a parsed TOML document.

    Raises:
        ConfigError: one line, "<source>: <key path>: <what is wrong>"; ``key`` is the
            dotted path.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a table at the top level, got {_toml_type(data)}")
    if "base_dir" in data:  # written by evcsa into a run's copy: the original file's directory
        stored = data["base_dir"]
        if not isinstance(stored, str) or not pathlib.Path(stored).is_absolute():
            raise ConfigError(f"{source}: base_dir: expected an absolute path (the directory relative paths "
                              f"resolve against; by default the file's own), got {stored!r}", key="base_dir")
        data = {k: v for k, v in data.items() if k != "base_dir"}
        base_dir = stored
    try:
        return _CONVERTER.structure({**data, "base_dir": str(base_dir)}, ExperimentConfig)
    except (BaseValidationError, EvcsaError) as exc:
        problems = _problems(exc)
        path, problem = problems[0]
        key = path or "(top level)"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {key}: {problem.message}{more}", key=key) from exc


def parse_config(text: str, *, source: str = "<config>", base_dir: str | pathlib.Path = ".") -> ExperimentConfig:
    """Parse TOML ``text`` into an :class:`ExperimentConfig` (see :func:`config_from_dict`).

    Raises:
        ConfigError: invalid TOML (with line and column) or a bad key or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    return config_from_dict(data, source=source, base_dir=base_dir)


def load_config(path: str | pathlib.Path) -> ExperimentConfig:
    """Read a TOML configuration file; relative paths in it are resolved against its
    directory.

    Raises:
        ConfigError: a missing or unreadable file, invalid TOML, or a bad key or value.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__}: {exc})", path=str(path)) from exc
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The configuration as plain data (JSON-ready; None values dropped, as TOML has no
    null; ``base_dir`` dropped). ``config_from_dict(config_to_dict(c))`` equals ``c`` up
    to ``base_dir``."""
    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    data: dict[str, Any] = clean(_CONVERTER.unstructure(config))  # a mapping, so a dict
    data.pop("base_dir", None)
    return data


def _toml_key(key: Any) -> str:
    """``key`` as ``tomli_w`` writes it (bare, or a quoted string)."""
    return tomli_w.dumps({str(key): 0})[:-len(" = 0\n")]


def _toml_value(value: Any) -> str:
    """``value`` as a one-line TOML value: scalars as ``tomli_w`` writes them, arrays and
    tables inline, in their order (a component's keys keep the order its name shows)."""
    if isinstance(value, Mapping):
        inner = ", ".join(_toml_pair(k, v) for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):-1]


def _toml_pair(key: Any, value: Any) -> str:
    return f"{_toml_key(key)} = {_toml_value(value)}"


def config_to_toml(config: ExperimentConfig, *, base_dir: bool = False) -> str:
    """The configuration as a TOML document that :func:`parse_config` reads back to an
    equal configuration (up to ``base_dir``; relative paths stay relative), written by
    ``tomli_w`` (every key and scalar; arrays and tables inline, one line each), laid out
    as the files in ``examples/``: the top-level keys, the sections, then one
    ``[[defenses]]`` / ``[[adversaries]]`` section per component, its keys in order.

    Args:
        base_dir: write ``base_dir`` too (made absolute): the copy a run keeps of its
            configuration (its store, its results' config.toml), so that relative paths —
            the data, the weights, plugin modules — resolve against the original file's
            directory when the copy is replayed or resumed from elsewhere. The document then
            reads back equal, ``base_dir`` included.
    """
    data = config_to_dict(config)
    if base_dir:
        data = {"base_dir": os.path.abspath(config.base_dir), **data}
    lines: list[str] = []
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    arrays = [(k, v) for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v)]
    lines += [_toml_pair(k, v) for k, v in data.items() if all(k != t for t, _ in tables + arrays)]
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]", *(_toml_pair(k, v) for k, v in table.items())]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]", *(_toml_pair(k, v) for k, v in item.items())]
    text = "\n".join(lines) + "\n"
    surrogate = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    if surrogate is not None:  # tomli_w writes it; no encoding can store it
        raise ConfigError(f"expected text TOML can hold, got {surrogate!r} (a lone surrogate)", got=surrogate)
    return text

