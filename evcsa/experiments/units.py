"""Units of work: what a run is made of, each a pure function of its inputs with a content key.

Kinds (see :mod:`evcsa.experiments.work` for what each computes):

- ``craft``: an adversary's offline phase (``prepare``). For an adversary that needs at most
  graybox knowledge it runs once on the undefended model — one adversarial set per adversary
  parameters (attack and its parameters), model and X_D — and every defense's cell plays
  that set; a whitebox adversary (it needs the defense's twin) crafts once per cell.
- ``play``: a chunk of a cell's R games (games ``start`` to ``stop - 1``), playing the crafted
  set. Game i's randomness depends on i only, so the chunking never changes a number.
- ``rejudge``: the N samples a cell's adversary submitted in its first game, each classified
  ``figures.draws`` times on fresh keys (:func:`evcsa.games.rejudge`), for the expected
  advantage (:func:`evcsa.stats.expected_advantage`).
- ``legitimate``: a defense's accuracy on the legitimate test images.
- ``sweep_craft``: the δ sweep's adversarial set (the sweep attack on the undefended model,
  one sample per X_D image; the example strip uses its first images too). When a graybox
  adversary of the configuration crafts the same attack on every X_D sample, the sweep
  evaluates that adversary's ``craft`` instead (:func:`sweep_set_of`).
- ``sweep_legitimate``: one squeezer's legitimate accuracy at one δ (it does not depend on the
  attack, so sweeps of several attacks with the same model and data share it).
- ``sweep_point``: one squeezer at one δ: the sweep set's accuracy and p̂.
- ``examples``: the example strip.

A unit's **content key** is the SHA-256 of a canonical JSON document holding what determines
its output: the subset of the configuration it reads, the SHA-256 of the model's weights and
of the data (X_D and the legitimate set), the device, a digest of the master key
(:func:`key_digest`), the keys of the units it depends on, the evcsa version and a digest of
the code that computes it (evcsa's own source, and the module of every plugin the unit runs:
:mod:`evcsa.experiments.code`). Two units with the same key are the same work: a run does it
once; a run resumed with other code recomputes what that code computes.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Mapping, Sequence

import attrs
import numpy as np

from evcsa.adversaries import Adversary, GrayboxTransfer
from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.experiments.code import component_code
from evcsa.experiments.plugins import is_plugin, load_plugin
from evcsa.experiments.registry import ADVERSARIES, DEFENSES, squeezers_of

__all__ = ["Output", "Unit", "UnitPlan", "content_key", "plan_units", "sweep_set_of"]

#: Units of these kinds run first when several are ready (crafting feeds the games).
KIND_ORDER = ("craft", "sweep_craft", "legitimate", "sweep_legitimate", "play", "rejudge", "sweep_point",
              "examples")

#: Games per ``play`` unit (a chunk of a cell's R games). The numbers do not depend on it.
GAMES_PER_CHUNK = 25


@attrs.frozen(kw_only=True)
class Unit:
    """One unit of work.

    Attributes:
        kind: "craft", "play", "rejudge", "legitimate", "sweep_craft", "sweep_legitimate",
            "sweep_point" or "examples".
        key: the content key (64 hex digits).
        name: a human-readable description ("play bit-depth-1 × A* BIM, games 0–24").
        params: what :func:`evcsa.experiments.work.execute` needs besides the
            configuration (indices, labels, game range), JSON-ready.
        deps: the keys of the units whose outputs it takes, by role ("craft": key).
    """
    kind: str
    key: str
    name: str
    params: Mapping[str, Any]
    deps: Mapping[str, str] = attrs.field(factory=dict)


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


@attrs.frozen(kw_only=True)
class UnitPlan:
    """Where the results of a run come from: the content keys of its units, by role
    (:func:`plan_units`).

    Attributes:
        cells: (d, a) → the keys of the cell's ``play`` units, in game order.
        crafts: (d, a) → the key of the ``craft`` unit the cell plays.
        rejudge: (d, a) → the key of the cell's ``rejudge`` unit.
        legitimate: d → the key of the defense's ``legitimate`` unit.
        sweep: (squeezer, δ, key of its ``sweep_point`` unit), squeezers outer.
        examples: the key of the ``examples`` unit, or None.
        sweep_craft: the key of the unit crafting the sweep's set, or None.
    """
    cells: Mapping[tuple[int, int], Sequence[str]] = attrs.field(factory=dict)
    crafts: Mapping[tuple[int, int], str] = attrs.field(factory=dict)
    rejudge: Mapping[tuple[int, int], str] = attrs.field(factory=dict)
    legitimate: Mapping[int, str] = attrs.field(factory=dict)
    sweep: Sequence[tuple[str, float, str]] = ()
    examples: str | None = None
    sweep_craft: str | None = None


def content_key(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``document`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_digest(config: ExperimentConfig) -> str | None:
    """SHA-256 (hex) of the configuration's master key under a fixed label, or None without
    one: part of every unit's content key, so units computed under different keys never
    count as the same work. The digest reveals nothing about the key."""
    if config.master_key is None:
        return None
    return hashlib.sha256(b"evcsa/unit-keys\x00" + bytes.fromhex(config.master_key)).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if attrs.has(type(value)):
        return attrs.asdict(value)
    return repr(value)


def _spec(spec: ComponentSpec, code: Mapping[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": spec.kind, "params": dict(spec.params)}
    if code:
        doc["code"] = dict(code)
    return doc


def _labelled(spec: ComponentSpec, code: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {**_spec(spec, code), "label": spec.name}


def component_codes(config: ExperimentConfig, spec: ComponentSpec, registry: Mapping[str, Any],
                    where: str) -> dict[str, str]:
    """The code digests of a ``[[defenses]]`` / ``[[adversaries]]`` table's user code, by
    field: its ``kind`` (a plugin, or a registry entry added at run time) and an ``attack``
    plugin (:func:`evcsa.experiments.code.component_code`); empty for evcsa's own."""
    codes: dict[str, str] = {}
    for field, name in (("kind", spec.kind), ("attack", spec.params.get("attack"))):
        if is_plugin(name):
            obj = load_plugin(name, base_dir=config.base_dir, where=f"{where}.{field}")
        elif field == "kind" and isinstance(name, str):
            obj = registry.get(name)
        else:
            continue
        code = component_code(obj) if obj is not None else None
        if code is not None:
            codes[field] = code
    return codes


