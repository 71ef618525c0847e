"""The records of an experiment configuration (frozen attrs, with validators whose
messages read "expected …, got …" and whose ``key`` is the field): the sections of the
TOML format :mod:`evcsa.config` describes."""

from __future__ import annotations

import math
import pathlib
from typing import Any, Mapping

import attrs

from evcsa._values import Validator, int_at_least, non_empty_str, one_of
from evcsa.errors import ConfigError, KeyStreamError
from evcsa.keys import MasterKey
from evcsa.terms import Rules

__all__ = ["ComponentSpec", "DataConfig", "ExperimentConfig", "FiguresConfig", "ModelConfig"]


# -- validators (messages "expected ..., got ..."; key = the field) ----------------------

_non_empty_str = non_empty_str(error=ConfigError)
_optional_str = non_empty_str(optional=True, error=ConfigError)


def _master_key(instance: object, attribute: attrs.Attribute, value: Any) -> None:
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
             strictly_increasing: bool = False) -> Validator:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
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


def _as_dict(value: object) -> object:
    """A mapping as a dict (anything else unchanged, for the validator to reject)."""
    return dict(value) if isinstance(value, Mapping) else value


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


def _check_params(instance: object, attribute: attrs.Attribute, value: Any) -> None:
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
                                            converter=_as_dict)

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
                                                   converter=_as_dict)
    examples: int = attrs.field(default=5, validator=int_at_least(0, error=ConfigError))
    enabled: bool = True


def _components(kind: str) -> Validator:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
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
