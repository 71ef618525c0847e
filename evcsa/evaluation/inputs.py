"""What an evaluation is given, resolved: the defense (a shipped kind, a plugin
``package.module:Name``, or an object), the undefended model, the data, the rules.

Every failure is an :class:`~evcsa.errors.InvalidParameter` (a
:class:`~evcsa.errors.ConfigError` for names and tables) reading "expected …, got …".
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import attrs
import torch

from evcsa._text import did_you_mean
from evcsa.config import ComponentSpec
from evcsa.data import ImageSet, from_torch_dataset, load_dataset
from evcsa.defenses.base import Classifier, ModelClassifier
from evcsa.errors import ConfigError, EvcsaError, InvalidParameter
from evcsa.experiments.plugins import is_plugin, load_plugin
from evcsa.experiments.registry import DEFENSES, build_defense
from evcsa.games.rules import Rules
from evcsa.models import REFERENCE_CONFIGS, reference_model

__all__ = ["DEFAULT_RULES", "DefenseInput", "resolve_data", "resolve_defense", "resolve_model", "resolve_rules"]

#: The seed's game (seed 000 Fig. 1 as the demo plays it): N = 25, ε = 0.3 L∞, untargeted
#: against the true label, one x′ per source, ŷ′ withheld, whitebox knowledge.
DEFAULT_RULES = Rules(n_chosen=25, epsilon=0.3, norm="linf")


@attrs.frozen(kw_only=True, eq=False)
class DefenseInput:
    """The resolved defense.

    Attributes:
        classifier: the defended classifier (its keys derive from the evaluation's master
            key when evaluate built it; an object keeps its own).
        model: the undefended :class:`~evcsa.defenses.ModelClassifier` under it.
        spec: the ``[[defenses]]`` table that names it (results.json, config.toml).
        name: its description in the report.
        built: whether evaluate built it from a kind or plugin (else: the caller's object).
    """

    classifier: Any = attrs.field(repr=False)
    model: ModelClassifier = attrs.field(repr=False)
    spec: ComponentSpec
    name: str
    built: bool


def resolve_model(model: Any, *, cache_dir: str | None = None, base_dir: str | None = None) -> ModelClassifier:
    """The undefended model: a reference name ("mnist", "digits"), a
    :class:`~evcsa.defenses.ModelClassifier`, a ``torch.nn.Module`` returning logits, or a
    plugin ``package.module:Name`` naming one of those (or a function of no arguments
    returning one).

    Raises:
        InvalidParameter: anything else (ConfigError for a bad name).
    """
    if isinstance(model, str):
        if is_plugin(model):
            obj = load_plugin(model, base_dir=base_dir, where="model")
            if not isinstance(obj, (ModelClassifier, torch.nn.Module)) and callable(obj):
                obj = obj()
            if not isinstance(obj, (ModelClassifier, torch.nn.Module)):
                raise ConfigError(f"model: expected {model} to be a ModelClassifier or torch.nn.Module (or a function "
                                  f"returning one), got {type(obj).__name__}", key="model")
            return obj if isinstance(obj, ModelClassifier) else ModelClassifier(obj)
        if model not in REFERENCE_CONFIGS:
            raise ConfigError(f"model: expected a reference model in {tuple(REFERENCE_CONFIGS)} or a plugin "
                              f"'package.module:Name', got {model!r}{did_you_mean(model, REFERENCE_CONFIGS)}",
                              key="model")
        return reference_model(model, cache_dir=cache_dir, progress=False)
    if isinstance(model, ModelClassifier):
        return model
    if isinstance(model, torch.nn.Module):
        return ModelClassifier(model)
    raise InvalidParameter(f"expected model as a reference name, a ModelClassifier or a torch.nn.Module, got "
                           f"{type(model).__name__}", got=type(model).__name__)


def _call_builder(builder: Any, model: ModelClassifier, keys: Any, params: Mapping[str, Any], where: str) -> Any:
    """``builder(model, keys=keys, **params)`` when it takes a ``keys`` parameter (the
    registry's builders, and a defense class such as ``UniformNoise(base, delta, keys=None)``),
    else ``builder(model, **params)``."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        signature = None
    takes_keys = signature is not None and "keys" in signature.parameters
    try:
        return builder(model, keys=keys, **params) if takes_keys else builder(model, **params)
    except EvcsaError as exc:
        raise ConfigError(f"{where}: {exc.message}", key=where) from exc
    except TypeError as exc:
        raise ConfigError(f"{where}: expected {getattr(builder, '__name__', builder)!r} to be called as "
                          f"Name(model{', keys=keys' if takes_keys else ''}, **params), got TypeError: {exc}",
                          key=where) from exc


def _is_classifier(obj: Any) -> bool:
    return isinstance(obj, Classifier) or (callable(getattr(obj, "predict", None)) and not isinstance(obj, type))


def _spec_name(kind: str, params: Mapping[str, Any]) -> str:
    """A short name: the demo's for shipped kinds ("median-2x2 δ=0.5"), else "Name(k=v, …)"."""
    p = dict(params)
    if kind == "randomized_squeezing" and {"squeezer", "delta"} <= set(p):
        return f"{p['squeezer']} δ={p['delta']}"
    if kind == "feature_squeezing" and "squeezers" in p and len(p) == 1:
        value = p["squeezers"]
        return value if isinstance(value, str) else "+".join(map(str, value))
    if kind == "none" and not p:
        return "undefended"
    short = kind.split(":")[-1]
    inner = ", ".join(f"{k}={v}" for k, v in p.items())
    return f"{short}({inner})" if inner else short


def resolve_defense(defense: Any, *, params: Mapping[str, Any] | None = None, model: Any = None, keys: Any,
                    cache_dir: str | None = None, base_dir: str | None = None, label: str | None = None
                    ) -> DefenseInput:
    """The defense under evaluation.

    Args:
        defense: a shipped kind (a key of :data:`evcsa.experiments.DEFENSES`), a plugin
            ``package.module:Name`` (a Classifier or ``nn.Module`` object, or a class or
            function called as ``Name(model, keys=keys, **params)`` — ``keys`` only when it
            takes a ``keys`` parameter), a Classifier object, or an ``nn.Module`` (the
            undefended model itself).
        params: the kind's or builder's parameters (not with an object).
        model: the undefended model (:func:`resolve_model`); default: the object's own
            ``model``, else the reference "mnist".
        keys: the key source a built randomized defense draws from.
        cache_dir: the model cache.
        base_dir: where a plugin module is looked for (put on ``sys.path``).
        label: the defense's name in the report.

    Raises:
        InvalidParameter: as :func:`resolve_model`; ConfigError for an unknown kind, a
            plugin that does not load or build, params with an object.
    """
    params = dict(params or {})
    if isinstance(defense, str) and not is_plugin(defense):
        if defense not in DEFENSES:
            raise ConfigError(f"defense: expected one of {tuple(DEFENSES)} or a plugin 'package.module:Name', got "
                              f"{defense!r}{did_you_mean(defense, DEFENSES)}", key="defense")
        base = resolve_model("mnist" if model is None else model, cache_dir=cache_dir, base_dir=base_dir)
        name = label or _spec_name(defense, params)
        spec = ComponentSpec(kind=defense, label=name, params=params)
        built = build_defense(spec, base, keys, where="defense", base_dir=base_dir)
        return DefenseInput(classifier=built, model=base, spec=spec, name=name, built=True)
    if isinstance(defense, str):
        obj = load_plugin(defense, base_dir=base_dir, where="defense")
        if _is_classifier(obj) or isinstance(obj, torch.nn.Module):
            if params:
                raise ConfigError(f"defense: expected no parameters for {defense} (an object, not a builder), got "
                                  f"{sorted(params)}", key="defense")
            resolved = _from_object(obj, model, cache_dir, base_dir, label or defense)
            return attrs.evolve(resolved, spec=ComponentSpec(kind=defense, label=resolved.name))
        if not callable(obj):
            raise ConfigError(f"defense: expected {defense} to be a Classifier, an nn.Module, a class or a function, "
                              f"got {type(obj).__name__}", key="defense")
        base = resolve_model("mnist" if model is None else model, cache_dir=cache_dir, base_dir=base_dir)
        built = _call_builder(obj, base, keys, params, "defense")
        if isinstance(built, torch.nn.Module):
            built = ModelClassifier(built)
        if not _is_classifier(built):
            raise ConfigError(f"defense: expected {defense}(model, ...) to return a classifier (with predict), got "
                              f"{type(built).__name__}", key="defense")
        name = label or _spec_name(defense, params)
        return DefenseInput(classifier=built, model=base, spec=ComponentSpec(kind=defense, label=name, params=params),
                            name=name, built=True)
    if params:
        raise InvalidParameter(f"expected no params with a defense object, got {sorted(params)} (configure the "
                               "object itself)", got=sorted(params))
    if not (_is_classifier(defense) or isinstance(defense, torch.nn.Module)):
        raise InvalidParameter(f"expected defense as a kind, a plugin 'package.module:Name', a Classifier or a "
                               f"torch.nn.Module, got {type(defense).__name__}", got=type(defense).__name__)
    return _from_object(defense, model, cache_dir, base_dir, label)


def _from_object(obj: Any, model: Any, cache_dir: str | None, base_dir: str | None, label: str | None
                 ) -> DefenseInput:
    if isinstance(obj, torch.nn.Module):
        obj = ModelClassifier(obj)
    if model is not None:
        base = resolve_model(model, cache_dir=cache_dir, base_dir=base_dir)
    else:
        own = getattr(obj, "model", None)
        if not isinstance(own, ModelClassifier):
            raise InvalidParameter(f"expected the undefended model: {type(obj).__name__} has no .model "
                                   "ModelClassifier, so pass model=...", got=type(obj).__name__)
        base = own
    cls = type(obj)
    name = label or _describe(obj)
    kind = f"{cls.__module__}:{cls.__qualname__}"
    return DefenseInput(classifier=obj, model=base, spec=ComponentSpec(kind=kind, label=name), name=name, built=False)


def _describe(obj: Any) -> str:
    text = repr(obj)
    if len(text) > 80 or " object at 0x" in text:
        return type(obj).__name__
    return text


def resolve_data(data: Any, split: str, *, base_dir: str | None = None) -> ImageSet:
    """The data an evaluation draws X_D and the legitimate images from: "mnist" (default,
    embedded) or "digits" with ``split``; a ``.npz`` path (split "all"); a plugin
    ``package.module:Name`` (a function of the split returning an ImageSet, or a data
    object); an :class:`~evcsa.data.ImageSet`; a torch Dataset of (image, label) pairs; an
    (images, labels) pair.

    Raises:
        DataError, InvalidParameter: what the loaders raise; an unknown kind of data.
    """
    if data is None:
        data = "mnist"
    if isinstance(data, str) and is_plugin(data):
        obj = load_plugin(data, base_dir=base_dir, where="data")
        data = obj(split) if callable(obj) and not hasattr(obj, "__getitem__") else obj
        if isinstance(data, str):
            raise ConfigError(f"data: expected {data!r} to give images, got a string", key="data")
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, str):
        return load_dataset(data, split if not data.endswith(".npz") else "all")
    if hasattr(data, "__fspath__"):
        return load_dataset(str(data), "all")
    if isinstance(data, tuple) and len(data) == 2:
        return ImageSet(images=data[0], labels=data[1], name="images")
    if hasattr(data, "__getitem__") or hasattr(data, "__iter__"):
        return from_torch_dataset(data)
    raise InvalidParameter(f"expected data as 'mnist', 'digits', a .npz path, an ImageSet, a torch Dataset or "
                           f"(images, labels), got {type(data).__name__}", got=type(data).__name__)


def resolve_rules(rules: Any) -> Rules:
    """A :class:`~evcsa.games.Rules` record, a mapping of its fields over
    :data:`DEFAULT_RULES`, or None (the default).

    Raises:
        ConfigError: an unknown field or a bad value.
    """
    if rules is None:
        return DEFAULT_RULES
    if isinstance(rules, Rules):
        return rules
    if isinstance(rules, Mapping):
        names = [f.name for f in attrs.fields(Rules)]
        for key in rules:
            if key not in names:
                raise ConfigError(f"rules.{key}: unknown field (expected one of: {', '.join(names)})"
                                  f"{did_you_mean(str(key), names)}", key=f"rules.{key}")
        try:
            return attrs.evolve(DEFAULT_RULES, **dict(rules))
        except InvalidParameter as exc:
            key = exc.details.get("key")
            raise ConfigError(f"rules{'.' + key if key else ''}: {exc.message}", key=f"rules.{key}") from exc
    raise InvalidParameter(f"expected rules as a Rules record or a mapping of its fields, got {type(rules).__name__}")
