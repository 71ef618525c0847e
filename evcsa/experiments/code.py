"""What code computed a unit: digests of evcsa's own source and of users' plugin modules.

A unit's content key (:mod:`evcsa.experiments.units`) holds these digests, so a run resumed
with other code — another evcsa commit, or a fixed plugin — recomputes what that code
computes instead of mixing old and new results (``evcsa.__version__`` alone is the same
for every commit of a release).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import pathlib
import sys

import evcsa

__all__ = ["component_code", "evcsa_source_digest", "module_source_digest"]

#: The files of a package whose bytes make its code digest (sources and the data they read).
_SUFFIXES = (".py", ".toml", ".json")


def _tree_digest(root: pathlib.Path, files: list[pathlib.Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(name).to_bytes(4, "big") + name + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def _package_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in directory.rglob("*") if p.is_file() and p.suffix in _SUFFIXES and "__pycache__" not in p.parts]


@functools.lru_cache(maxsize=None)
def evcsa_source_digest() -> str:
    """SHA-256 (hex) over evcsa's own source files (``*.py``, ``*.toml``, ``*.json`` of the
    installed package, by relative path and bytes): changes with every change of the code
    (a comment too), not with the version string alone. Read once per process."""
    root = pathlib.Path(evcsa.__file__).resolve().parent
    return _tree_digest(root, _package_files(root))


def module_source_digest(module: object) -> str:
    """SHA-256 (hex) of a module's source: its file, or every source file of a package;
    ``"unknown:<name>"`` for a module without files (built in, made at run time), which
    then changes no key."""
    path = getattr(module, "__file__", None)
    name = getattr(module, "__name__", repr(module))
    if not path:
        return f"unknown:{name}"
    file = pathlib.Path(path).resolve()
    if getattr(module, "__path__", None) is not None:  # a package: all of it
        return _tree_digest(file.parent, _package_files(file.parent))
    return _tree_digest(file.parent, [file])


def component_code(obj: object) -> str | None:
    """The code digest of a user's component (a plugin class or function, a registry entry
    added at run time): its module's :func:`module_source_digest`; None for evcsa's own
    components (covered by :func:`evcsa_source_digest`) and for objects of no module."""
    module_name = getattr(obj, "__module__", None) or getattr(inspect.getmodule(obj), "__name__", None)
    if not module_name or module_name == "evcsa" or module_name.startswith("evcsa."):
        return None
    module = sys.modules.get(module_name)
    return None if module is None else module_source_digest(module)
