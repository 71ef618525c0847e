"""The files of a run directory (see :mod:`evcsa.experiments.store` for the layout): their
names, the marker that says evcsa made the directory, and what ``--overwrite`` may delete
(:func:`check_removable`)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
from typing import Callable

from evcsa._files import atomic_write, umask_mode
from evcsa.errors import CorruptStore, InvalidParameter

__all__ = ["DATABASE", "FORMAT", "LOCK", "LOG", "MARKER", "STAGING", "check_removable", "corrupt_store",
           "empty_except", "has_results", "is_run_directory", "write_marker"]

DATABASE = "evcsa-run.sqlite"
LOCK = "evcsa-run.lock"
MARKER = "evcsa-run.marker"
LOG = "run.log"
FORMAT = "evcsa-run/1"
#: Leftovers of a publication killed half-way (:func:`~evcsa.report.publish_results`
#: stages the results in ``.results-<pid>``, :func:`~evcsa.report.write_results` writes into a
#: temporary ``..results-<pid>.*`` beside it): removed when the directory is next opened.
STAGING = re.compile(r"^\.{1,2}results-\d+")

def is_run_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory evcsa made for a run: it holds the marker
    (``evcsa-run.marker``) or, made by an older evcsa, the store (``evcsa-run.sqlite``)."""
    path = pathlib.Path(path)
    return path.is_dir() and ((path / MARKER).is_file() or (path / DATABASE).is_file())


def write_marker(path: pathlib.Path) -> None:
    """Write the marker that says ``path`` is an evcsa run directory (once)."""
    marker = path / MARKER
    if not marker.is_file():
        text = f"{FORMAT}: an evcsa run directory (evcsa play --overwrite may delete it)\n"
        atomic_write(marker, lambda fh: fh.write(text), mode="w", permissions=umask_mode())


def check_removable(path: str | os.PathLike[str], *, recognised: Callable[[pathlib.Path], bool] = is_run_directory,
                    what: str = "an evcsa run directory") -> pathlib.Path:
    """Check that ``--overwrite`` may delete the directory ``path``: ``recognised(path)``
    says evcsa made it, and it is neither a symbolic link, nor the working directory or
    one of its parents, nor the home directory or the file system's root.

    Returns:
        The resolved path.

    Raises:
        InvalidParameter: it may not be deleted (nothing is).
    """
    given = pathlib.Path(path)
    if given.is_symlink():
        raise InvalidParameter(f"{given}: expected {what} to overwrite, got a symbolic link (refusing to delete "
                               "through it)", path=str(given))
    real = given.resolve()
    cwd = pathlib.Path.cwd().resolve()
    try:
        home = pathlib.Path.home().resolve()
    except (KeyError, RuntimeError):  # no home directory known
        home = None
    if real == pathlib.Path(real.anchor):
        why = "the file system's root"
    elif real == cwd:
        why = "the working directory"
    elif real in cwd.parents:
        why = "a parent of the working directory"
    elif home is not None and (real == home or real in home.parents):
        why = "the home directory" if real == home else "a parent of the home directory"
    else:
        why = None
    if why is not None:
        raise InvalidParameter(f"{given}: expected {what} to overwrite, got {why} ({real}); refusing to delete it "
                               "— choose another --output", path=str(given))
    if not recognised(real):
        raise InvalidParameter(f"{given}: expected {what} to overwrite, got a directory evcsa did not create "
                               "(no evcsa marker); refusing to delete it — delete it yourself or choose another "
                               "--output", path=str(given))
    return real


def empty_except(path: pathlib.Path, keep: tuple[str, ...]) -> None:
    """Delete everything in ``path`` but the entries ``keep`` (the lock, held meanwhile, and
    the marker: a kill half-way leaves a directory still recognised as evcsa's)."""
    for child in path.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def corrupt_store(path: pathlib.Path, what: str) -> CorruptStore:
    """The error for a damaged store of run directory ``path`` (``what``: what was found)."""
    return CorruptStore(f"{path / DATABASE}: expected an evcsa run store, got {what}; nothing was changed — "
                        "move the directory aside (or pass --overwrite to start it over: its finished units are "
                        "lost)", path=str(path / DATABASE))


def has_results(path: pathlib.Path) -> bool:
    """Whether a run directory holds traces of finished work (unit files, results, a log)."""
    units = path / "units"
    return ((units.is_dir() and any(units.glob("*.npz"))) or (path / "results.json").exists()
            or ((path / LOG).is_file() and (path / LOG).stat().st_size > 0))