def input_codes(config: ExperimentConfig) -> dict[str, str]:
    """The code digests of a plugin ``model.architecture`` and ``data.dataset`` (their
    outputs' bytes are in the model and data digests; the architecture's forward pass is not)."""
    codes: dict[str, str] = {}
    for field, name in (("model.architecture", config.model.architecture), ("data.dataset", config.data.dataset)):
        if is_plugin(name):
            code = component_code(load_plugin(name, base_dir=config.base_dir, where=field))
            if code is not None:
                codes[field] = code
    return codes


def shares_crafting(adversary: object) -> bool:
    """Whether ``adversary`` crafts without the defense: it needs at most graybox knowledge,
    so its offline phase sees only X_D, the rules and the undefended model."""
    return getattr(adversary, "knowledge_needed", "blackbox") in ("blackbox", "graybox")


def craft_level(config: ExperimentConfig) -> str:
    """The knowledge level a shared crafting runs at: the game's, at most graybox."""
    return "blackbox" if config.game.knowledge == "blackbox" else "graybox"


def plan_units(config: ExperimentConfig, fingerprint: Mapping[str, str], adversaries: Sequence[Adversary],
               *, games_per_chunk: int = GAMES_PER_CHUNK) -> tuple[list[Unit], UnitPlan]:
    """Every unit of the run ``config`` describes, identical work listed once.

    Args:
        config: the experiment.
        fingerprint: {"model": weights SHA-256, "data": X_D and legitimate set SHA-256,
            "device": the resolved device, "evcsa": the version, "code": SHA-256 of evcsa's
            source (:func:`evcsa.experiments.code.evcsa_source_digest`)}; each plugin's code
            digest is added to the units that run it.
        adversaries: the built adversaries, one per ``[[adversaries]]`` table (their
            knowledge level decides whether crafting is shared).
        games_per_chunk: games per play unit.

    Returns:
        (units in a good order to run them, the :class:`UnitPlan`: which keys give which
        result).
    """
    base = {"evcsa": fingerprint["evcsa"], "code": fingerprint.get("code"), "model": fingerprint["model"],
            "data": fingerprint["data"], "device": fingerprint["device"], "seed": config.seed,
            "reproducible": config.reproducible, "keys": key_digest(config), "inputs_code": input_codes(config)}
    d_codes = [component_codes(config, s, DEFENSES, f"defenses[{i}]") for i, s in enumerate(config.defenses)]
    a_codes = [component_codes(config, s, ADVERSARIES, f"adversaries[{i}]") for i, s in enumerate(config.adversaries)]
    rules = attrs.asdict(config.game)
    units: dict[str, Unit] = {}

    def add(kind: str, name: str, params: dict[str, Any], document: dict[str, Any],
            deps: dict[str, str] | None = None) -> str:
        key = content_key({"unit": kind, **base, **document, "deps": deps or {}})
        if key not in units:
            units[key] = Unit(kind=kind, key=key, name=name, params=params, deps=deps or {})
        return key

    layout: dict[str, Any] = {"cells": {}, "crafts": {}, "rejudge": {}, "legitimate": {}, "sweep": [],
                              "examples": None,
                              "sweep_craft": None}
    for d, spec in enumerate(config.defenses):
        layout["legitimate"][d] = add("legitimate", f"legitimate accuracy of {spec.name}",
                                      {"defense": d}, {"defense": _labelled(spec, d_codes[d]),
                                                       "draws": config.legitimate_draws})
    for a, a_spec in enumerate(config.adversaries):
        shared = shares_crafting(adversaries[a])
        shared_key = None
        if shared:
            level = craft_level(config)
            shared_key = add("craft", f"craft {a_spec.name} ({level}, shared by every defense)",
                             {"adversary": a, "defense": None},
                             {"adversary": _spec(a_spec, a_codes[a]), "rules": {**rules, "knowledge": level}})
        for d, d_spec in enumerate(config.defenses):
            cell = {"defense": _labelled(d_spec, d_codes[d]), "adversary": _labelled(a_spec, a_codes[a]),
                    "rules": rules}
            craft = shared_key if shared_key is not None else add(  # (set when shared)
                "craft", f"craft {a_spec.name} against {d_spec.name}", {"adversary": a, "defense": d}, cell)
            layout["crafts"][(d, a)] = craft
            keys = []
            for start in range(0, config.runs, games_per_chunk):
                stop = min(config.runs, start + games_per_chunk)
                keys.append(add("play", f"play {d_spec.name} × {a_spec.name}, games {start}–{stop - 1}",
                                {"defense": d, "adversary": a, "start": start, "stop": stop},
                                {**cell, "start": start, "stop": stop}, {"craft": craft}))
            layout["cells"][(d, a)] = keys
            layout["rejudge"][(d, a)] = add(
                "rejudge", f"re-judge the samples {a_spec.name} submitted to {d_spec.name}",
                {"defense": d, "adversary": a}, {**cell, "draws": config.figures.draws}, {"play": keys[0]})
    if config.figures.enabled:
        squeezers = squeezers_of(config)
        figures = config.figures
        sweep_doc = {"attack": figures.attack, "attack_params": dict(figures.attack_params), "rules": rules}
        if squeezers or _examples_defense(config) is not None:
            same = sweep_set_of(config, adversaries)
            if same is not None and config.defenses:
                layout["sweep_craft"] = layout["crafts"][(0, same)]  # the cells' graybox set: crafted once
            else:
                layout["sweep_craft"] = add("sweep_craft", f"craft the sweep's {figures.attack} set", {}, sweep_doc)
        deps = {"craft": layout["sweep_craft"]} if layout["sweep_craft"] else {}
        for squeezer in squeezers:
            for delta in figures.deltas:
                legit = add("sweep_legitimate", f"sweep legitimate accuracy {squeezer} δ = {delta:g}",
                            {"squeezer": squeezer, "delta": delta},
                            {"squeezer": squeezer, "delta": float(delta), "legitimate_draws": config.legitimate_draws})
                key = add("sweep_point", f"sweep {squeezer} δ = {delta:g}", {"squeezer": squeezer, "delta": delta},
                          {"squeezer": squeezer, "delta": float(delta), "draws": figures.draws,
                           "n_values": list(figures.n_values)}, {**deps, "legitimate": legit})
                layout["sweep"].append((squeezer, float(delta), key))
        chosen = _examples_defense(config)
        if chosen is not None and figures.examples > 0:
            layout["examples"] = add("examples", f"example strip ({config.defenses[chosen].name})",
                                     {"defense": chosen},
                                     {"defense": _labelled(config.defenses[chosen], d_codes[chosen]),
                                      "examples": figures.examples},
                                     deps)
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    plan = UnitPlan(cells=layout["cells"], crafts=layout["crafts"], rejudge=layout["rejudge"],
                    legitimate=layout["legitimate"], sweep=tuple(layout["sweep"]), examples=layout["examples"],
                    sweep_craft=layout["sweep_craft"])
    return sorted(units.values(), key=lambda u: order[u.kind]), plan


