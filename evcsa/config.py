"""Experiment configurations: TOML files mapped to frozen attrs records with cattrs.

An experiment plays every defense of the configuration against every adversary, R games
per pair (a *cell*), on one data set and one model, under one set of game rules; it also
sweeps the noise magnitude δ for the figures. The whole run is a pure function of the
:class:`ExperimentConfig` (:func:`evcsa.experiments.run_experiment`).

The file format (every key optional unless marked; see ``docs/quickstart.md`` and
``examples/*.toml``)::

    name = "demo"               # names the results directory
    seed = 2024                 # the adversaries' and the run's own randomness derives from it
    runs = 100                  # R, games per cell
    reproducible = true         # defense keys derived from master_key (false: OS entropy)
    # master_key = "64 hex digits"  # omitted: drawn from OS entropy, recorded in the results
    legitimate_draws = 2        # classifications per legitimate test image
    device = "cpu"              # "cpu", "cuda" or "auto" (cuda when available)
    executor = "serial"         # "serial", "processes" (a local pool) or "dask"
    jobs = 2                    # worker processes of "processes" (default: one per core)
    dask_address = "tcp://…"    # the Dask scheduler ("dask"; default: a LocalCluster)

    [data]
    dataset = "mnist"           # "mnist", "digits" or a path to a .npz file
    split = "test"              # "all", "train" or "test" (embedded sets)
    samples = 100               # |X_D|, the first natural samples of the split
    correctly_classified = true # keep only samples the undefended model gets right

    [model]
    reference = "mnist"         # a shipped reference model: "mnist", "digits" or
                                # "mnist-carlini-evademl" (the seeds' model), or:
    # architecture = "carlini_mnist"; weights = "path/to/state_dict.pt"

    [game]                      # evcsa.games.Rules; n_chosen is required
    n_chosen = 25
    epsilon = 0.3               # omit for unbounded (seed 002)
    norm = "linf"

    [[defenses]]                # one table per defense; kind + its parameters
    kind = "randomized_squeezing"
    squeezer = "bit_depth:1"
    delta = 0.2

    [[adversaries]]             # one table per adversary; kind + its parameters
    kind = "greedy_a_star"
    attack = "bim"

    [figures]
    taus = [1.0]                # thresholds τ for the advantage
    n_values = [1, 5, 10, 25]   # N axis of the advantage-vs-N figure
    deltas = [0.0, 0.2, 0.5]    # δ axis of the accuracy-vs-δ figure
    draws = 50                  # classifications per sample and δ in the sweep
    attack = "bim"              # crafts the sweep's adversarial samples on the model
    examples = 5                # images in the example strip

Errors: a malformed file, an unknown key, a value of the wrong type or out of range raise
:class:`~evcsa.errors.ConfigError` with one line naming the file and the key, e.g.
``demo.toml: game.n_chosen: expected n_chosen as an integer ≥ 1, got 0``.
"""

from __future__ import annotations

import difflib
import math
import os
import pathlib
import sys
from typing import Any, Mapping

import attrs
import cattrs
import tomli_w
from cattrs.errors import BaseValidationError, ForbiddenExtraKeysError

from evcsa._text import did_you_mean
from evcsa._validation import int_at_least, one_of
from evcsa.errors import ConfigError, EvcsaError, KeyStreamError
from evcsa.games.rules import Rules
from evcsa.randomness import MasterKey

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ComponentSpec",
    "DataConfig",
    "ExperimentConfig",
    "FiguresConfig",
    "ModelConfig",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "load_config",
    "parse_config",
]


# -- validators (messages "expected ..., got ..."; key = the field) ----------------------

def _non_empty_str(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected {attribute.name} as a non-empty string, got {value!r}",
                          key=attribute.name, got=value)


