"""Predicting how long a reproduction plan will take on this machine (:func:`estimate_plan`):
the engine's own units of the plan (:mod:`evcsa.reproduction.unit_plan`), counted by kind
once per content key, one of each kind timed; and printing it (:func:`format_estimate`)."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Protocol, runtime_checkable

import attrs
import numpy as np

from evcsa._text import duration
from evcsa.attacks import get_attack
from evcsa.attacks.cost import estimate_attack_time
from evcsa.config import ComponentSpec
from evcsa.errors import ConfigError
from evcsa.defenses.base import is_randomized
from evcsa.experiments import build_adversary, build_defense
from evcsa.experiments.seeds import draw_master_key
from evcsa.experiments.work import collapsing
from evcsa.adversaries import Candidates
from evcsa.games import EVCSA, Knowledge
from evcsa.randomness import DerivedKeys
from evcsa.reproduction.plans import Plan
from evcsa.reproduction.unit_plan import plan_units_of

#: estimates in whole minutes under 2 hours
_duration = functools.partial(duration, minute_digits=0)

__all__ = ["WorkEstimate", "estimate_plan", "format_estimate"]


@attrs.frozen(kw_only=True)
class WorkEstimate:
    """A predicted run time: ``items`` as (what, count, seconds each, total seconds), the
    ``total`` in seconds, the ``probe_seconds`` the measurement took, and ``method``
    (how the per-item times were measured)."""

    items: tuple[tuple[str, int, float, float], ...]
    total: float
    probe_seconds: float
    method: str



@runtime_checkable
class CraftingAdversary(Protocol):
    """An adversary that crafts its candidates before it plays (what a craft unit times)."""

    def craft(self, knowledge: Knowledge, sources: np.ndarray) -> Candidates:
        """Candidates for ``sources`` (int64 indices into X_D)."""
        ...


def crafting_adversary(spec: ComponentSpec, base_dir: str) -> CraftingAdversary:
    """The adversary ``spec`` builds, if it crafts offline (:class:`CraftingAdversary`).

    Raises:
        ConfigError: it does not (nothing to time as a craft).
    """
    built = build_adversary(spec, base_dir=base_dir)
    if not isinstance(built, CraftingAdversary):
        raise ConfigError(f"expected an adversary that crafts its candidates offline (craft(knowledge, sources)) "
                          f"to time, got {type(built).__name__}")
    return built

def estimate_plan(plan: Plan, *, cache_dir: str | None = None, probe: int = 10,
                  log: Callable[[str], None] | None = None) -> WorkEstimate:
    """Predict the wall time of ``plan`` on this machine from a short timed run.

    Method: the units are the engine's own (:func:`~evcsa.reproduction.unit_plan.plan_units_of`:
    every configuration of the plan planned by :func:`evcsa.experiments.units.plan_units`
    under the keys the run gives it, each unit counted once by its content key, so the
    sharing is the engine's: a graybox set crafted once for the whole plan, a legitimate
    accuracy or a sweep point shared by the configurations that plan the same one). One of
    each kind of work is timed and multiplied by its count:

    - a graybox set (``craft`` shared by every defense, or the sweep's ``sweep_craft``): the
      attack's cost model (:func:`evcsa.attacks.cost.estimate_attack_time`: the attack at
      the unit's parameters on the first ``probe`` samples of X_D, scaled linearly to |X_D|;
      within about 1.5× on the reference CNN by its benchmark);
    - a whitebox craft (BPDA+EOT, APGD-EOT: a ``craft`` per cell) against the first defense
      of each kind it meets, with 2 steps, scaled to its steps; any other adversary's craft
      once in full;
    - classifications: each defense classifies a batch of legitimate images (the time per
      image includes its own ensemble: crops, region samples), multiplied by the
      classifications of its units: a ``play`` unit's games × N (one game for a determined
      cell, as the engine plays it: a deterministic defense, by
      :func:`~evcsa.defenses.base.is_randomized`, and an adversary that declares its
      prepared play coin-free, :func:`evcsa.experiments.work.is_determined`; every game with
      ``EVCSA_COLLAPSE=0``), a ``rejudge``'s draws × N, a ``legitimate`` unit's draws × the
      test set; the sweep's points and legitimate accuracies at δ > 0 at the cost of
      randomized squeezing; and Table 3's accuracy on X_D itself (one classification per
      sample, defense and repetition: the reproduction's, not an engine unit).

    Not counted: the example strip, model training and loading, Python overhead between units.

    Raises:
        ConfigError, DataError: the plan's data or model cannot be loaded.
    """
    say = log or (lambda line: None)
    t0 = time.perf_counter()
    planned = plan_units_of(plan, master_key=draw_master_key().hex(), cache_dir=cache_dir)
    first = planned[0].owner
    inputs = first.inputs
    x, y = inputs.samples.images, inputs.samples.labels
    n_probe = min(probe, len(x))
    per_image: dict[str, float] = {}
    randomized_of: dict[str, bool] = {}

    def classify_cost(spec: ComponentSpec, index: int, name: str | None = None) -> float:
        """Seconds per image of the defense ``spec`` (timed once per name)."""
        key = name or spec.name
        if key not in per_image:
            clf = build_defense(spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"), where=f"defenses[{index}]")
            randomized_of[key] = is_randomized(clf)
            batch = inputs.legitimate.images[: 8 if spec.kind == "region_based" else 500]
            t = time.perf_counter()
            clf.predict(batch)
            per_image[key] = (time.perf_counter() - t) / len(batch)
        return per_image[key]

    collapse = collapsing()
    crafts: dict[str, list[Any]] = {}  # attack → [count, params]
    whitebox: dict[tuple[str, str], list[Any]] = {}  # (adversary, defense kind) → [count, config, adv, defense]
    full_crafts: dict[str, list[Any]] = {}  # another adversary's shared craft → [count, owner, adv]
    classifications: dict[str, int] = {}

    def classify(key: str, count: int) -> None:
        classifications[key] = classifications.get(key, 0) + count

    for item in planned:
        unit, owner = item.unit, item.owner
        config, params = owner.config, unit.params
        n, n_legit = len(owner.inputs.samples), len(owner.inputs.legitimate)
        if unit.kind == "craft":
            adv = config.adversaries[params["adversary"]]
            if params["defense"] is not None:
                d_spec = config.defenses[params["defense"]]
                entry = whitebox.setdefault((adv.name, d_spec.kind), [0, config, adv, d_spec])
                entry[0] += 1
            elif adv.kind == "graybox_transfer":
                crafts.setdefault(adv.params["attack"], [0, dict(adv.params.get("params", {}))])[0] += 1
            else:
                full_crafts.setdefault(adv.name, [0, owner, adv])[0] += 1
        elif unit.kind == "sweep_craft":
            crafts.setdefault(config.figures.attack, [0, dict(config.figures.attack_params)])[0] += 1
        elif unit.kind in ("play", "rejudge", "legitimate"):
            d = params["defense"]
            spec = config.defenses[d]
            classify_cost(spec, d)
            randomized = randomized_of[spec.name]
            if unit.kind == "play":
                coin_free = getattr(owner.adversaries[params["adversary"]], "candidates_randomized", True) is False
                once = collapse and not randomized and coin_free  # the engine's collapse of a determined cell
                classify(spec.name, (1 if once else params["stop"] - params["start"]) * n)
            elif unit.kind == "rejudge":
                classify(spec.name, (config.figures.draws if randomized else 1) * n)
            else:
                classify(spec.name, (config.legitimate_draws if randomized else 1) * n_legit)
        elif unit.kind in ("sweep_point", "sweep_legitimate"):
            squeezer, delta = str(params["squeezer"]), float(params["delta"])
            if delta > 0:
                which = ComponentSpec(kind="randomized_squeezing", label=f"{squeezer} δ>0",
                                      params={"squeezer": squeezer, "delta": 0.5})
            else:
                which = ComponentSpec(kind="feature_squeezing", label=squeezer, params={"squeezers": squeezer})
            key = f"sweep {which.name}"
            per_image[key] = classify_cost(which, 0, key)
            draws = config.figures.draws if unit.kind == "sweep_point" else config.legitimate_draws
            classify(key, (draws if delta > 0 else 1) * (n if unit.kind == "sweep_point" else n_legit))
    for part in plan.parts:  # Table 3's non-adversarial column: X_D classified once per repetition
        if part.run == "repetitions":
            for config in part.configs:
                for d, spec in enumerate(config.defenses):
                    classify_cost(spec, d)
                    classify(spec.name, len(inputs.samples))
    items: list[tuple[str, int, float, float]] = []
    for attack, (count, attack_params) in crafts.items():
        say(f"  timing {attack} on {n_probe} of {len(x)} samples …")
        cost = estimate_attack_time(get_attack(attack), inputs.model, x, y, samples=len(x), probe=probe,
                                    **attack_params)
        items.append((f"craft {attack} ({len(x)} samples)", count, cost.predicted_seconds,
                      count * cost.predicted_seconds))
    for (name, kind), (count, config, adv, d_spec) in sorted(whitebox.items(), key=lambda kv: kv[0]):
        clf = build_defense(d_spec, inputs.model, DerivedKeys.from_seed(0, label="estimate"))
        game = EVCSA.from_rules(clf, x, y, config.game, model=inputs.model, num_classes=inputs.model.num_classes)
        if adv.kind == "bpda_eot":
            steps = int(adv.params.get("steps", 100))
            timed = min(2, steps)
            say(f"  timing {name} against {d_spec.name} ({timed} of {steps} steps) …")
            probe_adv = attrs.evolve(adv, params={**adv.params, "steps": timed})
            what = (f"craft {name} vs {kind.replace('_', ' ')} ({len(x)} samples, {steps} steps × "
                    f"{adv.params.get('eot_samples', 30)} draws)")
        else:
            steps = timed = 1
            say(f"  timing {name} against {d_spec.name} …")
            probe_adv, what = adv, f"craft {name} vs {kind.replace('_', ' ')} ({len(x)} samples)"
        t = time.perf_counter()
        crafting_adversary(probe_adv, config.base_dir).craft(game.knowledge(0), np.arange(len(x)))
        each = (time.perf_counter() - t) * steps / timed
        items.append((what, count, each, count * each))
    for name, (count, owner, adv) in full_crafts.items():
        say(f"  timing {name} …")
        game = EVCSA.from_rules(owner.inputs.model, x, y, owner.config.game, model=inputs.model,
                                num_classes=inputs.model.num_classes)
        t = time.perf_counter()
        crafting_adversary(adv, owner.config.base_dir).craft(game.knowledge(0), np.arange(len(x)))
        each = time.perf_counter() - t
        items.append((f"craft {name} ({len(x)} samples)", count, each, count * each))
    for name, count in classifications.items():
        items.append((f"classify with {name}", count, per_image[name], count * per_image[name]))
    total = sum(i[3] for i in items)
    method = (f"timed on this machine: each attack on {n_probe} samples at full settings, scaled "
              f"linearly (evcsa.attacks.cost), one batch of classifications per defense; the engine's units "
              f"of the whole plan, each counted once by its content key (a graybox set crafted once, shared by "
              f"every table and figure)")
    return WorkEstimate(items=tuple(items), total=total, probe_seconds=time.perf_counter() - t0, method=method)


def format_estimate(plan: Plan, estimate: WorkEstimate, *, jobs: int = 1) -> str:
    """The estimate as text: one line per kind of work, largest first, and the total; with
    ``jobs`` > 1, the total shared by that many workers (the work divided evenly, never less
    than the longest single unit: a lower bound that the pool reaches within its measured
    1.9× on 2 cores, docs/running-at-scale.md)."""
    rows = sorted(estimate.items, key=lambda i: -i[3])
    width = max(len(r[0]) for r in rows)
    lines = [f"evcsa reproduce {plan.name} --estimate (scale {plan.scale.name}, data {plan.data}, "
             f"{'one process' if jobs == 1 else f'timed at the threads of one of {jobs} workers'})"]
    lines += [f"  {what.ljust(width)}  {count:>10,} × {each * 1e3:10.3f} ms = {_duration(total):>8}"
              for what, count, each, total in rows]
    lines.append(f"  predicted total: {_duration(estimate.total)} in one process (measured in "
                 f"{estimate.probe_seconds:.0f} s; {estimate.method})")
    if jobs > 1:
        longest = max(each for _, _, each, _ in rows)
        lines.append(f"  with --jobs {jobs}: about {_duration(max(estimate.total / jobs, longest))} (the work shared "
                     f"evenly by {jobs} workers; the longest single unit takes {_duration(longest)})")
    return "\n".join(lines)
