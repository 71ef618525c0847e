"""Weight files that need neither torch nor h5py to read: a state dict as a ``.npz``.

:func:`save_weights_npz` writes a state dict (parameter name → array) as an uncompressed
numpy ``.npz`` whose bytes depend only on the arrays — members sorted by name, fixed zip
time stamps and permissions, ``.npy`` format 1.0 — so the same weights always give the
same file and the same SHA-256 (numpy's own ``savez`` stamps the current time into the
zip). :func:`load_weights_npz` reads it back with numpy alone (``allow_pickle=False``).
The shipped reference weights (``evcsa/models_data/``) are such files.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import zipfile
from typing import Any, Mapping

import numpy as np

from evcsa._files import atomic_write
from evcsa.errors import DataError, InvalidParameter

__all__ = ["load_weights_npz", "save_weights_npz", "sha256_bytes", "sha256_file"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can carry


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path`` as 64 lower-case hex digits.

    Raises:
        OSError: the file cannot be read.
    """
    return sha256_bytes(pathlib.Path(path).read_bytes())


def _as_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.dtype.hasobject:
        raise InvalidParameter(f"expected {name} as a numeric array or tensor, got {type(value).__name__}"
                               + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""),
                               key=name)
    return np.ascontiguousarray(value)


def save_weights_npz(state: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """Write ``state`` to ``path`` as a reproducible ``.npz`` and return its SHA-256.

    Args:
        state: parameter name → numpy array or torch tensor (any numeric dtype, stored as
            it is: pass float32 for float32 weights). Names are the zip members' names
            (``name.npy``); they must be non-empty and free of "/".
        path: the file to write (replaced atomically: a temp file beside it, then renamed).

    Returns:
        The written file's SHA-256 (64 hex digits).

    Raises:
        InvalidParameter: an empty state, a bad name or a non-numeric value.
        OSError: the disk refused the file.
    """
    if not isinstance(state, Mapping) or not state:
        raise InvalidParameter(f"expected a non-empty mapping of names to arrays, got {type(state).__name__}"
                               + (" (empty)" if isinstance(state, Mapping) else ""))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(state):
            if not isinstance(name, str) or not name or "/" in name:
                raise InvalidParameter(f"expected parameter names as non-empty strings without '/', got {name!r}",
                                       key=name)
            member = io.BytesIO()
            np.lib.format.write_array(member, _as_array(name, state[name]), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, member.getvalue())
    data = buffer.getvalue()
    # 0o644: mkstemp's 0600 would make package data unreadable to others
    atomic_write(path, lambda fh: fh.write(data), permissions=0o644)
    return sha256_bytes(data)


def load_weights_npz(source: str | os.PathLike[str] | bytes) -> dict[str, np.ndarray]:
    """A state dict (parameter name → numpy array) from a ``.npz`` file, or from its bytes.

    numpy only: no torch, no h5py, no pickle.

    Raises:
        DataError: not a readable ``.npz`` of numeric arrays (``path`` names the file).
    """
    where = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        fh: Any = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        with np.load(fh, allow_pickle=False) as archive:
            state = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"expected a .npz file of weights, got {where}: {type(exc).__name__}: {exc}",
                        path=where) from exc
    if not state:
        raise DataError(f"expected a .npz file of weights, got {where}: it holds no arrays", path=where)
    return state
