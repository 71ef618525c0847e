"""Locks that die with their owner: the run directory's ``evcsa-run.lock`` (and the
reproduction's), an flock on a close-on-exec descriptor that a forked child closes at once."""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket

from evcsa.errors import InvalidParameter

__all__ = ["hold_lock", "release_lock"]

_HELD: set[int] = set()


def _drop_held_locks_in_child() -> None:
    """After a fork, in the child: close its copies of the locks' descriptors. An flock
    belongs to the open file description, which a forked child shares; without this an
    adversary's forked helper would keep the run's lock after the run itself was killed."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_held_locks_in_child)


def hold_lock(path: pathlib.Path, *, what: str = "a run") -> int:
    """Take the exclusive lock file ``path`` (flock on a close-on-exec descriptor) and write
    who holds it; returns the descriptor (:func:`release_lock` gives it back).

    The kernel drops the lock when the process dies (SIGKILL included); an exec'd child never
    inherits the descriptor, and a forked child closes its copy at once (``os.register_at_fork``).

    Raises:
        InvalidParameter: another process (or another opening in this one) holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise InvalidParameter(f"{path.parent}: in use by {what} in progress ({holder}); refusing a second one "
                               "writing to the same directory", path=str(path.parent)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _HELD.add(fd)
    return fd


def release_lock(fd: int) -> None:
    """Give back a lock :func:`hold_lock` took."""
    _HELD.discard(fd)
    os.close(fd)
