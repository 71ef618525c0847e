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
from typing import Any, TypeGuard

from evcsa.errors import ConfigError

__all__ = ["failure", "is_plugin", "load_plugin"]

_PLUGIN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_plugin(name: object) -> TypeGuard[str]:
    """Whether ``name`` has the form ``"package.module:Name"`` (a str with a colon)."""
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
        except ImportError as exc:  # a module written after this process looked at its directory
            if not _is_missing(exc, module_name):
                raise
            importlib.invalidate_caches()
            module = importlib.import_module(module_name)
    except ImportError as exc:
        if not _is_missing(exc, module_name):
            raise ConfigError(f"{where}: module {module_name!r} of plugin {name!r} failed to import: "
                              f"{failure(exc)}", key=where) from exc
        raise ConfigError(f"{where}: cannot import module {module_name!r} for {name!r} ({exc}); it must be "
                          "importable in the main process and in every worker (installed, on PYTHONPATH, "
                          "or a .py file beside the configuration)", key=where) from exc
    except (Exception, SystemExit) as exc:  # the module's own code raised, or called sys.exit
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{where}: module {module_name!r} of plugin {name!r} failed to import: "
                          f"{failure(exc)}", key=where) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where}: expected module {module_name!r} to define {attr!r}, got no such "
                              "attribute", key=where) from None
    return obj


def _is_missing(exc: ImportError, module_name: str) -> bool:
    """Whether ``exc`` says that ``module_name`` (or a package above it) is not there, as
    opposed to an import inside that module failing."""
    missing = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and missing is not None and (
        module_name == missing or module_name.startswith(missing + "."))


def failure(exc: BaseException) -> str:
    """What a plugin did, in a few words: "called sys.exit(3)", "raised ValueError: boom"
    (the first line of the message)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})" if exc.code is not None else "called sys.exit()"
    text = str(exc.message if hasattr(exc, "message") else exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"raised {type(exc).__name__}" + (f": {first}" if first else "")
