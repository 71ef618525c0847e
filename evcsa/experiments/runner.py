"""The core that runs units: plan the units of work, skip those the store already holds, run
the rest on an executor as their dependencies finish, and commit each one as it arrives
(:func:`run_units`).

The public pieces call it — :func:`~evcsa.experiments.run_experiment` (the whole run,
``evcsa play`` and ``evcsa demo``), :func:`~evcsa.experiments.run_cell`,
:func:`~evcsa.experiments.run_legitimate`, :func:`~evcsa.experiments.run_sweep`,
:func:`~evcsa.experiments.run_examples` — and assemble their records from its outputs; it
never calls them back. Where units run and where they are kept are its two seams
(:mod:`evcsa.experiments.seams`).
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Callable, Hashable

import attrs
from tqdm.auto import tqdm

from evcsa.config import ExperimentConfig
from evcsa.errors import CorruptStore, InvalidOutput
from evcsa.experiments import registry, units
from evcsa.experiments.executors import as_executor
from evcsa.experiments.failures import unit_failure
from evcsa.experiments.inputs import load_inputs, resolve_device
from evcsa.experiments.provenance import fingerprint
from evcsa.experiments.registry import build_adversary
from evcsa.experiments.seams import Executor, SharedUnits, UnitStore
from evcsa.experiments.units import Output, Unit, UnitPlan
from evcsa.experiments.work import Facts, check_output, facts_of

__all__ = ["Selection", "UnitRun", "run_units"]

#: Which units to run: ("cell", d, a), ("legitimate", d), ("sweep",) or ("examples",)
#: (None: every unit of the run).
Selection = tuple[str | int, ...]


@attrs.frozen(kw_only=True)
class UnitRun:
    """What :func:`run_units` returns.

    Attributes:
        outputs: content key → :class:`~evcsa.experiments.units.Output`, every needed unit.
        plan: the run's :class:`~evcsa.experiments.units.UnitPlan` (which keys give which result).
        counts: "units" (needed), "reused" (from the store or shared), "shared",
            "computed", "craftings" (adversarial sets crafted), "craftings_planned"; with a
            store, "stored" (finished units it held) and "stale" (of those, not of this plan).
    """

    outputs: dict[str, Output]
    plan: UnitPlan
    counts: dict[str, int]


def _extra_registries() -> dict[str, dict[str, Any]]:
    """Registry entries added at run time (a user's ``ADVERSARIES["mine"] = Mine``), for
    the workers (they pickle by reference: the class must be importable there)."""
    return {"defenses": {k: v for k, v in registry.DEFENSES.items() if registry.BUILTIN_DEFENSES.get(k) is not v},
            "adversaries": {k: v for k, v in registry.ADVERSARIES.items()
                            if registry.BUILTIN_ADVERSARIES.get(k) is not v}}


def _needed(units: list[Unit], plan: UnitPlan, select: Selection | None) -> list[Unit]:
    if select is None:
        return units
    by_key = {u.key: u for u in units}
    what = select[0]
    if what == "cell":
        cell = (int(select[1]), int(select[2]))
        roots = [*plan.cells[cell], plan.rejudge[cell]]
    elif what == "legitimate":
        roots = [plan.legitimate[int(select[1])]]
    elif what == "sweep":
        roots = [k for _, _, k in plan.sweep]
    else:
        roots = [plan.examples] if plan.examples else []
    keep: set[str] = set()
    stack = list(roots)
    while stack:
        key = stack.pop()
        if key not in keep:
            keep.add(key)
            stack.extend(by_key[key].deps.values())
    return [u for u in units if u.key in keep]


def _valid(unit: Unit, output: Output, facts: Facts, store: UnitStore | None) -> bool:
    """Whether a finished output taken from a store passes its unit's checks
    (:func:`~evcsa.experiments.work.check_output`); one that does not (stored by an
    earlier evcsa that did not check) is computed again, and the store's log says why."""
    try:
        check_output(unit, output, facts)
    except InvalidOutput as exc:
        if store is not None:
            store.log(f"recomputing {unit.kind} {unit.key[:12]}: the stored output fails its checks ({exc})")
        return False
    return True


def run_units(config: ExperimentConfig, *, cache_dir: str | None = None, select: Selection | None = None,
              store: UnitStore | None = None, executor: Executor | cf.Executor | None = None,
              progress: bool | None = False, log: Callable[[str], None] | None = None,
              shared: SharedUnits | None = None) -> UnitRun:
    """Plan the run's units, run those ``select`` needs that ``store`` lacks, and return
    every needed unit's output.

    Args:
        config: the experiment.
        cache_dir: the model cache.
        select: None (everything), ("cell", d, a), ("legitimate", d), ("sweep",) or
            ("examples",).
        store: a :class:`~evcsa.experiments.seams.UnitStore` such as
            :class:`~evcsa.experiments.store.RunStore` (finished units are read from it, new
            ones committed to it as they finish), or None (kept in memory).
        executor: an :class:`~evcsa.experiments.seams.Executor` (those of
            :mod:`evcsa.experiments.executors`), a ``concurrent.futures.Executor``
            (spawn/forkserver), or None (serial, closed here).
        progress: one progress bar for all units (None: only on a terminal).
        log: receives one line per finished unit.
        shared: a :class:`~evcsa.experiments.seams.SharedUnits` such as
            :class:`~evcsa.experiments.store.FinishedUnits`: units it holds are taken from it
            (and committed to ``store``) instead of computed.

    Returns:
        A :class:`UnitRun`: every needed unit's output, the plan, the counts.

    Raises:
        ConfigError, DataError: the inputs cannot be loaded; PluginError: a plugin failed
        in a unit (:func:`~evcsa.experiments.failures.unit_failure`); CorruptStore: a stored
        unit is damaged and the store does not recompute it; whatever a unit raised.
    """
    say = log or (lambda line: None)
    inputs = load_inputs(config, cache_dir=cache_dir)
    adversaries = [build_adversary(s, where=f"adversaries[{i}]", base_dir=config.base_dir)
                   for i, s in enumerate(config.adversaries)]
    all_units, plan = units.plan_units(config, fingerprint(inputs, resolve_device(config.device)), adversaries)
    needed = _needed(all_units, plan, select)
    done = store.done() if store is not None else set()
    outputs: dict[str, Output] = {}
    taken = 0
    facts = facts_of(config, inputs)
    for u in needed:
        if store is not None and u.key in done:
            try:
                stored = store.get(u.key)
            except CorruptStore as exc:
                if not store.recompute_corrupt:
                    raise
                store.log(f"recomputing {u.kind} {u.key[:12]} {u.name}: {exc.message}")
                say(f"recomputing {u.name}: its stored unit is corrupt")
                store.forget(u.key)
            else:
                if _valid(u, stored, facts, store):
                    outputs[u.key] = stored
                    continue
        if shared is not None:
            found = shared.get(u.key)
            if found is not None and _valid(u, found, facts, store):
                outputs[u.key] = found
                taken += 1
                if store is not None:
                    store.put(u, found)
    todo = [u for u in needed if u.key not in outputs]
    counts: dict[str, int] = {"units": len(needed), "reused": len(needed) - len(todo), "shared": taken,
                              "computed": 0, "craftings": 0,
                              "craftings_planned": sum(u.kind in ("craft", "sweep_craft") for u in needed)}
    if store is not None:
        store.log(f"{len(needed)} units, {len(needed) - len(todo)} already finished, {len(todo)} to run")
        counts["stored"] = len(done)
        counts["stale"] = len(done - {u.key for u in all_units})
    if not todo:
        return UnitRun(outputs=outputs, plan=plan, counts=counts)
    owned = executor is None
    executor = as_executor(executor)
    registries = _extra_registries()
    bar = tqdm(total=len(needed), initial=len(needed) - len(todo), desc="units", unit="unit", smoothing=0.1,
               disable=None if progress is None else not progress)
    waiting = list(todo)
    running: dict[Hashable, Unit] = {}
    capacity = max(1, int(getattr(executor, "workers", 1))) * 2
    try:
        while waiting or running:
            ready = [u for u in waiting if all(k in outputs for k in u.deps.values())]
            for unit in ready[: max(0, capacity - len(running))]:
                waiting.remove(unit)
                task = {"config": config, "unit": unit, "cache_dir": cache_dir, "registries": registries,
                        "deps": {role: outputs[k] for role, k in unit.deps.items()}}
                if store is not None:
                    store.started(unit.key, unit.kind)
                bar.set_postfix_str(unit.name[:60], refresh=True)
                running[executor.submit(task)] = unit
            if not running:  # pragma: no cover - a dependency cycle cannot be planned
                raise RuntimeError("units wait for dependencies that never run")
            finished, _ = executor.wait(list(running))
            for future in finished:
                unit = running.pop(future)
                try:
                    output = executor.result(future)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - a plugin's failure, named; else as it came
                    failed = unit_failure(config, unit, exc)
                    if failed is None:
                        raise
                    raise failed from exc
                outputs[unit.key] = output
                if store is not None:
                    store.put(unit, output)
                    store.log(f"done {unit.kind} {unit.key[:12]} {unit.name} ({output.seconds:.2f} s)")
                counts["computed"] += 1
                counts["craftings"] += (unit.kind in ("craft", "sweep_craft")
                                        and output.record.get("form") != "self")
                bar.update(1)
                say(f"{unit.name} ({output.seconds:.1f} s)")
    except BaseException as exc:
        executor.close(cancel=True)
        if store is not None:
            store.log(f"stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
    if owned:
        executor.close()
    return UnitRun(outputs=outputs, plan=plan, counts=counts)
