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
import os
import pickle
import time
from typing import Any, Mapping

import attrs
import numpy as np
import torch

from evcsa.adversaries import Adversary, PreparedAdversary
from evcsa.config import ExperimentConfig
from evcsa.defenses.base import is_randomized
from evcsa.errors import InvalidOutput, ModelTampered
from evcsa.experiments.inputs import Inputs, forget_inputs, inputs_digest
from evcsa.experiments.output_checks import Facts, check_integers, check_output, facts_of, name_failure, value_range
from evcsa.experiments.registry import ADVERSARIES, DEFENSES
from evcsa.experiments.sweep_work import examples_unit, sweep_craft, sweep_legitimate, sweep_point_unit
from evcsa.experiments.unit_parts import (accuracy_counts, adversary_of, candidates_arrays, candidates_from,
                                          defense_of, game_of, inputs_of)
from evcsa.experiments.seeds import generator_seed, key_source
from evcsa.experiments.units import Output, craft_level
from evcsa.games import EVCSA, AdversaryProtocol, Knowledge, Oracles, rejudge
from evcsa.randomness import KeySource

__all__ = ["Facts", "Output", "accuracy_counts", "cell_seed", "check_output", "collapsing", "execute", "facts_of",
           "is_determined", "warm"]


_SETUP: dict[str, Any] = {}


