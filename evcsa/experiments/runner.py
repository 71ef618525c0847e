"""The whole run: plan the units of work, skip those the store already holds, run the rest on
an executor as their dependencies finish, commit each one as it arrives, and assemble the
results from the store.

:func:`run_experiment` is the entry point (``evcsa play`` and ``evcsa demo`` call it with a
run directory); :func:`run_units` runs a selection of units (one cell, one defense's
legitimate accuracy, the sweep) for :func:`~evcsa.experiments.run_cell` and friends.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
from typing import Any, Callable, Mapping

import numpy as np

from evcsa.config import ExperimentConfig
from evcsa.experiments.results import ExperimentResult

__all__ = ["run_experiment", "run_units"]


def resolve_device(device: str) -> str:
    """"cpu", "cuda", or for "auto" cuda when available, else cpu.

    Raises:
        ConfigError: "cuda" on a machine without one.
    """
    from evcsa.errors import ConfigError

    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError("device: expected a machine with CUDA for 'cuda', got none (use 'cpu' or 'auto')",
                          key="device")
    return "cuda"


def fingerprint(inputs: Any, device: str) -> dict[str, str]:
    """What every unit's key holds about the inputs: SHA-256 of the model's weights (every
    parameter and buffer, by name), of the data (X_D and the legitimate set, images and
    labels), the device, the evcsa version and the digest of evcsa's source."""
    import hashlib

    from evcsa.experiments.code import evcsa_source_digest

    import evcsa

    model = hashlib.sha256()
    for name, tensor in sorted(inputs.model.module.state_dict().items()):
        model.update(name.encode())
        model.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        model.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    data = hashlib.sha256()
    for part in (inputs.samples, inputs.legitimate):
        data.update(part.images.numpy().tobytes())
        data.update(part.labels.numpy().tobytes())
    return {"model": model.hexdigest(), "data": data.hexdigest(), "device": device, "evcsa": evcsa.__version__,
            "code": evcsa_source_digest()}


def _extra_registries() -> dict[str, dict[str, Any]]:
    """Registry entries added at run time (a user's ``ADVERSARIES["mine"] = Mine``), for
    the workers (they pickle by reference: the class must be importable there)."""
    from evcsa.experiments.registry import _BUILTIN_ADVERSARIES, _BUILTIN_DEFENSES, ADVERSARIES, DEFENSES

    return {"defenses": {k: v for k, v in DEFENSES.items() if _BUILTIN_DEFENSES.get(k) is not v},
            "adversaries": {k: v for k, v in ADVERSARIES.items() if _BUILTIN_ADVERSARIES.get(k) is not v}}


