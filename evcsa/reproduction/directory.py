"""A reproduction's directory: its marker and lock, the plan's master key (drawn once,
kept for resumption, the repetitions' keys derived from it), and ``--overwrite``'s
removal of an earlier reproduction's run directories."""

from __future__ import annotations

import pathlib
import shutil
from typing import IO, Any

from evcsa._files import atomic_write, umask_mode
from evcsa.errors import InvalidParameter
from evcsa.experiments import store as run_store
from evcsa.experiments.seeds import draw_master_key
from evcsa.randomness import DerivedKeys, MasterKey

__all__ = ["KEY_FILE", "LOCK", "MARKER", "MARKER_RUN", "derived_key", "discard_runs", "is_reproduction_directory",
           "key_label", "plan_key", "write_marker"]

#: A reproduction directory's marker and lock (held by the reproduction running there).
MARKER = "evcsa-reproduction.marker"
LOCK = "evcsa-reproduction.lock"
#: An evcsa run directory's marker (:data:`evcsa.experiments.store.MARKER`).
MARKER_RUN = run_store.MARKER
#: The plan's master key (64 hex digits and a newline) in the reproduction directory.
KEY_FILE = "master-key"
#: The marker's text.
MARKER_TEXT = "an evcsa reproduction directory (evcsa reproduce --overwrite may empty it)\n"


def is_reproduction_directory(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is a directory ``evcsa reproduce`` made: it holds the marker or, made
    by an older evcsa, the plan's ``master-key``."""
    path = pathlib.Path(path)
    return path.is_dir() and ((path / MARKER).is_file() or (path / KEY_FILE).is_file())


def write_marker(root: pathlib.Path) -> None:
    """Write the reproduction directory's marker into ``root`` (atomically).

    Raises:
        OSError: the disk refused.
    """
    def write(fh: IO[Any]) -> None:
        fh.write(MARKER_TEXT)

    atomic_write(root / MARKER, write, mode="w", permissions=umask_mode())


def discard_runs(root: pathlib.Path) -> None:
    """Remove the run directories and the key of an earlier reproduction in ``root``
    (the caller holds the reproduction's lock): only in a reproduction directory, only
    evcsa run directories, none a run is writing (every lock is taken before anything
    is deleted) and never the working directory or a parent of it.

    Raises:
        InvalidParameter: ``root`` holds run directories but is no reproduction directory;
            a run directory may not be removed (:func:`evcsa.experiments.store.check_removable`)
            or another run holds its lock.
    """
    runs = sorted({p.parent for p in root.glob(f"*/{run_store.DATABASE}")} | {p.parent for p in root.glob(
        f"*/{MARKER_RUN}")})
    if runs and not is_reproduction_directory(root):
        raise InvalidParameter(f"{root}: expected a reproduction directory to overwrite (with "
                               f"{MARKER} or master-key), got a directory holding {len(runs)} other run "
                               "director(ies); refusing to delete them — choose another --output",
                               path=str(root))
    for run in runs:
        run_store.check_removable(run)
    held: list[int] = []
    try:
        for run in runs:
            held.append(run_store.hold_lock(run / run_store.LOCK))
        for run in runs:
            shutil.rmtree(run)
    finally:
        for fd in held:
            run_store.release_lock(fd)
    (root / KEY_FILE).unlink(missing_ok=True)


def plan_key(root: pathlib.Path) -> str:
    """The plan's master key (64 hex digits): read from ``root/master-key``, else drawn from
    OS entropy (:func:`evcsa.experiments.seeds.draw_master_key`) and recorded there
    atomically (temp file, fsync, rename; the mode a plain write gives, as before) for
    resumption.

    Raises:
        KeyStreamError: a stored key that is not 64 hex digits.
        OSError: the disk refused.
    """
    path = root / KEY_FILE
    if path.is_file():
        text = path.read_text(encoding="ascii").strip()
        return MasterKey.from_hex(text).hex()
    key = draw_master_key().hex()
    root.mkdir(parents=True, exist_ok=True)

    def write(fh: IO[Any]) -> None:
        fh.write(key + "\n")

    atomic_write(path, write, mode="w", permissions=umask_mode())
    return key


def derived_key(master_key: str, label: str | None) -> str:
    """``master_key`` itself (``label`` None) or the key derived from it for ``label``
    (HKDF-SHA256 via :class:`~evcsa.randomness.DerivedKeys`, under "reproduce"): a
    repetition's master key (64 hex digits)."""
    if label is None:
        return master_key
    keys = DerivedKeys(MasterKey.from_hex(master_key), "reproduce").derive(label)
    return (keys.next_key() + keys.next_key()).hex()


def key_label(part_id: str, run: str, index: int) -> str | None:
    """The label a configuration's master key is derived under (:func:`derived_key`): None
    (the plan's key itself) for every part but Table 3's repetitions, where repetition
    ``index`` (from 0) runs under ``"<part>/repetition-<index + 1>"``."""
    return f"{part_id}/repetition-{index + 1}" if run == "repetitions" else None