def _optional_str(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _non_empty_str(instance, attribute, value)


def _master_key(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    try:
        MasterKey.from_hex(value)
    except KeyStreamError as exc:
        raise ConfigError(f"master_key: {exc}", key="master_key") from None


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _non_empty_str(instance, attribute, value)
    if not all(c.isalnum() or c in "-_." for c in value) or value.startswith("."):
        raise ConfigError(f"expected {attribute.name} of letters, digits, '-', '_' or '.' (it names a "
                          f"directory), got {value!r}", key=attribute.name, got=value)


def _list_of(kind: type, minimum: float, maximum: float, *, name_of_item: str,
             strictly_increasing: bool = False):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not value:
            raise ConfigError(f"expected {attribute.name} as a non-empty list, got {list(value)!r}",
                              key=attribute.name, got=list(value))
        for v in value:
            ok_type = isinstance(v, (int, float)) if kind is float else isinstance(v, int)
            if isinstance(v, bool) or not ok_type or not (minimum <= v <= maximum) \
                    or (isinstance(v, float) and not math.isfinite(v)):
                raise ConfigError(f"expected {attribute.name} as {name_of_item}s in "
                                  f"[{minimum:g}, {maximum:g}], got {v!r}", key=attribute.name, got=v)
        if strictly_increasing and any(b <= a for a, b in zip(value, value[1:])):
            raise ConfigError(f"expected {attribute.name} in increasing order, got {list(value)!r}",
                              key=attribute.name, got=list(value))
    return check


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# -- records ------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class DataConfig:
    """Where X_D and the legitimate test images come from.

    Attributes:
        dataset: "mnist" (embedded 5,000 digits), "digits" (8×8) or a path to a ``.npz``
            file (:func:`evcsa.data.load_npz`; relative to the config file).
        split: "all", "train" or "test" for the embedded sets; "all" for a file.
        samples: |X_D| ≥ 1: the first natural samples of the split (after filtering).
        correctly_classified: keep only natural samples the undefended model classifies
            correctly (as the feature-squeezing evaluation does), so that a success is the
            adversary's doing.
    """

    dataset: str = attrs.field(default="mnist", validator=_non_empty_str)
    split: str = attrs.field(default="test", validator=one_of(("all", "train", "test"), error=ConfigError))
    samples: int = attrs.field(default=100, validator=int_at_least(1, error=ConfigError))
    correctly_classified: bool = True


@attrs.frozen(kw_only=True)
class ModelConfig:
    """The undefended model: a reference model by name, or user weights.

    Attributes:
        reference: a key of :data:`evcsa.shipped.SHIPPED` — "mnist" and "digits" (evcsa's
            own, trained by their recipes and shipped), "mnist-carlini-evademl" (the seeds'
            model: Carlini's CNN as EvadeML-Zoo published it) — loaded from the weights
            that ship with evcsa; "mnist" when neither it nor ``weights`` is given.
        architecture: with ``weights``: a key of :data:`evcsa.models.ARCHITECTURES`.
        weights: a state-dict file (``torch.save(module.state_dict())``) for
            ``architecture``, relative to the config file (a model trained here with
            ``evcsa train`` is the ``.pt`` it prints).
    """

    reference: str | None = attrs.field(default=None, validator=_optional_str)
    architecture: str | None = attrs.field(default=None, validator=_optional_str)
    weights: str | None = attrs.field(default=None, validator=_optional_str)

    def __attrs_post_init__(self) -> None:
        if self.weights is not None and self.reference is not None:
            raise ConfigError("expected either reference or weights (with architecture), got both",
                              key="weights")
        if self.weights is None and self.reference is None:
            if self.architecture is not None:
                raise ConfigError("expected weights with architecture, got none", key="weights")
            object.__setattr__(self, "reference", "mnist")  # the default model
        if self.weights is not None and self.architecture is None:
            raise ConfigError("expected architecture with weights, got none", key="architecture")


def _check_params(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected {attribute.name} as a table, got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class ComponentSpec:
    """One ``[[defenses]]`` or ``[[adversaries]]`` table: a registry ``kind``, an optional
    ``label`` for tables and figures, and the kind's parameters (the table's other keys),
    checked against the registry by :func:`evcsa.experiments.check_config`.

    Attributes:
        kind: a key of :data:`evcsa.experiments.DEFENSES` or :data:`evcsa.experiments.ADVERSARIES`.
        label: a short name (default: derived from the kind and parameters).
        params: the other keys of the table.
    """

    kind: str = attrs.field(validator=_non_empty_str)
    label: str | None = attrs.field(default=None, validator=_optional_str)
    params: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_params,
                                            converter=lambda p: dict(p) if isinstance(p, Mapping) else p)

    @property
    def name(self) -> str:
        """``label``, or "kind(param=value, ...)"."""
        if self.label:
            return self.label
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}({inner})" if inner else self.kind


@attrs.frozen(kw_only=True)
class FiguresConfig:
    """What the figures and the δ sweep show.

    Attributes:
        taus: thresholds τ ∈ (0, 1] for Adv(N, τ) in the table (the first is the headline).
        n_values: N values (increasing) for the advantage-vs-N figure (seed 002 Fig. 6).
        deltas: δ values (increasing, in [0, 1]) for the accuracy-vs-δ figure (Fig. 5),
            applied to each squeezer of the configured squeezing defenses.
        draws: classifications per adversarial sample and δ in the sweep (p̂ per sample).
        attack: the attack (a name in :mod:`evcsa.attacks`) that crafts the sweep's
            adversarial samples on the undefended model (graybox), one per X_D sample.
        attack_params: its parameters.
        examples: images in the example strip (Fig. 4); 0 for none.
        enabled: false skips the sweep and the figures (tables only).
    """

    taus: tuple[float, ...] = attrs.field(default=(1.0,), converter=_as_tuple,
                                          validator=_list_of(float, 1e-9, 1.0, name_of_item="number"))
    n_values: tuple[int, ...] = attrs.field(default=(1, 2, 5, 10, 15, 20, 25, 30, 40, 50),
                                            converter=_as_tuple,
                                            validator=_list_of(int, 1, 10**6, name_of_item="integer",
                                                               strictly_increasing=True))
    deltas: tuple[float, ...] = attrs.field(default=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
                                            converter=_as_tuple,
                                            validator=_list_of(float, 0.0, 1.0, name_of_item="number",
                                                               strictly_increasing=True))
    draws: int = attrs.field(default=50, validator=int_at_least(1, error=ConfigError))
    attack: str = attrs.field(default="bim", validator=_non_empty_str)
    attack_params: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_params,
                                                   converter=lambda p: dict(p) if isinstance(p, Mapping) else p)
    examples: int = attrs.field(default=5, validator=int_at_least(0, error=ConfigError))
    enabled: bool = True


