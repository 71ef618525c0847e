"""Users' own components named ``"package.module:Name"`` in a configuration.

A ``kind`` (of a ``[[defenses]]`` or ``[[adversaries]]`` table), an adversary's ``attack``,
``model.architecture`` and ``data.dataset`` may name an object in an importable module
instead of a registry entry::

    [[adversaries]]
    kind = "my_lab.adversaries:Sneaky"   # an evcsa.adversaries.Adversary subclass

The module is imported where the work runs — the main process and every worker of a process
pool or a Dask cluster — so it must be importable there: installed, on ``PYTHONPATH``, or
a ``.py`` file in the configuration file's directory (``base_dir``, put on ``sys.path``).
Names are resolved by import and attribute lookup only (no ``eval``).
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

from evcsa.errors import ConfigError

__all__ = ["is_plugin", "load_plugin"]

_PLUGIN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_plugin(name: Any) -> bool:
    """Whether ``name`` has the form ``"package.module:Name"``."""
    return isinstance(name, str) and ":" in name


def load_plugin(name: str, *, base_dir: str | None = None, where: str = "kind") -> Any:
    """The object ``"package.module:Name"`` names (``Name`` may be dotted: ``Outer.Inner``).

    Args:
        name: ``"package.module:Name"``.
        base_dir: a directory put at the end of ``sys.path`` first (the configuration
            file's), so that a module beside the configuration is found.
        where: the configuration key, for error messages.

    Raises:
        ConfigError: a malformed name, a module that cannot be imported, or no such
            attribute (the message names ``where``).
    """
    if not isinstance(name, str) or not _PLUGIN.match(name):
        raise ConfigError(f"{where}: expected 'package.module:Name', got {name!r}", key=where)
    module_name, attr = name.split(":", 1)
    if base_dir is not None and base_dir not in sys.path:
        sys.path.append(base_dir)
    try:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a module written after this process looked at its directory
            importlib.invalidate_caches()
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module {module_name!r} for {name!r} ({exc}); it must be "
                          "importable in the main process and in every worker (installed, on PYTHONPATH, "
                          "or a .py file beside the configuration)", key=where) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where}: expected module {module_name!r} to define {attr!r}, got no such "
                              "attribute", key=where) from None
    return obj
