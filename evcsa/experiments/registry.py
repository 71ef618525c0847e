"""Component registries: ``kind`` → builder for ``[[defenses]]`` and ``[[adversaries]]``
tables, the builders that turn a table into a classifier or an adversary (every failure a
one-line :class:`~evcsa.errors.ConfigError` naming the table and the key), the squeezers a
configuration sweeps, and the sweep's attack.

- :data:`DEFENSES`: ``kind`` → its parameter record (:mod:`evcsa.defenses.params`):
  "none", "feature_squeezing", "randomized_squeezing", "cropping_rescaling",
  "region_based".
- :data:`ADVERSARIES`: ``kind`` → adversary class (keyword-only attrs fields as
  parameters): "graybox_transfer", "greedy_a_star", "bpda_eot".
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import attrs
import torch

from evcsa._text import did_you_mean
from evcsa.adversaries import BPDAEOT, Adversary, DiscreteSearch, GrayboxTransfer, GreedyAStar
from evcsa.attacks import get_attack
from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.defenses import squeezer_from_spec
from evcsa.defenses.base import Classifier
from evcsa.defenses.params import DEFENSE_PARAMS, DefenseParams
from evcsa.errors import ConfigError, EvcsaError
from evcsa.experiments.plugins import failure, is_plugin, load_plugin
from evcsa.randomness import KeySource

__all__ = ["ADVERSARIES", "DEFENSES", "build_adversary", "build_defense", "squeezers_of", "sweep_attack"]


#: Defense kinds: name → its parameter record (:mod:`evcsa.defenses.params`), whose fields
#: are the keys its ``[[defenses]]`` table accepts and whose ``build(model, keys)`` makes
#: the classifier. A user may add a record of their own (a :class:`DefenseParams`
#: subclass) or a builder function ``(model, keys, **params) -> Classifier``.
DEFENSES: dict[str, type[DefenseParams] | Callable[..., Any]] = dict(DEFENSE_PARAMS)


#: Adversary kinds: name → the adversary class, constructed with the ``[[adversaries]]``
#: table's other keys as keyword arguments (its attrs fields). Any
#: :class:`~evcsa.adversaries.Adversary` subclass with keyword parameters can be added.
ADVERSARIES: dict[str, Any] = {
    "graybox_transfer": GrayboxTransfer,
    "greedy_a_star": GreedyAStar,
    "bpda_eot": BPDAEOT,
    "discrete_search": DiscreteSearch,
}

BUILTIN_DEFENSES = dict(DEFENSES)
BUILTIN_ADVERSARIES = dict(ADVERSARIES)


def _accepted(target: Callable[..., Any], skip: int) -> tuple[list[str], list[str], bool]:
    """(accepted keyword names, required ones, accepts **kwargs) of an attrs class (a
    defense's parameter record, an adversary) from its fields, or of a user's builder
    function, whose first ``skip`` parameters are not configuration keys, from its
    signature."""
    if isinstance(target, type) and attrs.has(target):
        fields = [f for f in attrs.fields(target) if f.init]
        return ([f.alias for f in fields],
                [f.alias for f in fields if f.default is attrs.NOTHING], False)
    params = list(inspect.signature(target).parameters.values())[skip:]
    named = [p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return ([p.name for p in named], [p.name for p in named if p.default is p.empty],
            any(p.kind == p.VAR_KEYWORD for p in params))


def _component_error(where: str, spec: ComponentSpec, exc: BaseException) -> ConfigError:
    """A one-line ConfigError for a component that failed to build."""
    if isinstance(exc, EvcsaError):
        key = exc.details.get("key")
        if key is None:  # the parameter the message names, when exactly one
            named = [k for k in spec.params if re.search(rf"\b{re.escape(k)}\b", exc.message)]
            key = named[0] if len(named) == 1 else None
        path = f"{where}.{key}" if key else where
        return ConfigError(f"{path}: {exc.message}", key=path)
    return ConfigError(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                       key=where)


def _check_params(where: str, spec: ComponentSpec, builder: Callable[..., Any], skip: int) -> None:
    names, required, var_kw = _accepted(builder, skip)
    if not var_kw:
        for key in spec.params:
            if key not in names:
                raise ConfigError(f"{where}.{key}: unknown key for kind {spec.kind!r} (expected one of: "
                                  f"kind, label, {', '.join(names)}){did_you_mean(key, names)}",
                                  key=f"{where}.{key}")
    for key in required:
        if key not in spec.params:
            raise ConfigError(f"{where}.{key}: required key missing for kind {spec.kind!r}",
                              key=f"{where}.{key}")


def build_defense(spec: ComponentSpec, model: Classifier | torch.nn.Module, keys: KeySource | None, *,
                  where: str = "defense",
                  base_dir: str | None = None) -> Any:
    """The classifier a ``[[defenses]]`` table describes, around ``model``.

    Args:
        spec: the table; its ``kind`` is a key of :data:`DEFENSES` or a plugin
            ``"package.module:Name"`` (a builder ``(model, keys, **params)`` or a class
            constructed the same way; :mod:`evcsa.experiments.plugins`).
        model: the undefended :class:`~evcsa.defenses.ModelClassifier`.
        keys: the defense's :class:`~evcsa.randomness.KeySource`.
        where: the table's position for error messages, e.g. "defenses[2]".
        base_dir: where a plugin module beside the configuration is looked for.

    Raises:
        ConfigError: an unknown kind, an unknown or missing key, or a bad value (the message
            names ``where`` and the key).
    """
    return _build(DEFENSES, spec, where, base_dir, model, keys)


def build_adversary(spec: ComponentSpec, *, where: str = "adversary", base_dir: str | None = None) -> Adversary:
    """The adversary an ``[[adversaries]]`` table describes: ``kind`` is a key of
    :data:`ADVERSARIES` or a plugin ``"package.module:Name"`` (an
    :class:`~evcsa.adversaries.Adversary` subclass); an ``attack`` parameter may be a
    plugin too (an attack function ``(model, x, y, *, target=None, **params)``).

    Raises:
        ConfigError: as :func:`build_defense`.
    """
    attack = spec.params.get("attack")
    if isinstance(attack, str) and is_plugin(attack):
        params = dict(spec.params)
        params["attack"] = load_plugin(attack, base_dir=base_dir, where=f"{where}.attack")
        spec = attrs.evolve(spec, params=params)
    built = _build(ADVERSARIES, spec, where, base_dir)
    if not isinstance(built, Adversary):  # (a plugin's is checked in _build; a kind added to ADVERSARIES here)
        raise ConfigError(f"{where}.kind: expected {spec.kind!r} to build an evcsa.adversaries.Adversary, "
                          f"got {type(built).__name__}", key=f"{where}.kind")
    return built


def _build(registry: dict[str, Any], spec: ComponentSpec, where: str, base_dir: str | None, *args: Any) -> Any:
    """``registry[spec.kind](*args, **spec.params)`` (or the plugin ``spec.kind`` names),
    every failure a ConfigError naming ``where`` and the key."""
    if is_plugin(spec.kind):
        builder = load_plugin(spec.kind, base_dir=base_dir, where=f"{where}.kind")
        if not callable(builder):
            raise ConfigError(f"{where}.kind: expected {spec.kind!r} to be a class or a function, got "
                              f"{type(builder).__name__}", key=f"{where}.kind")
    elif spec.kind not in registry:
        raise ConfigError(f"{where}.kind: expected one of {tuple(registry)} (or a plugin 'package.module:Name'), got "
                          f"{spec.kind!r}{did_you_mean(spec.kind, registry)}", key=f"{where}.kind")
    else:
        builder = registry[spec.kind]
    _check_params(where, spec, builder, len(args))
    plugin = is_plugin(spec.kind)
    try:
        if isinstance(builder, type) and issubclass(builder, DefenseParams):
            built = builder(**spec.params).build(*args)
        else:
            built = builder(*args, **spec.params)
    except (EvcsaError, TypeError, ValueError) as exc:
        raise _component_error(where, spec, exc) from exc
    except (Exception, SystemExit) as exc:
        if not plugin:
            raise
        raise ConfigError(f"{where}.kind: plugin {spec.kind!r} failed to build: {failure(exc)}",
                          key=f"{where}.kind") from exc
    if plugin:
        _check_built(where, spec, built, defense=bool(args))
    return built


def _check_built(where: str, spec: ComponentSpec, built: Any, *, defense: bool) -> None:
    """A plugin must build what the game takes: a classifier (``predict``) or an
    :class:`~evcsa.adversaries.Adversary`."""
    if defense:
        if not callable(getattr(built, "predict", None)):
            raise ConfigError(f"{where}.kind: expected plugin {spec.kind!r} to build a classifier (with "
                              f"predict(x) -> labels), got {type(built).__name__}", key=f"{where}.kind")
        return
    if not isinstance(built, Adversary):
        raise ConfigError(f"{where}.kind: expected plugin {spec.kind!r} to build an evcsa.adversaries.Adversary, "
                          f"got {type(built).__name__}", key=f"{where}.kind")


def squeezers_of(config: ExperimentConfig) -> list[str]:
    """The distinct squeezer specs of the configuration's squeezing defenses, in order of
    appearance: what the δ sweep varies δ for."""
    out: list[str] = []
    for spec in config.defenses:
        value = spec.params.get("squeezer", spec.params.get("squeezers"))
        if spec.kind in ("feature_squeezing", "randomized_squeezing") and value is not None:
            name = squeezer_from_spec(value).spec
            if name not in out:
                out.append(name)
    return out


def sweep_attack(config: ExperimentConfig) -> Any:
    """The :class:`~evcsa.attacks.AttackSpec` that crafts the δ sweep's adversarial samples
    (``figures.attack`` with ``figures.attack_params``).

    Raises:
        ConfigError: an unknown attack or parameter, naming ``figures.attack``.
    """
    try:
        spec = get_attack(config.figures.attack)
        return spec.with_params(**config.figures.attack_params) if config.figures.attack_params else spec
    except EvcsaError as exc:
        raise ConfigError(f"figures.attack: {exc.message}", key="figures.attack") from exc