def sweep_set_of(config: ExperimentConfig, adversaries: Sequence[Adversary]) -> int | None:
    """The index of a graybox adversary whose crafted set the δ sweep can evaluate instead of
    crafting its own, or None.

    It qualifies when it is a :class:`~evcsa.adversaries.GrayboxTransfer` (crafting shared
    by every defense) of the sweep's attack with the same parameters, in the attack's own
    targeting, crafting every X_D sample in order (``n_candidates`` unset, sources "given",
    N ≥ ``data.samples``). Seed 002 evaluates the same adversarial samples in Table 1, Table 2
    and Figures 5–7; a shared set also saves the sweep's crafting.
    """
    samples = config.data.samples
    if samples is None or config.game.n_chosen < samples:
        return None
    for a, (spec, adversary) in enumerate(zip(config.adversaries, adversaries)):
        if (isinstance(adversary, GrayboxTransfer) and shares_crafting(adversary)
                and spec.params.get("attack") == config.figures.attack
                and dict(adversary.params) == dict(config.figures.attack_params)
                and adversary.targeting is None and adversary.n_candidates is None
                and adversary.source_order == "given"):
            return a
    return None


def _examples_defense(config: ExperimentConfig) -> int | None:
    """The defense the example strip shows: the first randomized squeezing one, else the
    first feature squeezing one, else None."""
    for kind in ("randomized_squeezing", "feature_squeezing"):
        for i, spec in enumerate(config.defenses):
            if spec.kind == kind:
                return i
    return None


def chunks(runs: int, games_per_chunk: int = GAMES_PER_CHUNK) -> int:
    """Play units per cell of R = ``runs`` games."""
    return math.ceil(runs / games_per_chunk)