def _setup_worker(threads: int | None, registries: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Once per worker process: torch threads; the main process's extra registry entries."""
    if threads is not None and _SETUP.get("threads") != threads:
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
    _setup_worker(task.get("threads"), task.get("registries"))
    unit = task["unit"]
    start = time.perf_counter()
    fn = _KINDS[unit.kind]
    config = task["config"]
    inputs = inputs_of(config, task.get("cache_dir"))
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
        raise name_failure(exc, unit) from exc
    return attrs.evolve(out, seconds=time.perf_counter() - start)


def warm(config: ExperimentConfig, cache_dir: str | None) -> int:
    """Load the inputs in this (worker) process ahead of the first unit; returns the pid."""
    inputs_of(config, cache_dir)
    return os.getpid()


def cell_seed(config: ExperimentConfig, d: int, a: int) -> int:
    """The seed of cell (d, a)'s series of games (from the master seed and the labels)."""
    return generator_seed(config, "cell", config.defenses[d].name, config.adversaries[a].name)


def _cell_keys(config: ExperimentConfig, d: int, a: int) -> KeySource:
    return key_source(config, "cell", config.defenses[d].name, config.adversaries[a].name)


def _prepare(game: EVCSA, adversary: Adversary, knowledge: Knowledge) -> Any:
    """The game's own prepare (it checks the model is left unchanged) where available."""
    prepare = getattr(game, "_prepare", None)
    return prepare(adversary, knowledge) if callable(prepare) else adversary.prepare(knowledge)


# -- craft ---------------------------------------------------------------------------------

def _craft(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
           cache_dir: str | None) -> Output:
    """The adversary's offline phase: shared (defense None: graybox knowledge on the
    undefended model) or for one cell (the cell's game, its knowledge level and twin)."""
    inputs = inputs_of(config, cache_dir)
    a, d = params["adversary"], params["defense"]
    adversary = adversary_of(config, a)
    if d is None:
        spec = config.adversaries[a]
        rules = attrs.evolve(config.game, knowledge=craft_level(config))
        game = game_of(config, inputs.model, inputs, rules)
        text = json.dumps({"kind": spec.kind, "params": dict(spec.params)}, sort_keys=True, default=repr)
        first = np.random.SeedSequence(generator_seed(config, "craft", text))
    else:
        game = game_of(config, defense_of(config, d, inputs, _cell_keys(config, d, a)), inputs)
        first = np.random.SeedSequence(cell_seed(config, d, a)).spawn(1)[0]
    prepared = _prepare(game, adversary, game.knowledge(first))
    if isinstance(prepared, PreparedAdversary) and prepared.strategy == adversary:
        c = prepared.candidates
        record: dict[str, Any] = {"form": "candidates", "candidates": len(c)}
        if c.offline is not None:
            record.update(offline_alpha=c.offline.alpha, offline_mode=c.offline.mode)
        return Output(record=record, arrays=candidates_arrays(c))
    if prepared is adversary:
        return Output(record={"form": "self"})
    try:
        blob = pickle.dumps(prepared)
    except Exception as exc:  # an unpicklable preparation: each chunk prepares again (same seed)
        return Output(record={"form": "replay", "why": f"{type(exc).__name__}: {exc}"})
    return Output(record={"form": "pickle"}, arrays={"pickle": np.frombuffer(blob, dtype=np.uint8).copy()})


def _prepared(config: ExperimentConfig, game: EVCSA, adversary: Adversary, craft: Output, d: int, a: int,
              inputs: Inputs) -> Any:
    """The adversary that plays, rebuilt from a crafting's output."""
    form = craft.record["form"]
    if form == "candidates":
        return PreparedAdversary(adversary, candidates_from(craft.arrays, craft.record),
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
    return os.environ.get(COLLAPSE_VARIABLE, "1").strip() != "0"


def is_determined(classifier: object, player: object) -> bool:
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
    return not is_randomized(classifier) and getattr(player, "play_randomized", True) is False


def _already_prepared(inner: AdversaryProtocol) -> Adversary:
    """``inner`` as an adversary whose ``prepare`` does nothing (it was prepared by the
    craft unit, or just now): :meth:`EVCSA.repeat` plays it as it is."""
    class Prepared(Adversary):
        def play(self, oracles: Oracles, knowledge: Knowledge) -> Any:
            return inner.play(oracles, knowledge)

    return Prepared()


def _report_estimates(report: object, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
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
        raise InvalidOutput(f"expected the adversary's p̂ in [0, 1], got {value_range(v)}", got=value_range(v))
    n = check_integers(n_raw.reshape(-1), "the adversary's p̂ draws", low=0)
    src = check_integers(src_raw.reshape(-1), "the adversary's p̂ sources", low=0, high=n_samples)
    if not (v.shape == n.shape == src.shape):
        raise InvalidOutput(f"expected one p̂, one draw count and one source per candidate, got {v.size} p̂, "
                            f"{n.size} draw counts and {src.size} sources")
    return v, n, src


def _play(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
          cache_dir: str | None) -> Output:
    """Games ``start`` to ``stop - 1`` of cell (defense, adversary)."""
    d, a, start, stop = params["defense"], params["adversary"], params["start"], params["stop"]
    inputs = inputs_of(config, cache_dir)
    game = game_of(config, defense_of(config, d, inputs, _cell_keys(config, d, a)), inputs)
    adversary = adversary_of(config, a)
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
    per_game: dict[str, list[int]] = {k: [] for k in ("successes", "submissions", "classify_queries", "stale_queries",
                                                       "flagged")}
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
        if sums is None or draw_sums is None or sources is None:  # (set together, by the first estimate)
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
    if sums is not None and draw_sums is not None:  # (set together)
        arrays.update(est_weighted=sums, est_draws=draw_sums, est_sources=np.asarray(sources, dtype=np.int64))
    return Output(record={"games": stop - start, "start": start, "notes": notes}, arrays=arrays)


def _rejudge(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
             cache_dir: str | None) -> Output:
    """Fresh-key successes of the samples submitted in the cell's first game: each classified
    ``figures.draws`` times by the cell's defense with keys of its own
    (:func:`evcsa.games.rejudge`; a deterministic defense once)."""
    d, a = params["defense"], params["adversary"]
    play = deps["play"].arrays
    first = play["sub_game"] == 0  # the first play unit starts at game 0
    inputs = inputs_of(config, cache_dir)
    classifier = defense_of(config, d, inputs, _cell_keys(config, d, a))
    draws = config.figures.draws if is_randomized(classifier) else 1
    n = int(first.sum())
    if n == 0:
        return Output(record={"successes": [], "draws": draws})
    sources = play["sub_source"][first]
    targets = play["sub_target"][first] if config.game.goal == "targeted" else None
    x_adv = torch.from_numpy(np.ascontiguousarray(play["samples"][play["sub_sample"][first]]))
    counts = rejudge(classifier, x_adv, inputs.samples.images[torch.as_tensor(sources)],
                     inputs.samples.labels[torch.as_tensor(sources)], config.game, draws=draws,
                     targets=targets, keys=key_source(config, "rejudge", config.defenses[d].name,
                                                 config.adversaries[a].name),
                     num_classes=inputs.model.num_classes)
    return Output(record={"successes": [int(c) for c in counts], "draws": draws})


# -- legitimate accuracy ---------------------------------------------------------------------

def _legitimate(config: ExperimentConfig, params: dict[str, Any], deps: Mapping[str, Output],
                cache_dir: str | None) -> Output:
    d = params["defense"]
    inputs = inputs_of(config, cache_dir)
    classifier = defense_of(config, d, inputs, key_source(config, "legitimate", config.defenses[d].name))
    draws = config.legitimate_draws if is_randomized(classifier) else 1
    data = inputs.legitimate
    correct, trials = accuracy_counts(classifier, data.images, data.labels, draws,
                                      num_classes=inputs.model.num_classes)
    return Output(record={"correct": correct, "trials": trials})


# -- the sweep and the examples ----------------------------------------------------------------

_KINDS = {"craft": _craft, "play": _play, "rejudge": _rejudge, "legitimate": _legitimate, "sweep_craft": sweep_craft,
          "sweep_legitimate": sweep_legitimate, "sweep_point": sweep_point_unit, "examples": examples_unit}