def _components(kind: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not value:
            raise ConfigError(f"expected at least one [[{attribute.name}]] table, got none",
                              key=attribute.name)
        names = [c.name for c in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"expected distinct {kind} labels, got {dup[0]!r} twice (set label = ...)",
                              key=attribute.name, got=dup[0])
    return check


@attrs.frozen(kw_only=True)
class ExperimentConfig:
    """A whole experiment: data, model, rules, defenses × adversaries, figures.

    Attributes:
        name: names the results directory (letters, digits, '-', '_', '.').
        seed: the public seed: the adversaries' generators and the run's own choices
            derive from it. Never the defenses' keys.
        runs: R ≥ 1, games per cell.
        reproducible: derive the defenses' keys from ``master_key``
            (:class:`~evcsa.randomness.DerivedKeys`; the same config and master key give
            the same numbers); false draws them from the OS
            (:class:`~evcsa.randomness.SystemKeys`, nothing reproducible).
        master_key: the 256-bit secret of the defenses' keys, 64 hex digits
            (:class:`~evcsa.randomness.MasterKey`); None: drawn from OS entropy when the
            run starts and recorded with its results (config.toml), so that rerunning the
            recorded configuration reproduces every number. Never given to an adversary.
        legitimate_draws: classifications of each legitimate image per defense (accuracy on
            legitimate samples; more draws narrow its interval for randomized defenses).
        device: where the model and everything that follows it runs: "cpu" (default),
            "cuda" or "auto" (cuda when available).
        executor: where the units of work run (:mod:`evcsa.experiments.executors`):
            "serial" (here, default), "processes" (a local process pool, ``jobs``
            workers) or "dask" (a Dask cluster at ``dask_address``, or a LocalCluster).
            The numbers are the same on every executor.
        jobs: worker processes for "processes" (and a LocalCluster); None: one per core.
        dask_address: the Dask scheduler's address for "dask".
        data, model, game, defenses, adversaries, figures: the sections.
        base_dir: the directory relative paths are resolved against (the config file's);
            not a TOML key.
    """

    name: str = attrs.field(default="experiment", validator=_name)
    seed: int = attrs.field(default=0, validator=int_at_least(0, error=ConfigError))
    runs: int = attrs.field(default=100, validator=int_at_least(1, error=ConfigError))
    reproducible: bool = True
    master_key: str | None = attrs.field(default=None, validator=_master_key)
    legitimate_draws: int = attrs.field(default=2, validator=int_at_least(1, error=ConfigError))
    device: str = attrs.field(default="cpu", validator=one_of(("cpu", "cuda", "auto"), error=ConfigError))
    executor: str = attrs.field(default="serial",
                                validator=one_of(("serial", "processes", "dask"), error=ConfigError))
    jobs: int | None = attrs.field(default=None, validator=int_at_least(1, optional=True, error=ConfigError))
    dask_address: str | None = attrs.field(default=None, validator=_optional_str)
    data: DataConfig = attrs.field(factory=DataConfig)
    model: ModelConfig = attrs.field(factory=ModelConfig)
    game: Rules
    defenses: tuple[ComponentSpec, ...] = attrs.field(converter=_as_tuple,
                                                      validator=_components("defense"))
    adversaries: tuple[ComponentSpec, ...] = attrs.field(converter=_as_tuple,
                                                         validator=_components("adversary"))
    figures: FiguresConfig = attrs.field(factory=FiguresConfig)
    base_dir: str = attrs.field(default=".", metadata={"toml": False})

    def resolve(self, path: str) -> pathlib.Path:
        """``path`` relative to :attr:`base_dir` (absolute paths unchanged)."""
        p = pathlib.Path(path).expanduser()
        return p if p.is_absolute() else pathlib.Path(self.base_dir) / p


# -- cattrs: strict scalars, component tables, readable errors -----------------------------

def _strict(kind: type, description: str):
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


def _wrong(value: Any, description: str) -> Any:
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
        args = getattr(type_, "__args__", ())
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
    data = clean(_CONVERTER.unstructure(config))
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

