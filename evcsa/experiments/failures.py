"""Which plugin to blame when a unit fails (:func:`unit_failure`): the one-line
:class:`~evcsa.errors.PluginError` naming the plugin, its configuration key and the unit."""

from __future__ import annotations

import sys
import traceback
from concurrent.futures import BrokenExecutor
from typing import Any, Mapping

from evcsa.config import ExperimentConfig
from evcsa.errors import EvcsaError, PluginError
from evcsa.experiments.plugins import failure, is_plugin
from evcsa.experiments.units import Unit

__all__ = ["unit_failure"]


class _AnyUnit:
    """Stands for every unit of a run in :func:`_plugins_of`."""

    params: Mapping[str, Any] = {"defense": "*", "adversary": "*"}


def _plugins_of(config: ExperimentConfig, unit: Unit | _AnyUnit) -> list[tuple[str, str]]:
    """(configuration key, ``package.module:Name``) of every plugin unit ``unit`` runs
    (every plugin of the run for :class:`_AnyUnit`)."""
    named: list[tuple[str, object]] = []  # (key, value), plugin names or not
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
    parts = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    cause = exc.__cause__
    if cause is not None:
        parts.append(str(getattr(cause, "tb", cause)))
        parts += [f.filename for f in traceback.extract_tb(cause.__traceback__)]
    return "\n".join(parts)


def unit_failure(config: ExperimentConfig, unit: Unit, exc: BaseException) -> BaseException | None:
    """The one-line error for unit ``unit`` failing with ``exc``, when a plugin is to blame
    (a :class:`~evcsa.errors.PluginError` naming the plugin, its key and the unit — the cell
    for a play), or when something called ``sys.exit``; None otherwise (an error of evcsa's
    own, raised as it came)."""
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