class _ForeignExecutor:
    """A plain ``concurrent.futures.Executor`` handed in by the caller."""

    def __init__(self, executor: Any) -> None:
        from evcsa.errors import ConfigError

        context = getattr(executor, "_mp_context", None)
        if context is not None and context.get_start_method() == "fork":
            raise ConfigError("executor: expected a process pool with the spawn or forkserver start method "
                              "(ProcessPoolExecutor(mp_context=multiprocessing.get_context('spawn'))), got fork: "
                              "a forked child of a process whose torch threads ran can deadlock", key="executor")
        self._executor = executor
        self.name = type(executor).__name__
        self.workers = getattr(executor, "_max_workers", 1)

    def submit(self, task: Any) -> Any:
        from evcsa.experiments.work import execute

        return self._executor.submit(execute, task)

    def wait(self, futures: Any) -> tuple[set[Any], set[Any]]:
        import concurrent.futures as cf

        done, not_done = cf.wait(set(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(not_done)

    def result(self, future: Any) -> Any:
        return future.result()

    def close(self, cancel: bool = False) -> None:
        pass


def _needed(units: list[Any], layout: Mapping[str, Any], select: tuple[Any, ...] | None) -> list[Any]:
    if select is None:
        return units
    by_key = {u.key: u for u in units}
    what = select[0]
    if what == "cell":
        roots = [*layout["cells"][(select[1], select[2])], layout["rejudge"][(select[1], select[2])]]
    elif what == "legitimate":
        roots = [layout["legitimate"][select[1]]]
    elif what == "sweep":
        roots = [k for _, _, k in layout["sweep"]]
    else:
        roots = [layout["examples"]] if layout["examples"] else []
    keep: set[str] = set()
    stack = list(roots)
    while stack:
        key = stack.pop()
        if key not in keep:
            keep.add(key)
            stack.extend(by_key[key].deps.values())
    return [u for u in units if u.key in keep]


def _valid(unit: Any, output: Any, facts: Any, store: Any) -> bool:
    """Whether a finished output taken from a store passes its unit's checks
    (:func:`~evcsa.experiments.work.check_output`); one that does not (stored by an
    earlier evcsa that did not check) is computed again, and the store's log says why."""
    from evcsa.errors import InvalidOutput
    from evcsa.experiments.work import check_output

    try:
        check_output(unit, output, facts)
    except InvalidOutput as exc:
        if store is not None:
            store.log(f"recomputing {unit.kind} {unit.key[:12]}: the stored output fails its checks ({exc})")
        return False
    return True


def run_units(config: ExperimentConfig, *, cache_dir: str | None = None, select: tuple[Any, ...] | None = None,
              store: Any = None, executor: Any = None, progress: bool | None = False,
              log: Callable[[str], None] | None = None,
              shared: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plan the run's units, run those ``select`` needs that ``store`` lacks, and return
    every needed unit's output.

    Args:
        config: the experiment.
        cache_dir: the model cache.
        select: None (everything), ("cell", d, a), ("legitimate", d), ("sweep",) or
            ("examples",).
        store: a :class:`~evcsa.experiments.store.RunStore` (finished units are read from
            it, new ones committed to it as they finish), or None (kept in memory).
        executor: an executor of :mod:`evcsa.experiments.executors`, a
            ``concurrent.futures.Executor`` (spawn/forkserver), or None (serial).
        progress: one progress bar for all units (None: only on a terminal).
        log: receives one line per finished unit.
        shared: a :class:`~evcsa.experiments.store.FinishedUnits` (or any object whose
            ``get(key)`` returns an output or None): units it holds are taken from it (and
            committed to ``store``) instead of computed.

    Returns:
        (key → :class:`~evcsa.experiments.work.Output`, the layout of
        :func:`~evcsa.experiments.units.plan_units`).
    """
    from tqdm.auto import tqdm

    from evcsa.errors import CorruptStore
    from evcsa.experiments.executors import SerialExecutor
    from evcsa.experiments.inputs import load_inputs
    from evcsa.experiments.registry import build_adversary
    from evcsa.experiments.units import plan_units
    from evcsa.experiments.work import facts_of

    say = log or (lambda line: None)
    inputs = load_inputs(config, cache_dir=cache_dir)
    adversaries = [build_adversary(s, where=f"adversaries[{i}]", base_dir=config.base_dir)
                   for i, s in enumerate(config.adversaries)]
    units, layout = plan_units(config, fingerprint(inputs, resolve_device(config.device)), adversaries)
    needed = _needed(units, layout, select)
    done = store.done() if store is not None else set()
    outputs: dict[str, Any] = {}
    taken = 0
    facts = facts_of(config, inputs)
    for u in needed:
        if u.key in done:
            try:
                stored = store.get(u.key)
            except CorruptStore as exc:
                if not getattr(store, "recompute_corrupt", False):
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
    layout["counts"] = {"units": len(needed), "reused": len(needed) - len(todo), "shared": taken, "computed": 0,
                        "craftings": 0,
                        "craftings_planned": sum(u.kind in ("craft", "sweep_craft") for u in needed)}
    if store is not None:
        store.log(f"{len(needed)} units, {len(needed) - len(todo)} already finished, {len(todo)} to run")
        layout["counts"]["stored"] = len(done)
        layout["counts"]["stale"] = len(done - {u.key for u in units})
    if not todo:
        return outputs, layout
    owned = executor is None
    if executor is None:
        executor = SerialExecutor()
    elif not callable(getattr(executor, "wait", None)):
        executor = _ForeignExecutor(executor)
    registries = _extra_registries()
    bar = tqdm(total=len(needed), initial=len(needed) - len(todo), desc="units", unit="unit", smoothing=0.1,
               disable=None if progress is None else not progress)
    waiting = list(todo)
    running: dict[Any, Any] = {}
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
                layout["counts"]["computed"] += 1
                layout["counts"]["craftings"] += (unit.kind in ("craft", "sweep_craft")
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
    return outputs, layout


class _AnyUnit:
    """Stands for every unit of a run in :func:`_plugins_of`."""

    params: dict[str, Any] = {"defense": "*", "adversary": "*"}


def _plugins_of(config: ExperimentConfig, unit: Any) -> list[tuple[str, str]]:
    """(configuration key, ``package.module:Name``) of every plugin unit ``unit`` runs
    (every plugin of the run for :class:`_AnyUnit`)."""
    from evcsa.experiments.plugins import is_plugin

    named: list[tuple[str, str]] = []
    d, a = unit.params.get("defense"), unit.params.get("adversary")
    if d == "*":
        for i, spec in enumerate(config.defenses):
            named.append((f"defenses[{i}]", spec.kind))
        for i, spec in enumerate(config.adversaries):
            named += [(f"adversaries[{i}]", spec.kind), (f"adversaries[{i}].attack", spec.params.get("attack"))]
        d = a = None
    if isinstance(d, int) and not isinstance(d, bool) and 0 <= d < len(config.defenses):
        named.append((f"defenses[{d}]", config.defenses[d].kind))
    if isinstance(a, int) and not isinstance(a, bool) and 0 <= a < len(config.adversaries):
        named.append((f"adversaries[{a}]", config.adversaries[a].kind))
        named.append((f"adversaries[{a}].attack", config.adversaries[a].params.get("attack")))
    named += [("data.dataset", config.data.dataset), ("model.architecture", config.model.architecture)]
    return [(where, name) for where, name in named if is_plugin(name)]


def _traceback_text(exc: BaseException) -> str:
    """Every file the exception passed through: its own traceback, and a pool worker's or a
    Dask worker's, which arrives as text (the ``__cause__``)."""
    import traceback

    parts = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    cause = exc.__cause__
    if cause is not None:
        parts.append(str(getattr(cause, "tb", cause)))
        parts += [f.filename for f in traceback.extract_tb(cause.__traceback__)]
    return "\n".join(parts)


def unit_failure(config: ExperimentConfig, unit: Any, exc: BaseException) -> BaseException | None:
    """The one-line error for unit ``unit`` failing with ``exc``, when a plugin is to blame
    (a :class:`~evcsa.errors.PluginError` naming the plugin, its key and the unit — the cell
    for a play), or when something called ``sys.exit``; None otherwise (an error of evcsa's
    own, raised as it came)."""
    import sys

    from evcsa.errors import PluginError
    from evcsa.experiments.plugins import failure

    from concurrent.futures import BrokenExecutor

    plugins = _plugins_of(config, unit)
    if isinstance(exc, BrokenExecutor):  # a worker died: which unit killed it is not known
        suspects = sorted({name for _, name in _plugins_of(config, _AnyUnit())})
        return PluginError(f"{unit.name}: expected the pool's worker to finish it, got a worker that died abruptly "
                           "(killed by a signal, out of memory, or os._exit in a plugin"
                           + (f": {', '.join(repr(s) for s in suspects)}" if suspects else "")
                           + "; running beside it, or this unit)", unit=unit.name)
    if not plugins:
        if isinstance(exc, SystemExit):
            return PluginError(f"{unit.name}: stopped by {failure(exc)[7:]}; expected the unit to finish or raise",
                               unit=unit.name)
        return None
    from evcsa.errors import EvcsaError

    text = _traceback_text(exc)
    blamed = []
    for where, name in plugins:
        module_name = name.split(":", 1)[0]
        stem = module_name.replace(".", "/")
        files = [getattr(sys.modules.get(module_name), "__file__", None), f"/{stem}.py", f"/{stem}/__init__.py"]
        at = max(text.rfind(f) for f in files if f)
        if at >= 0:
            blamed.append((at, where, name))
    if blamed:  # the plugin deepest in the traceback: the one that raised, or called what raised
        _, where, name = max(blamed)
        who = f"plugin {name!r} ({where})"
    elif isinstance(exc, EvcsaError) and not isinstance(exc, SystemExit):
        return None  # evcsa's own refusal, not raised through a plugin: already one line
    else:
        where, name = plugins[0]
        who = " or ".join(f"plugin {n!r} ({w})" for w, n in plugins)
    return PluginError(f"{who} failed in {unit.name}: {failure(exc)}", plugin=name, where=where, unit=unit.name)


def _environment() -> dict[str, Any]:
    import platform

    import torch

    import evcsa

    return {"evcsa": evcsa.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads()}


def run_experiment(config: ExperimentConfig, *, progress: bool | None = None, executor: Any = None,
                   cache_dir: str | None = None, log: Callable[[str], None] | None = None,
                   store: Any = None, shared: Any = None) -> ExperimentResult:
    """Run everything ``config`` describes and return the results (no results file is
    written: see :func:`evcsa.report.publish_results`).

    Args:
        config: the experiment (checked with :func:`check_config` first).
        progress: one progress bar for the whole run (None: only on a terminal).
        executor: where the units run: None — as the configuration says (``executor``,
            ``jobs``, ``dask_address``; serial by default) —, an executor of
            :mod:`evcsa.experiments.executors`, or a ``concurrent.futures.Executor``
            with the spawn or forkserver start method. The numbers are the same on each.
        cache_dir: the model cache.
        log: receives one line per finished step (e.g. ``print``).
        store: a :class:`~evcsa.experiments.store.RunStore`: finished units are taken from
            it and new ones committed to it as they finish (resumable); None keeps them in
            memory.
        shared: finished units of other runs to take instead of computing them
            (:class:`~evcsa.experiments.store.FinishedUnits`; see :func:`run_units`).

    Raises:
        ConfigError, DataError: before any work, for a bad configuration or data.
    """
    from evcsa.experiments.cells import cell_result
    from evcsa.experiments.checks import check_config
    from evcsa.experiments.executors import make_executor
    from evcsa.experiments.inputs import load_inputs
    from evcsa.experiments.seeds import with_master_key
    from evcsa.experiments.sweep import example_images, sweep_point
    from evcsa.stats import BinomialEstimate

    start = time.perf_counter()
    say = log or (lambda line: None)
    check_config(config)
    if store is not None and config.master_key is None and getattr(store, "config", None) is not None:
        import attrs

        config = attrs.evolve(config, master_key=store.config.master_key)  # the run's own, kept on resume
    config = with_master_key(config)  # recorded with the results: a rerun reproduces every number
    inputs = load_inputs(config, cache_dir=cache_dir)
    say(f"data: X_D = {inputs.samples.name} ({len(inputs.samples)} images); legitimate set "
        f"{inputs.legitimate.name} ({len(inputs.legitimate)} images)")
    own = executor is None
    if own:
        executor = make_executor(config.executor, jobs=config.jobs, address=config.dask_address)
    try:
        outputs, layout = run_units(config, cache_dir=cache_dir, store=store, executor=executor,
                                    progress=progress, log=None if progress is not False else None, shared=shared)
    finally:
        if own:
            executor.close()
    counts = layout["counts"]
    if counts.get("stored"):
        line = (f"resuming: {counts['reused'] - counts['shared']} of {counts['units']} units reused from the store, "
                f"{counts['computed']} computed")
        if counts["stale"]:
            line += (f"; {counts['stale']} stored unit{'s' if counts['stale'] != 1 else ''} computed by other code "
                     "or settings not used")
        say(line)
    say(f"units: {counts['units']} ({counts['reused']} from the store, {counts['shared']} of them from other "
        f"runs, {counts['computed']} computed); "
        f"crafting: {counts['craftings']} adversarial set(s) crafted")
    legitimate = {config.defenses[d].name: BinomialEstimate.from_counts(outputs[k].record["correct"],
                                                                        outputs[k].record["trials"])
                  for d, k in layout["legitimate"].items()}
    say("legitimate accuracy: " + ", ".join(f"{k} {v.value:.3f}" for k, v in legitimate.items()))
    cells = []
    for (d, a), keys in sorted(layout["cells"].items()):
        chunks = [outputs[k] for k in keys]
        seconds = sum(c.seconds for c in chunks)
        rejudged = outputs[layout["rejudge"][(d, a)]]
        cell = cell_result(config, d, a, chunks, rejudged=rejudged, seconds=seconds + rejudged.seconds)
        cells.append(cell)
        say(f"{cell.defense} × {cell.adversary}: success rate {cell.success_rate.value:.3f}, "
            f"Adv {next(iter(cell.advantage.values())).value:.3f}")
    sweep = tuple(sweep_point(s, delta, outputs[k]) for s, delta, k in layout["sweep"])
    examples = example_images(outputs[layout["examples"]]) if layout["examples"] else None
    if sweep:
        say(f"δ sweep: {len(sweep)} points")
    data = {"samples": inputs.samples.name, "n_samples": len(inputs.samples),
            "skipped_misclassified": inputs.dropped, "legitimate": inputs.legitimate.name,
            "n_legitimate": len(inputs.legitimate), "image_shape": list(inputs.samples.image_shape)}
    environment = {**_environment(), "device": resolve_device(config.device),
                   "executor": getattr(executor, "name", type(executor).__name__),
                   "workers": int(getattr(executor, "workers", 1)), "units": dict(counts)}
    return ExperimentResult(config=config, cells=tuple(cells), legitimate=legitimate, sweep=sweep,
                            examples=examples, data=data, model=dict(inputs.model_info),
                            environment=environment, seconds=time.perf_counter() - start)
