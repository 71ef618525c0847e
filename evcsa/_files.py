"""Writing files so that readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import IO, Any, Callable

__all__ = ["atomic_write", "umask_mode"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], *, mode: str = "wb",
                 permissions: int | None = None) -> None:
    """Write ``path`` through ``write(fh)``: into a temporary file beside it, flushed and
    fsynced, then renamed over it (``os.replace``, atomic on one file system). On any error
    the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the file to write (its directory must exist).
        write: called once with the open temporary file.
        mode: "wb" (default) or "w" (UTF-8 text).
        permissions: the file's mode bits (e.g. 0o644 for package data; default: mkstemp's
            0o600).

    Raises:
        OSError: the disk refused; whatever ``write`` raises.
    """
    target = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            if permissions is not None:
                os.fchmod(fh.fileno(), permissions)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def umask_mode() -> int:
    """The mode bits ``open(path, "w")`` would give a new file: 0o666 less the process's
    umask (for :func:`atomic_write`'s ``permissions``, whose temporary file is 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
