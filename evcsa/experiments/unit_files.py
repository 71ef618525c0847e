"""A finished unit's arrays on disk (``units/<key>.npz``): the one writer
(:func:`write_unit_arrays`, atomic: :func:`evcsa._files.atomic_write`) and the one reader
(:func:`read_unit_arrays`) of every unit file — the run's store, other runs' finished units
and the submitted samples all read through it."""

from __future__ import annotations

import pathlib
import zipfile
import zlib
from typing import IO, Any, Callable, Mapping

import numpy as np

from evcsa._files import atomic_write, umask_mode
from evcsa.errors import CorruptStore

__all__ = ["read_unit_arrays", "unit_file", "write_unit_arrays"]


def unit_file(run_dir: pathlib.Path, key: str) -> pathlib.Path:
    """Where run directory ``run_dir`` keeps the arrays of unit ``key``."""
    return run_dir / "units" / f"{key}.npz"


def write_unit_arrays(path: pathlib.Path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` (name → array-like) to ``path`` (``.npz``, uncompressed) atomically:
    a temporary file beside it, fsynced, renamed; a failure leaves no file.

    Raises:
        OSError: the disk refused.
    """
    savez: Callable[..., None] = np.savez  # its stub types the arrays keywords as its own flags

    def write(fh: IO[Any]) -> None:
        savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    atomic_write(path, write, permissions=umask_mode())


def read_unit_arrays(path: pathlib.Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of a unit's ``.npz`` (every one read, so a damaged file fails here).

    Raises:
        CorruptStore: missing, truncated or damaged (ZIP CRC, format).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else f"a damaged file ({type(exc).__name__}: {exc})"
        raise CorruptStore(f"{path}: expected the arrays of unit {name!r}, got {what}; rerun with "
                           "--recompute-corrupt to compute that unit again (or delete the file: a unit without "
                           "its arrays counts as not finished)", path=str(path)) from exc
