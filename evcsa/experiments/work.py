"""What each unit of work computes (:mod:`evcsa.experiments.units`), as pure functions of the
configuration, the unit's parameters and its dependencies' outputs.

:func:`execute` is what an executor runs — here, in a process-pool worker or on a Dask
worker: it loads the inputs (cached per process), builds the components (registry entries
and ``package.module:Name`` plugins alike) and returns an :class:`Output` — JSON-ready
records and numpy arrays — which the main process commits to the store. Nothing here
writes to disk.

Randomness: a cell's defense keys and the adversary's generator derive from the master seed
and the two labels (:mod:`evcsa.experiments.seeds`); game i of a cell gets child i + 1 of
the cell's seed sequence (child 0 prepares), exactly as :meth:`evcsa.games.EVCSA.repeat`
numbers them, so a cell split into chunks of games plays the same games. A shared
(graybox) crafting derives its generator from the adversary's kind and parameters, not from
any defense, so every defense meets the same adversarial set.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from typing import Any, Mapping

import attrs
import numpy as np

from evcsa.config import ExperimentConfig
from evcsa.errors import InvalidOutput

__all__ = ["Output", "check_output", "execute"]


@attrs.frozen(kw_only=True, eq=False)
class Output:
    """What a unit produced.

    Attributes:
        record: JSON-ready values (numbers, strings, lists, dicts).
        arrays: name → numpy array (stored in the unit's ``.npz``).
        seconds: wall time of the computation.
    """

    record: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = attrs.field(factory=dict)
    seconds: float = 0.0


_SETUP: dict[str, Any] = {}


def _setup_worker(threads: int | None, registries: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Once per worker process: torch threads; the main process's extra registry entries."""
    from evcsa.experiments.registry import ADVERSARIES, DEFENSES

    if threads is not None and _SETUP.get("threads") != threads:
        import torch

        torch.set_num_threads(threads)
        _SETUP["threads"] = threads
    for name, extra in (registries or {}).items():
        target = DEFENSES if name == "defenses" else ADVERSARIES
        for kind, builder in extra.items():
            target.setdefault(kind, builder)


def execute(task: Mapping[str, Any]) -> Output:
    """Run one unit: ``task`` = {"config", "unit", "deps" (role → Output), "cache_dir",
    "threads", "registries"}. Pure: the same task gives the same output anywhere.

    The output is checked (:func:`check_output`) before it is returned, so nothing
    malformed reaches the store.

    Raises:
        InvalidOutput: a component answered something the unit cannot store (a
            classifier's labels of the wrong shape, dtype or range; an adversary's NaN or
            out-of-range p̂), or the output fails its checks; the message starts with the
            unit's name.
        ModelTampered: the unit changed the shared model or data in place.
    """
    from evcsa.errors import ModelTampered
    from evcsa.experiments.inputs import forget_inputs, inputs_digest

    _setup_worker(task.get("threads"), task.get("registries"))
    unit = task["unit"]
    start = time.perf_counter()
    fn = _KINDS[unit.kind]
    config = task["config"]
    inputs = _inputs(config, task.get("cache_dir"))
    before = inputs_digest(inputs)
    try:
        out = fn(config, dict(unit.params), task.get("deps") or {}, task.get("cache_dir"))
        if inputs_digest(inputs) != before:  # a defense or adversary wrote to the shared model or data
            forget_inputs()  # whatever runs next in this process loads them afresh
            raise ModelTampered(f"expected {unit.name} to leave the model and the data unchanged, got them changed "
                                "in place (a defense or an adversary writes to the model it is given); nothing of "
                                "this unit is stored: change that code to work on its own copy")
        check_output(unit, out, facts_of(config, inputs))
    except InvalidOutput as exc:
        raise _named(exc, unit) from exc
    return attrs.evolve(out, seconds=time.perf_counter() - start)


def _named(exc: InvalidOutput, unit: Any) -> InvalidOutput:
    """``exc`` with the unit's name in front of its message (once)."""
    if exc.message.startswith(f"{unit.name}: "):
        return exc
    details = {k: v for k, v in exc.details.items() if k != "unit"}
    return InvalidOutput(f"{unit.name}: {exc.message}", unit=unit.name, **details)


def warm(config: ExperimentConfig, cache_dir: str | None) -> int:
    """Load the inputs in this (worker) process ahead of the first unit; returns the pid."""
    import os

    _inputs(config, cache_dir)
    return os.getpid()


# -- helpers -------------------------------------------------------------------------------

def _inputs(config: ExperimentConfig, cache_dir: str | None) -> Any:
    from evcsa.experiments.inputs import load_inputs

    return load_inputs(config, cache_dir=cache_dir)


def _game(config: ExperimentConfig, classifier: Any, inputs: Any, rules: Any = None) -> Any:
    from evcsa.games import EVCSA

    return EVCSA.from_rules(classifier, inputs.samples.images, inputs.samples.labels, rules or config.game,
                            model=inputs.model, num_classes=inputs.model.num_classes)


def _adversary(config: ExperimentConfig, a: int) -> Any:
    from evcsa.experiments.registry import build_adversary

    return build_adversary(config.adversaries[a], where=f"adversaries[{a}]", base_dir=config.base_dir)


def _defense(config: ExperimentConfig, d: int, inputs: Any, keys: Any) -> Any:
    from evcsa.experiments.registry import build_defense

    return build_defense(config.defenses[d], inputs.model, keys, where=f"defenses[{d}]", base_dir=config.base_dir)


def cell_seed(config: ExperimentConfig, d: int, a: int) -> int:
    """The seed of cell (d, a)'s series of games (from the master seed and the labels)."""
    from evcsa.experiments.seeds import _seed

    return _seed(config, "cell", config.defenses[d].name, config.adversaries[a].name)


def _cell_keys(config: ExperimentConfig, d: int, a: int) -> Any:
    from evcsa.experiments.seeds import _keys

    return _keys(config, "cell", config.defenses[d].name, config.adversaries[a].name)


def _prepare(game: Any, adversary: Any, knowledge: Any) -> Any:
    """The game's own prepare (it checks the model is left unchanged) where available."""
    prepare = getattr(game, "_prepare", None)
    return prepare(adversary, knowledge) if callable(prepare) else adversary.prepare(knowledge)


def _candidates_arrays(c: Any) -> dict[str, np.ndarray]:
    arrays = {"sources": np.asarray(c.sources, dtype=np.int64), "x_adv": c.x_adv.detach().cpu().numpy(),
              "failed": np.asarray(c.failed, dtype=bool)}
    if c.targets is not None:
        arrays["targets"] = np.asarray(c.targets, dtype=np.int64)
    h = c.health
    for name in ("evaluations", "zero_evaluations", "nonfinite_evaluations", "missing"):
        arrays[f"health_{name}"] = np.asarray(getattr(h, name))
    if c.offline is not None:
        o = c.offline
        for name in ("successes", "draws", "low", "high"):
            arrays[f"offline_{name}"] = np.asarray(getattr(o, name))
    return arrays


def _candidates(arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> Any:
    import torch

    from evcsa.adversaries._common import Candidates, SuccessEstimates
    from evcsa.attacks.gradients import GradientHealth

    health = GradientHealth(**{n: arrays[f"health_{n}"] for n in ("evaluations", "zero_evaluations",
                                                                   "nonfinite_evaluations", "missing")})
    offline = None
    if "offline_successes" in arrays:
        offline = SuccessEstimates(successes=arrays["offline_successes"], draws=arrays["offline_draws"],
                                   alpha=float(record["offline_alpha"]), mode=str(record["offline_mode"]),
                                   low=arrays["offline_low"], high=arrays["offline_high"])
    return Candidates(sources=np.asarray(arrays["sources"], dtype=np.int64),
                      x_adv=torch.from_numpy(np.ascontiguousarray(arrays["x_adv"])),
                      targets=np.asarray(arrays["targets"], dtype=np.int64) if "targets" in arrays else None,
                      failed=np.asarray(arrays["failed"], dtype=bool), health=health, offline=offline)


# -- checking what a unit stores ---------------------------------------------------------------

@attrs.frozen(kw_only=True)
class _Facts:
    """What a unit's output is checked against: |X_D|, the image shape, K, the size of the
    legitimate set and N."""

    samples: int
    image_shape: tuple[int, ...]
    num_classes: int
    legitimate: int
    n_chosen: int


def facts_of(config: ExperimentConfig, inputs: Any) -> _Facts:
    """What :func:`check_output` checks a unit of ``config`` against, from its loaded inputs."""
    return _Facts(samples=len(inputs.samples), image_shape=tuple(inputs.samples.image_shape),
                  num_classes=int(inputs.model.num_classes), legitimate=len(inputs.legitimate),
                  n_chosen=int(config.game.n_chosen))


def _range(a: np.ndarray) -> str:
    """"values in [lo, hi]" (or the count of NaN/inf) of a numeric array, for messages."""
    a = np.asarray(a)
    if a.size == 0:
        return "no values"
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return f"{int((~np.isfinite(a)).sum())} NaN or infinite value(s)"
    return f"values in [{a.min()}, {a.max()}]"


def _integers(a: Any, what: str, *, low: int | None = None, high: int | None = None,
              length: int | None = None) -> np.ndarray:
    """``a`` as int64 [n] when it holds integers in [low, high) (``length`` of them), else
    InvalidOutput. An empty array of any dtype passes."""
    arr = np.asarray(a)
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidOutput(f"expected {what} as integers, got dtype {arr.dtype}", got=str(arr.dtype))
    if arr.ndim > 1:
        raise InvalidOutput(f"expected {what} as a 1-D array, got shape {arr.shape}", got=arr.shape)
    arr = arr.astype(np.int64).reshape(-1)
    if length is not None and arr.shape[0] != length:
        raise InvalidOutput(f"expected {length} {what}, got {arr.shape[0]}", expected=length, got=int(arr.shape[0]))
    if arr.size and ((low is not None and arr.min() < low) or (high is not None and arr.max() >= high)):
        lo = "−∞" if low is None else low
        hi = "∞" if high is None else high - 1
        raise InvalidOutput(f"expected {what} in [{lo}, {hi}], got {_range(arr)}", got=_range(arr))
    return arr


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidOutput(f"expected {what} as an integer, got {value!r}", got=repr(value))
    return int(value)


def _pair(value: Any, what: str, legitimate: int | None = None) -> None:
    """A [correct, trials] pair: see :func:`_check_counts`."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InvalidOutput(f"expected {what} as [correct, trials], got {value!r}", got=repr(value))
    _check_counts(value[0], value[1], what, legitimate)


def _check_counts(correct: Any, trials: Any, what: str, legitimate: int | None) -> None:
    """0 ≤ correct ≤ trials, trials ≥ 1 (a multiple of the legitimate set's size when given)."""
    correct, trials = _integer(correct, f"{what} correct"), _integer(trials, f"{what} trials")
    if trials < 1:
        raise InvalidOutput(f"expected {what} trials ≥ 1, got {trials}", got=trials)
    if legitimate is not None and trials % legitimate:
        raise InvalidOutput(f"expected {what} trials a multiple of the {legitimate} legitimate images, got {trials}",
                            got=trials)
    if not 0 <= correct <= trials:
        raise InvalidOutput(f"expected 0 ≤ {what} correct ≤ trials = {trials}, got {correct}", got=correct)


def _images(a: Any, what: str, shape: tuple[int, ...]) -> None:
    """float32 [n, *shape], finite, in [0, 1]."""
    arr = np.asarray(a)
    if arr.dtype != np.float32 or arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != tuple(shape):
        raise InvalidOutput(f"expected {what} as float32 [n, {', '.join(map(str, shape))}], got dtype {arr.dtype} "
                            f"and shape {arr.shape}", got=str(arr.shape))
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise InvalidOutput(f"expected {what} finite in [0, 1], got {_range(arr)}", got=_range(arr))


def _probabilities(a: Any, what: str, length: int | None = None) -> None:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        want = f"[{length}]" if length is not None else "[n]"
        raise InvalidOutput(f"expected {what} as real numbers {want}, got dtype {arr.dtype} and shape {arr.shape}")
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise InvalidOutput(f"expected {what} in [0, 1], got {_range(arr)}", got=_range(arr))


def _check_candidates(out: Output, facts: _Facts) -> None:
    form = out.record.get("form")
    if form not in ("candidates", "self", "pickle", "replay"):
        raise InvalidOutput(f"expected a crafting of form candidates, self, pickle or replay, got {form!r}")
    if form != "candidates":
        return
    a = out.arrays
    _images(a["x_adv"], "the crafted x′", facts.image_shape)
    c = int(np.asarray(a["x_adv"]).shape[0])
    if out.record.get("candidates") != c:
        raise InvalidOutput(f"expected the record to count the {c} candidates, got {out.record.get('candidates')!r}")
    _integers(a["sources"], "candidate sources", low=0, high=facts.samples, length=c)
    if "targets" in a:
        _integers(a["targets"], "candidate targets", low=0, high=facts.num_classes, length=c)
    failed = np.asarray(a["failed"])
    if failed.dtype != bool or failed.shape != (c,):
        raise InvalidOutput(f"expected failed as bool [{c}], got dtype {failed.dtype} and shape {failed.shape}")


def _check_play(unit: Any, out: Output, facts: _Facts) -> None:
    a, n_max = out.arrays, facts.n_chosen
    start, stop = int(unit.params["start"]), int(unit.params["stop"])
    games = stop - start
    if out.record.get("games") != games:
        raise InvalidOutput(f"expected {games} games, got {out.record.get('games')!r}")
    successes = _integers(a["game_successes"], "per-game successes", low=0, high=n_max + 1, length=games)
    submissions = _integers(a["game_submissions"], "per-game submissions", low=0, high=n_max + 1, length=games)
    if (successes > submissions).any():
        g = int(np.argmax(successes > submissions))
        raise InvalidOutput(f"expected successes ≤ submissions in every game, got {successes[g]} > "
                            f"{submissions[g]} in game {start + g}")
    for k in ("classify_queries", "stale_queries"):
        _integers(a[f"game_{k}"], f"per-game {k.replace('_', ' ')}", low=0, length=games)
    rows = int(submissions.sum())
    game = _integers(a["sub_game"], "submission games", low=start, high=stop, length=rows)
    _integers(a["sub_position"], "submission positions", low=0, high=n_max, length=rows)
    _integers(a["sub_source"], "submission sources", low=0, high=facts.samples, length=rows)
    _integers(a["sub_target"], "submission targets", low=-1, high=facts.num_classes, length=rows)
    _integers(a["sub_label"], "submission labels C(x′)", low=-1, high=facts.num_classes, length=rows)
    _integers(a["sub_reference"], "submission references", low=-1, high=facts.num_classes, length=rows)
    _integers(a["sub_true_label"], "submission true labels", low=0, high=facts.num_classes, length=rows)
    success = np.asarray(a["sub_success"])
    if success.dtype != bool or success.shape != (rows,):
        raise InvalidOutput(f"expected submission successes as bool [{rows}], got {success.dtype} {success.shape}")
    if not np.array_equal(np.bincount(game - start, weights=success, minlength=games).astype(np.int64), successes):
        raise InvalidOutput("expected each game's successes to count its successful submissions, got other counts")
    distance = np.asarray(a["sub_distance"], dtype=np.float64)
    if distance.shape != (rows,) or (distance.size and not (np.isfinite(distance).all() and distance.min() >= 0)):
        raise InvalidOutput(f"expected submission distances finite ≥ 0 [{rows}], got {_range(distance)}")
    _images(a["samples"], "the submitted samples", facts.image_shape)
    _integers(a["sub_sample"], "submission sample indices", low=0, high=int(np.asarray(a["samples"]).shape[0]),
              length=rows)
    if "est_weighted" in a:
        weighted = np.asarray(a["est_weighted"], dtype=np.float64)
        draws = _integers(a["est_draws"], "p̂ draws", low=0)
        _integers(a["est_sources"], "p̂ sources", low=0, high=facts.samples, length=draws.shape[0])
        if weighted.shape != draws.shape or (weighted.size and not (
                np.isfinite(weighted).all() and weighted.min() >= 0 and (weighted <= draws + 1e-9 * draws).all())):
            raise InvalidOutput(f"expected the adversary's p̂ in [0, 1], got successes {_range(weighted)} for "
                                f"draws {_range(draws)}")


def check_output(unit: Any, out: Output, facts: _Facts) -> None:
    """Check a unit's output the way the game checks a classifier's answer — shapes, dtypes,
    label ranges, finiteness, counts ≤ totals — before anything is committed to a store.

    Args:
        unit: the :class:`~evcsa.experiments.units.Unit` (its kind, name and parameters).
        out: what it produced.
        facts: |X_D|, the image shape, K, the legitimate set's size and N.

    Raises:
        InvalidOutput: "<unit name>: expected …, got …".
    """
    try:
        if not isinstance(out, Output):
            raise InvalidOutput(f"expected an Output, got {type(out).__name__}")
        kind, r = unit.kind, out.record
        if kind in ("craft", "sweep_craft"):
            _check_candidates(out, facts)
        elif kind == "play":
            _check_play(unit, out, facts)
        elif kind == "rejudge":
            draws = _integer(r.get("draws"), "rejudge draws")
            if draws < 1:
                raise InvalidOutput(f"expected rejudge draws ≥ 1, got {draws}")
            _integers(np.asarray(r.get("successes")), "successes", low=0, high=draws + 1)
            if len(r["successes"]) > facts.n_chosen:
                raise InvalidOutput(f"expected at most N = {facts.n_chosen} rejudged samples, got "
                                    f"{len(r['successes'])}")
        elif kind == "legitimate":
            _check_counts(r.get("correct"), r.get("trials"), "legitimate", facts.legitimate)
        elif kind == "sweep_legitimate":
            _pair(r.get("legitimate"), "legitimate", facts.legitimate)
        elif kind == "sweep_point":
            _pair(r.get("legitimate"), "legitimate", facts.legitimate)
            _pair(r.get("adversarial"), "adversarial")
            p = np.asarray(out.arrays.get("p_hat"))
            _probabilities(p, "p̂")
            if "sample_correct" in out.arrays:
                _integers(np.asarray(out.arrays["sample_correct"]), "per-sample correct counts", low=0,
                          high=int(r.get("draws", 1)) + 1, length=int(p.size))
            _probabilities(np.asarray(list(r.get("advantage_exact", {}).values()), dtype=np.float64),
                           "the exact advantages")
        elif kind == "examples":
            k = int(np.asarray(out.arrays["original"]).shape[0])
            for name in ("original", "adversarial", "randomized", "squeezed"):
                _images(out.arrays[name], f"the {name} examples", facts.image_shape)
                if np.asarray(out.arrays[name]).shape[0] != k:
                    raise InvalidOutput(f"expected {k} {name} examples, got {np.asarray(out.arrays[name]).shape[0]}")
            for name, values in r["labels"].items():
                _integers(np.asarray(values, dtype=np.int64), f"the {name} labels", low=-1, high=facts.num_classes,
                          length=k)
    except InvalidOutput as exc:
        raise _named(exc, unit) from exc


# -- craft ---------------------------------------------------------------------------------

def _craft(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
           cache_dir: str | None) -> Output:
    """The adversary's offline phase: shared (defense None: graybox knowledge on the
    undefended model) or for one cell (the cell's game, its knowledge level and twin)."""
    from evcsa.adversaries._common import PreparedAdversary

    from evcsa.experiments.seeds import _seed
    from evcsa.experiments.units import craft_level

    inputs = _inputs(config, cache_dir)
    a, d = params["adversary"], params["defense"]
    adversary = _adversary(config, a)
    if d is None:
        spec = config.adversaries[a]
        rules = attrs.evolve(config.game, knowledge=craft_level(config))
        game = _game(config, inputs.model, inputs, rules)
        text = json.dumps({"kind": spec.kind, "params": dict(spec.params)}, sort_keys=True, default=repr)
        first = np.random.SeedSequence(_seed(config, "craft", text))
    else:
        game = _game(config, _defense(config, d, inputs, _cell_keys(config, d, a)), inputs)
        first = np.random.SeedSequence(cell_seed(config, d, a)).spawn(1)[0]
    prepared = _prepare(game, adversary, game.knowledge(first))
    if isinstance(prepared, PreparedAdversary) and prepared.strategy == adversary:
        c = prepared.candidates
        record: dict[str, Any] = {"form": "candidates", "candidates": len(c)}
        if c.offline is not None:
            record.update(offline_alpha=c.offline.alpha, offline_mode=c.offline.mode)
        return Output(record=record, arrays=_candidates_arrays(c))
    if prepared is adversary:
        return Output(record={"form": "self"})
    try:
        blob = pickle.dumps(prepared)
    except Exception as exc:  # an unpicklable preparation: each chunk prepares again (same seed)
        return Output(record={"form": "replay", "why": f"{type(exc).__name__}: {exc}"})
    return Output(record={"form": "pickle"}, arrays={"pickle": np.frombuffer(blob, dtype=np.uint8).copy()})


def _prepared(config: ExperimentConfig, game: Any, adversary: Any, craft: Output, d: int, a: int,
              inputs: Any) -> Any:
    """The adversary that plays, rebuilt from a crafting's output."""
    from evcsa.adversaries._common import PreparedAdversary

    form = craft.record["form"]
    if form == "candidates":
        return PreparedAdversary(adversary, _candidates(craft.arrays, craft.record),
                                 tuple(inputs.samples.image_shape), len(inputs.samples))
    if form == "self":
        return adversary
    if form == "pickle":
        return pickle.loads(craft.arrays["pickle"].tobytes())
    first = np.random.SeedSequence(cell_seed(config, d, a)).spawn(1)[0]
    return _prepare(game, adversary, game.knowledge(first))


# -- play ----------------------------------------------------------------------------------

#: The environment variable that turns the collapse of determined work off ("0"): every
#: game of a determined cell is then played (for comparing the two; the numbers are equal).
COLLAPSE_VARIABLE = "EVCSA_COLLAPSE"


def collapsing() -> bool:
    """Whether determined work is done once (:func:`is_determined`): True unless the
    environment variable ``EVCSA_COLLAPSE`` is "0" (read at each unit, so a worker process
    follows the main process's setting)."""
    import os

    return os.environ.get(COLLAPSE_VARIABLE, "1").strip() != "0"


def is_determined(classifier: Any, player: Any) -> bool:
    """Whether every game that ``player`` (the prepared adversary) plays against
    ``classifier`` gives the same result, decided from what the two declare, never from
    their names: the classifier is deterministic (:func:`evcsa.defenses.base.is_randomized`
    False: it answers the same input the same way in every game; a randomized one is
    re-keyed per game) and the player declares ``play_randomized = False`` (its play uses
    none of the game's coins: :attr:`evcsa.adversaries.Adversary.play_randomized`). The
    game itself draws nothing: X_D, the rules and the oracles' bookkeeping are the same in
    every game. An object that declares nothing counts as randomized.

    Raises:
        InvalidParameter: the classifier declares ``randomized = False`` yet holds a key
            source (:func:`~evcsa.defenses.base.is_randomized`).
    """
    from evcsa.defenses.base import is_randomized

    return not is_randomized(classifier) and getattr(player, "play_randomized", True) is False


def _already_prepared(inner: Any) -> Any:
    """``inner`` as an adversary whose ``prepare`` does nothing (it was prepared by the
    craft unit, or just now): :meth:`EVCSA.repeat` plays it as it is."""
    from evcsa.adversaries import Adversary

    class Prepared(Adversary):
        def play(self, oracles: Any, knowledge: Any) -> Any:
            return inner.play(oracles, knowledge)

    return Prepared()


def _report_estimates(report: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(p̂ values, draws, sources) from an adversary's report, or None when it has none.

    Raises:
        InvalidOutput: p̂ not finite in [0, 1], draws not integers ≥ 0, sources not
            indices into X_D, or lengths that differ.
    """
    estimates = getattr(report, "estimates", None)
    if estimates is None:
        return None
    values = getattr(estimates, "values", None)
    draws = getattr(estimates, "draws", None)
    sources = getattr(report, "sources", None)
    if values is None or draws is None or sources is None:
        return None
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        n_raw = np.asarray(draws)
        src_raw = np.asarray(sources)
    except (TypeError, ValueError) as exc:
        raise InvalidOutput(f"expected the adversary's p̂, draws and sources as numbers, got {exc}") from exc
    if v.size and not (np.isfinite(v).all() and v.min() >= 0.0 and v.max() <= 1.0):
        raise InvalidOutput(f"expected the adversary's p̂ in [0, 1], got {_range(v)}", got=_range(v))
    n = _integers(n_raw.reshape(-1), "the adversary's p̂ draws", low=0)
    src = _integers(src_raw.reshape(-1), "the adversary's p̂ sources", low=0, high=n_samples)
    if not (v.shape == n.shape == src.shape):
        raise InvalidOutput(f"expected one p̂, one draw count and one source per candidate, got {v.size} p̂, "
                            f"{n.size} draw counts and {src.size} sources")
    return v, n, src


def _play(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
          cache_dir: str | None) -> Output:
    """Games ``start`` to ``stop - 1`` of cell (defense, adversary)."""
    d, a, start, stop = params["defense"], params["adversary"], params["start"], params["stop"]
    inputs = _inputs(config, cache_dir)
    game = _game(config, _defense(config, d, inputs, _cell_keys(config, d, a)), inputs)
    adversary = _adversary(config, a)
    prepared = _prepared(config, game, adversary, deps["craft"], d, a, inputs)
    # the game keeps each accepted x′ as it judged it (its private copy, under its lock): what
    # is stored is what was judged, whatever the adversary does to its tensors, from any thread
    game.record_samples = True
    # games start … stop − 1 of the cell's series: the adversary's coins are children start + 1 …
    # of the cell seed and each game's defense randomness is re-keyed for that game alone
    # (EVCSA.game_classifier), so chunking never changes a number
    # a determined cell (deterministic defense, an adversary whose play uses no coins) plays
    # game ``start`` once and replicates it: every game of the series is that game
    determined = collapsing() and is_determined(game.classifier, prepared)
    result = game.repeat(_already_prepared(prepared), 1 if determined else stop - start, seed=cell_seed(config, d, a),
                         progress=False, start=start)
    if determined:
        result = attrs.evolve(result, games=result.games * (stop - start))
    labels = inputs.samples.labels.numpy()
    per_game = {k: [] for k in ("successes", "submissions", "classify_queries", "stale_queries", "flagged")}
    rows: dict[str, list[Any]] = {k: [] for k in ("game", "position", "source", "target", "label", "reference",
                                                   "true_label", "success", "within_epsilon", "distance", "sample")}
    samples: list[np.ndarray] = []
    seen: dict[bytes, int] = {}
    notes: list[str] = []
    sums = draw_sums = sources = None
    for j, g in enumerate(result.games):
        per_game["successes"].append(int(g.successes))
        per_game["submissions"].append(int(g.submissions))
        per_game["classify_queries"].append(int(g.classify_queries))
        per_game["stale_queries"].append(int(g.stale_queries))
        per_game["flagged"].append(bool(getattr(g.report, "gradient_flagged", False)))
        for note in getattr(g.report, "notes", ()) or ():
            if str(note) not in notes:
                notes.append(str(note))
        if g.samples is None or len(g.samples) != len(g.transcript):  # pragma: no cover - the game records both
            raise RuntimeError("expected the game to record one x′ per accepted submission")
        for s, judged in zip(g.transcript, g.samples):
            x = judged.numpy()
            digest = hashlib.sha256(x.tobytes()).digest()
            if digest not in seen:
                seen[digest] = len(samples)
                samples.append(x)
            rows["game"].append(start + j)
            rows["position"].append(s.position)
            rows["source"].append(s.source)
            rows["target"].append(-1 if s.target is None else int(s.target))
            rows["label"].append(int(s.label))
            rows["reference"].append(int(s.reference))
            rows["true_label"].append(int(labels[s.source]))
            rows["success"].append(bool(s.success))
            rows["within_epsilon"].append(bool(s.within_epsilon))
            rows["distance"].append(float(s.distance))
            rows["sample"].append(seen[digest])
        est = _report_estimates(g.report, len(inputs.samples))
        if est is None:
            continue
        values, draws, src = est
        if sums is None:
            sums, draw_sums, sources = np.zeros_like(values), np.zeros_like(draws), src
        if values.shape == sums.shape and np.array_equal(src, sources):
            sums += values * draws
            draw_sums += draws
    shape = tuple(inputs.samples.image_shape)
    arrays: dict[str, np.ndarray] = {f"game_{k}": np.asarray(v, dtype=bool if k == "flagged" else np.int64)
                                     for k, v in per_game.items()}
    dtypes = {"success": bool, "within_epsilon": bool, "distance": np.float64}
    arrays.update({f"sub_{k}": np.asarray(v, dtype=dtypes.get(k, np.int64)) for k, v in rows.items()})
    arrays["samples"] = np.stack(samples) if samples else np.zeros((0, *shape), dtype=np.float32)
    if sums is not None:
        arrays.update(est_weighted=sums, est_draws=draw_sums, est_sources=np.asarray(sources, dtype=np.int64))
    return Output(record={"games": stop - start, "start": start, "notes": notes}, arrays=arrays)


def _rejudge(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
             cache_dir: str | None) -> Output:
    """Fresh-key successes of the samples submitted in the cell's first game: each classified
    ``figures.draws`` times by the cell's defense with keys of its own
    (:func:`evcsa.games.rejudge`; a deterministic defense once)."""
    import torch

    from evcsa.defenses.base import is_randomized
    from evcsa.experiments.seeds import _keys
    from evcsa.games import rejudge

    d, a = params["defense"], params["adversary"]
    play = deps["play"].arrays
    first = play["sub_game"] == 0  # the first play unit starts at game 0
    inputs = _inputs(config, cache_dir)
    classifier = _defense(config, d, inputs, _cell_keys(config, d, a))
    draws = config.figures.draws if is_randomized(classifier) else 1
    n = int(first.sum())
    if n == 0:
        return Output(record={"successes": [], "draws": draws})
    sources = play["sub_source"][first]
    targets = play["sub_target"][first] if config.game.goal == "targeted" else None
    x_adv = torch.from_numpy(np.ascontiguousarray(play["samples"][play["sub_sample"][first]]))
    counts = rejudge(classifier, x_adv, inputs.samples.images[torch.as_tensor(sources)],
                     inputs.samples.labels[torch.as_tensor(sources)], config.game, draws=draws,
                     targets=targets, keys=_keys(config, "rejudge", config.defenses[d].name,
                                                 config.adversaries[a].name),
                     num_classes=inputs.model.num_classes)
    return Output(record={"successes": [int(c) for c in counts], "draws": draws})


# -- legitimate accuracy ---------------------------------------------------------------------

def accuracy_counts(classifier: Any, images: Any, labels: Any, draws: int, batch: int = 2_000, *,
                    num_classes: int | None = None) -> tuple[int, int]:
    """(correct, trials): ``draws`` classifications of every image, each answer checked as
    the game checks it (:func:`evcsa.games.rules.predict_labels`).

    Raises:
        InvalidOutput: the classifier answered anything but B labels in [REJECTED, K).
    """
    from evcsa.games.rules import predict_labels

    correct = 0
    for _ in range(draws):
        for x, y in zip(images.split(batch), labels.split(batch)):
            correct += int((predict_labels(classifier, x, num_classes) == y.cpu()).sum())
    return correct, int(labels.numel()) * draws


def _legitimate(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                cache_dir: str | None) -> Output:
    from evcsa.defenses.base import is_randomized
    from evcsa.experiments.seeds import _keys

    d = params["defense"]
    inputs = _inputs(config, cache_dir)
    classifier = _defense(config, d, inputs, _keys(config, "legitimate", config.defenses[d].name))
    draws = config.legitimate_draws if is_randomized(classifier) else 1
    data = inputs.legitimate
    correct, trials = accuracy_counts(classifier, data.images, data.labels, draws,
                                      num_classes=inputs.model.num_classes)
    return Output(record={"correct": correct, "trials": trials})


# -- the sweep and the examples ----------------------------------------------------------------

def _sweep_craft(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                 cache_dir: str | None) -> Output:
    """The sweep attack on the undefended model for every X_D sample, fitted to the game's ε
    (graybox, crafted once for every δ and for the example strip)."""
    from evcsa.adversaries import GrayboxTransfer
    from evcsa.experiments.registry import _sweep_attack
    from evcsa.experiments.seeds import _seed

    inputs = _inputs(config, cache_dir)
    game = _game(config, inputs.model, inputs)
    knowledge = game.knowledge(_seed(config, "sweep", "craft"))
    crafted = GrayboxTransfer(attack=_sweep_attack(config)).craft(
        knowledge, np.arange(len(inputs.samples), dtype=np.int64))
    record: dict[str, Any] = {"form": "candidates", "candidates": len(crafted)}
    return Output(record=record, arrays=_candidates_arrays(crafted))


def _sweep_defense(model: Any, squeezer: str, delta: float, keys: Any) -> Any:
    from evcsa.defenses import FeatureSqueezing, RandomizedSqueezing

    if delta == 0.0:
        return FeatureSqueezing(model, squeezer)
    return RandomizedSqueezing(model, squeezer, delta, keys)


def _sweep_legitimate(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                      cache_dir: str | None) -> Output:
    """One squeezer's accuracy on the legitimate test images at one δ (``legitimate_draws``
    classifications of each when δ > 0); independent of the sweep's attack."""
    from evcsa.experiments.seeds import _keys

    squeezer, delta = params["squeezer"], float(params["delta"])
    inputs = _inputs(config, cache_dir)
    defense = _sweep_defense(inputs.model, squeezer, delta, _keys(config, "sweep-legitimate", squeezer, repr(delta)))
    legit = accuracy_counts(defense, inputs.legitimate.images, inputs.legitimate.labels,
                            config.legitimate_draws if defense.randomized else 1,
                            num_classes=inputs.model.num_classes)
    return Output(record={"legitimate": list(legit)})


def _sweep_point(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                 cache_dir: str | None) -> Output:
    """One squeezer at one δ: legitimate accuracy, accuracy on the sweep's samples, their p̂
    and Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6) for each N of the figure."""
    import torch

    from evcsa.experiments.cells import _exact, _tau_key
    from evcsa.experiments.seeds import _keys
    from evcsa.games.rules import is_success, predict_labels

    squeezer, delta = params["squeezer"], float(params["delta"])
    inputs = _inputs(config, cache_dir)
    craft = deps["craft"].arrays
    x_adv = torch.from_numpy(np.ascontiguousarray(craft["x_adv"]))
    y = inputs.samples.labels[torch.as_tensor(craft["sources"])]
    defense = _sweep_defense(inputs.model, squeezer, delta, _keys(config, "sweep", squeezer, repr(delta)))
    n_draws = config.figures.draws if defense.randomized else 1
    legit = deps["legitimate"].record["legitimate"]
    repeated = x_adv.repeat(n_draws, 1, 1, 1)
    k = inputs.model.num_classes
    pred = torch.cat([predict_labels(defense, chunk, k) for chunk in repeated.split(4_000)]).view(n_draws, -1)
    hits = is_success(pred, y).sum(dim=0)  # the game's rule: C(x′) ∉ {y, REJECTED}
    sample_correct = (pred == y[None]).sum(dim=0).to(torch.int64).numpy()  # per sample, over its draws
    correct = int(sample_correct.sum())
    p = (hits.to(torch.float64) / n_draws).numpy()
    exact = {}
    for n in config.figures.n_values:
        if n <= p.size:
            exact[str(n)] = _exact(p, n, (1.0,))[0][_tau_key(1.0)]
    return Output(record={"legitimate": list(legit), "adversarial": [correct, int(pred.numel())],
                          "advantage_exact": exact, "draws": n_draws},
                  arrays={"p_hat": p, "sample_correct": sample_correct})


def _examples(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
              cache_dir: str | None) -> Output:
    """The example strip (seed 002 Fig. 4) for the chosen squeezing defense: the first
    ``figures.examples`` samples of X_D, their adversarial versions (the sweep's set), with
    the defense's noise, squeezed."""
    import torch

    from evcsa.defenses import RandomizedSqueezing, squeezer_from_spec
    from evcsa.experiments.seeds import _keys

    inputs = _inputs(config, cache_dir)
    chosen = config.defenses[params["defense"]]
    squeezer = squeezer_from_spec(chosen.params.get("squeezer", chosen.params.get("squeezers")))
    delta = float(chosen.params.get("delta", 0.0))
    k = min(config.figures.examples, len(inputs.samples))
    original = inputs.samples.images[:k]
    adversarial = torch.from_numpy(np.ascontiguousarray(deps["craft"].arrays["x_adv"][:k]))
    noise = RandomizedSqueezing(inputs.model, None, delta, _keys(config, "examples", chosen.name))
    randomized = noise.randomize_pixels(adversarial).cpu() if delta > 0 else adversarial.clone()
    squeezed = squeezer(randomized).cpu()
    from evcsa.games.rules import predict_labels

    model = inputs.model

    def predicted(x: Any) -> list[int]:
        return [int(v) for v in predict_labels(model, x, model.num_classes)]

    labels = {
        "true": [int(v) for v in inputs.samples.labels[:k]],
        "original": predicted(original),
        "adversarial": predicted(adversarial),
        "randomized": predicted(randomized),  # the noisy image, unsqueezed
        "squeezed": predicted(squeezed),
    }
    arrays = {"original": original.numpy().copy(), "adversarial": adversarial.numpy().copy(),
              "randomized": randomized.to(torch.float32).numpy(), "squeezed": squeezed.numpy()}
    return Output(record={"labels": labels, "defense": chosen.name, "squeezer": squeezer.spec, "delta": delta},
                  arrays=arrays)


_KINDS = {"craft": _craft, "play": _play, "rejudge": _rejudge, "legitimate": _legitimate, "sweep_craft": _sweep_craft,
          "sweep_legitimate": _sweep_legitimate, "sweep_point": _sweep_point, "examples": _examples}
