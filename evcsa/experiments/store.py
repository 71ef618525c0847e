"""The run directory's store: every finished unit of work, committed as it finishes.

Layout of a run directory::

    evcsa-run.marker   says "an evcsa run directory": only such a directory (or an older one
                       holding evcsa-run.sqlite) is ever deleted by --overwrite
    evcsa-run.sqlite   records (SQLite, WAL journal): the configuration and its fingerprint,
                       one row per finished unit (kind, name, record as JSON, seconds),
                       one row per execution (which attempt ran which unit)
    units/<key>.npz    the unit's arrays (tensors), written before its row is committed
    evcsa-run.lock     held (flock) by the run writing here; the kernel drops it when the
                       process dies, even by SIGKILL, and a process the run forks (an
                       adversary's helper) does not keep it (:func:`hold_lock`)
    run.log            one line per event, appended by every attempt
    results.json, …    the results files, written when every unit is done

A unit counts as finished only when its row is committed, and its row is committed only after
its ``.npz`` is complete on disk (written to a temporary name, then renamed): a kill at any
moment leaves only finished units and, at most, an orphaned temporary file. A unit whose
``.npz`` went missing counts as not finished.

:class:`RunStore` refuses a directory that holds a run of another configuration, one that is
not an evcsa run directory (even when told to overwrite: :func:`check_removable`), one another
process is writing (the lock), and a damaged store (:class:`~evcsa.errors.CorruptStore`: a
corrupt or emptied ``evcsa-run.sqlite`` is never taken for a new run, a corrupt unit file is
reported with the way to compute that unit again).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import sqlite3
import time
from typing import Any

import attrs
import numpy as np

from evcsa.errors import CorruptStore, InvalidParameter

__all__ = ["FinishedUnits", "RunStore", "SubmittedSamples", "check_removable", "config_fingerprint",
           "hold_lock", "is_run_directory", "release_lock"]

DATABASE = "evcsa-run.sqlite"
LOCK = "evcsa-run.lock"
MARKER = "evcsa-run.marker"
LOG = "run.log"
FORMAT = "evcsa-run/1"
#: Leftovers of a publication killed half-way (:func:`~evcsa.report.publish_results`
#: stages the results in ``.results-<pid>``, :func:`~evcsa.report.write_results` writes into a
#: temporary ``..results-<pid>.*`` beside it): removed when the directory is next opened.
STAGING = re.compile(r"^\.{1,2}results-\d+")


# -- locks that die with their owner ---------------------------------------------------------
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
    import fcntl

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


# -- what --overwrite may delete ---------------------------------------------------------------
def is_run_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory evcsa made for a run: it holds the marker
    (``evcsa-run.marker``) or, made by an older evcsa, the store (``evcsa-run.sqlite``)."""
    path = pathlib.Path(path)
    return path.is_dir() and ((path / MARKER).is_file() or (path / DATABASE).is_file())


def _write_marker(path: pathlib.Path) -> None:
    marker = path / MARKER
    if not marker.is_file():
        marker.write_text(f"{FORMAT}: an evcsa run directory (evcsa play --overwrite may delete it)\n",
                          encoding="utf-8")


def check_removable(path: str | os.PathLike[str], *, recognised: Any = is_run_directory,
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


def _empty_except(path: pathlib.Path, keep: tuple[str, ...]) -> None:
    """Delete everything in ``path`` but the entries ``keep`` (the lock, held meanwhile, and
    the marker: a kill half-way leaves a directory still recognised as evcsa's)."""
    for child in path.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _corrupt_store(path: pathlib.Path, what: str) -> CorruptStore:
    return CorruptStore(f"{path / DATABASE}: expected an evcsa run store, got {what}; nothing was changed — "
                        "move the directory aside (or pass --overwrite to start it over: its finished units are "
                        "lost)", path=str(path / DATABASE))


def _has_results(path: pathlib.Path) -> bool:
    """Whether a run directory holds traces of finished work (unit files, results, a log)."""
    units = path / "units"
    return ((units.is_dir() and any(units.glob("*.npz"))) or (path / "results.json").exists()
            or ((path / LOG).is_file() and (path / LOG).stat().st_size > 0))

#: Configuration keys that choose where the work runs, not what it computes: they may
#: differ between a run and its resumption.
EXECUTION_KEYS = ("executor", "jobs", "dask_address")


def config_fingerprint(config: Any) -> str:
    """SHA-256 of the configuration (canonical JSON), without the execution keys."""
    from evcsa.config import config_to_dict
    from evcsa.experiments.units import content_key

    data = config_to_dict(config)
    for key in (*EXECUTION_KEYS, "master_key"):  # the key is the store's own (RunStore.config)
        data.pop(key, None)
    return content_key(data)


class RunStore:
    """The store of one run directory (see the module docstring).

    Open it with :meth:`open`; it holds the directory's lock until :meth:`close`.

    Attributes:
        path: the run directory.
        attempt: this opening's number (1 for a new run, 2 for its first resumption, …).
        created: whether this opening created the directory.
        config: the configuration to run, with the run's master key filled in (reproducible
            runs): drawn from OS entropy when the run is created, read back from the store
            when it resumes, so a resumed run derives the same keys as an uninterrupted one.
    """

    def __init__(self, path: pathlib.Path, db: sqlite3.Connection, lock_fd: int, attempt: int,
                 created: bool) -> None:
        self.path, self._db, self._lock_fd = path, db, lock_fd
        self.attempt, self.created = attempt, created
        self._log = open(path / LOG, "a", encoding="utf-8")

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], config: Any, *, overwrite: bool = False,
             resume: bool = True, recompute_corrupt: bool = False) -> RunStore:
        """Create the run directory ``path`` for ``config``, or open it to resume.

        Args:
            path: the run directory.
            config: the experiment (its fingerprint is recorded, or compared).
            overwrite: replace the run ``path`` holds (of any configuration) by a new run.
                Only an evcsa run directory is ever deleted (:func:`check_removable`), never
                one a run is writing, the working directory or a parent of it.
            resume: accept an existing run of the same configuration (False: refuse it).
            recompute_corrupt: a finished unit whose ``.npz`` turns out corrupt is computed
                again (False: :meth:`get` raises :class:`~evcsa.errors.CorruptStore`).

        Raises:
            InvalidParameter: ``path`` is a file; it holds a run of another configuration or
                (``resume`` false) a run, and ``overwrite`` is false; it is not an evcsa run
                directory (with or without ``overwrite``), or ``overwrite`` would delete the
                working directory, a parent of it, home or root; another process holds its
                lock; it cannot be created.
            CorruptStore: its ``evcsa-run.sqlite`` is damaged, or empty beside finished work.
        """
        from evcsa.experiments.seeds import with_master_key

        path = pathlib.Path(path)
        fingerprint = config_fingerprint(config)
        if path.exists() and not path.is_dir():
            raise InvalidParameter(f"{path}: expected a run directory, got an existing file", path=str(path))
        created = False
        lock_fd = None
        if path.exists() and overwrite:
            check_removable(path)
            lock_fd = hold_lock(path / LOCK)  # refuses a directory a run is writing
            try:
                _empty_except(path, (LOCK, MARKER))  # under the lock: no other run starts in between
            except BaseException:
                release_lock(lock_fd)
                raise
            created = True
        elif path.exists():
            if not is_run_directory(path):
                raise InvalidParameter(f"{path}: expected a new results directory, got an existing one that is "
                                       "not an evcsa run directory (choose another --output)", path=str(path))
        else:
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise InvalidParameter(f"{path}: cannot create the run directory ({exc.strerror})",
                                       path=str(path)) from exc
            created = True
        try:
            if lock_fd is None:
                lock_fd = hold_lock(path / LOCK)
        except BaseException:
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        try:
            _write_marker(path)
            store_existed = (path / DATABASE).is_file()
            try:
                db = sqlite3.connect(path / DATABASE, isolation_level=None, timeout=30)
                if store_existed:
                    cls._check_store(path, db)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript("""
                    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS units (key TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
                        record TEXT NOT NULL, arrays INTEGER NOT NULL, seconds REAL NOT NULL,
                        attempt INTEGER NOT NULL, finished REAL NOT NULL);
                    CREATE TABLE IF NOT EXISTS executions (attempt INTEGER NOT NULL, key TEXT NOT NULL,
                        kind TEXT NOT NULL, started REAL NOT NULL);
                """)
                meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            except sqlite3.DatabaseError as exc:
                raise _corrupt_store(path, f"a damaged file (SQLite: {exc})") from exc
            if not meta:
                from evcsa import __version__
                from evcsa.config import config_to_toml

                config = with_master_key(config)  # drawn once, kept: a resumption uses the same keys
                with db:
                    db.execute("BEGIN")
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", FORMAT), ("fingerprint", fingerprint),
                        ("config", config_to_toml(config, base_dir=True)),
                        ("master_key", config.master_key or ""),
                        ("evcsa", __version__), ("created", repr(time.time())), ("attempts", "1"),
                        ("status", "running"), ("host", socket.gethostname())])
                attempt = 1
            else:
                if meta.get("format") != FORMAT:
                    raise InvalidParameter(f"{path}: expected a run directory of format {FORMAT}, got "
                                           f"{meta.get('format')!r}", path=str(path))
                if meta.get("fingerprint") != fingerprint:
                    raise InvalidParameter(f"{path}: holds a run of another configuration (its config.toml is in "
                                           "the store: evcsa play --resume DIR); refusing to mix them — choose "
                                           "another --output, or pass --overwrite to replace it", path=str(path))
                if not resume:
                    raise InvalidParameter(f"{path}: expected a new run directory, got an existing run (pass "
                                           "--resume, or --overwrite to replace it)", path=str(path))
                stored_key = meta.get("master_key") or None
                if config.master_key is not None and stored_key is not None and config.master_key != stored_key:
                    raise InvalidParameter(f"{path}: holds a run made with another master_key; refusing to mix "
                                           "keys — resume without master_key (the stored one is used), choose "
                                           "another --output, or pass --overwrite", path=str(path))
                if stored_key is not None:
                    config = attrs.evolve(config, master_key=stored_key)
                else:
                    config = with_master_key(config)
                attempt = int(meta.get("attempts", "1")) + 1
                with db:
                    db.execute("BEGIN")
                    db.execute("UPDATE meta SET value = ? WHERE name = 'attempts'", (str(attempt),))
                    db.execute("UPDATE meta SET value = 'running' WHERE name = 'status'")
            store = cls(path, db, lock_fd, attempt, created)
            store.config = config
            store.recompute_corrupt = recompute_corrupt
            store._forget_incomplete()
            store._remove_staging()
        except BaseException:  # a refusal, or a signal while opening: a new directory is removed again
            release_lock(lock_fd)
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return store

    @staticmethod
    def _check_store(path: pathlib.Path, db: sqlite3.Connection) -> None:
        """An existing store must be a whole SQLite database holding a run's records: a
        damaged file, or an empty one (0 bytes, or no records) beside finished work, is
        refused — taken for a new run it would draw a new master key over the old results.

        Raises:
            CorruptStore: it is not.
        """
        try:
            check = db.execute("PRAGMA quick_check").fetchall()
            tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            meta = db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] if "meta" in tables else 0
        except sqlite3.DatabaseError as exc:
            raise _corrupt_store(path, f"a damaged file (SQLite: {exc})") from exc
        if check != [("ok",)]:
            raise _corrupt_store(path, "a damaged file (SQLite integrity check: "
                                       f"{'; '.join(str(r[0]) for r in check[:2])})")
        if meta == 0 and _has_results(path):
            size = (path / DATABASE).stat().st_size
            raise _corrupt_store(path, f"{'a 0-byte file' if size == 0 else 'a store without records'} beside "
                                       "finished work (units/, results.json or run.log): its records are lost")

    @classmethod
    def _check_not_locked(cls, path: pathlib.Path) -> None:
        if (path / LOCK).is_file():
            release_lock(hold_lock(path / LOCK))

    @staticmethod
    def config_text(path: str | os.PathLike[str]) -> str:
        """The configuration (TOML) a run directory was created for.

        Raises:
            InvalidParameter: ``path`` is not an evcsa run directory.
        """
        db_path = pathlib.Path(path) / DATABASE
        if not pathlib.Path(path).is_dir():
            raise InvalidParameter(f"{path}: expected an evcsa run directory, got no such directory",
                                   path=str(path))
        if not db_path.is_file():
            raise InvalidParameter(f"{path}: expected an evcsa run directory (with {DATABASE}), got none",
                                   path=str(path))
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'config'").fetchone()
        except sqlite3.DatabaseError as exc:
            if db_path.stat().st_size == 0 or "no such table" in str(exc):
                raise _corrupt_store(pathlib.Path(path), "an empty store (no records)") from exc
            raise _corrupt_store(pathlib.Path(path), f"a damaged file (SQLite: {exc})") from exc
        finally:
            db.close()
        if row is None:
            raise _corrupt_store(pathlib.Path(path), "a store without its configuration")
        return row[0]

    def _forget_incomplete(self) -> None:
        """Rows whose arrays are missing (a disk that lost them) are not finished units."""
        rows = self._db.execute("SELECT key FROM units WHERE arrays = 1").fetchall()
        gone = [k for (k,) in rows if not self._npz(k).is_file()]
        if gone:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM units WHERE key = ?", [(k,) for k in gone])
        for tmp in (self.path / "units").glob("*.tmp") if (self.path / "units").is_dir() else ():
            tmp.unlink(missing_ok=True)

    def _remove_staging(self) -> None:
        """A publication killed half-way left its staging directories: this opening holds the
        lock, so no other process is publishing — they are leftovers."""
        for entry in self.path.iterdir():
            if STAGING.match(entry.name):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def forget(self, key: str) -> None:
        """Drop finished unit ``key`` (its row and its ``.npz``): it is computed again."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM units WHERE key = ?", (key,))
        self._npz(key).unlink(missing_ok=True)

    # -- units -----------------------------------------------------------------------------
    def _npz(self, key: str) -> pathlib.Path:
        return self.path / "units" / f"{key}.npz"

    def done(self) -> set[str]:
        """The keys of the finished units."""
        return {k for (k,) in self._db.execute("SELECT key FROM units")}

    def started(self, key: str, kind: str) -> None:
        """Record that this attempt executes unit ``key`` (counts recomputations)."""
        with self._db:
            self._db.execute("INSERT INTO executions VALUES (?, ?, ?, ?)", (self.attempt, key, kind, time.time()))

    def put(self, unit: Any, output: Any) -> None:
        """Commit a finished unit: its arrays to ``units/<key>.npz`` (atomically), then its row."""
        has_arrays = bool(output.arrays)
        if has_arrays:
            (self.path / "units").mkdir(exist_ok=True)
            final = self._npz(unit.key)
            tmp = final.with_suffix(".tmp")
            try:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **{k: np.asarray(v) for k, v in output.arrays.items()})
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            except BaseException:  # interrupted while writing: no half-written file stays
                tmp.unlink(missing_ok=True)
                raise
        record = json.dumps(output.record, allow_nan=True, sort_keys=True)
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (unit.key, unit.kind, unit.name, record, int(has_arrays), float(output.seconds),
                              self.attempt, time.time()))

    def get(self, key: str) -> Any:
        """The :class:`~evcsa.experiments.work.Output` of finished unit ``key``.

        Raises:
            KeyError: no such finished unit.
        """
        from evcsa.experiments.work import Output

        row = self._db.execute("SELECT record, arrays, seconds, name FROM units WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        try:
            record = json.loads(row[0])
        except ValueError as exc:
            raise CorruptStore(f"{self.path / DATABASE}: expected the record of unit {row[3]!r} as JSON, got a "
                               f"damaged one ({exc}); rerun with --recompute-corrupt to compute it again",
                               path=str(self.path / DATABASE), key=key) from exc
        arrays = _load_arrays(self._npz(key), row[3]) if row[1] else {}
        return Output(record=record, arrays=arrays, seconds=float(row[2]))

    def executions(self, attempt: int | None = None) -> list[tuple[int, str, str]]:
        """(attempt, key, kind) of every unit execution started (this attempt's, or all)."""
        q = "SELECT attempt, key, kind FROM executions" + ("" if attempt is None else " WHERE attempt = ?")
        return [tuple(r) for r in self._db.execute(q, () if attempt is None else (attempt,))]

    def units(self) -> list[dict[str, Any]]:
        """One dict per finished unit: key, kind, name, seconds, attempt."""
        rows = self._db.execute("SELECT key, kind, name, seconds, attempt FROM units ORDER BY finished")
        return [dict(zip(("key", "kind", "name", "seconds", "attempt"), r)) for r in rows]

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    def log(self, line: str) -> None:
        """Append a line to ``run.log`` (UTC time, attempt)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._log.write(f"{stamp} [attempt {self.attempt}] {line}\n")
        self._log.flush()

    def close(self, status: str | None = None) -> None:
        """Record ``status`` ("complete", "interrupted", "failed"), release the lock."""
        if self._db is None:
            return
        if status is not None:
            self.set_meta(status=status)
        self._db.close()
        self._db = None  # type: ignore[assignment]
        self._log.close()
        release_lock(self._lock_fd)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _load_arrays(path: pathlib.Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of a unit's ``.npz`` (every one read, so a damaged file fails here).

    Raises:
        CorruptStore: missing, truncated or damaged (ZIP CRC, format).
    """
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else f"a damaged file ({type(exc).__name__}: {exc})"
        raise CorruptStore(f"{path}: expected the arrays of unit {name!r}, got {what}; rerun with "
                           "--recompute-corrupt to compute that unit again (or delete the file: a unit without "
                           "its arrays counts as not finished)", path=str(path)) from exc


class FinishedUnits:
    """Read-only view of the finished units of other run directories, by content key.

    A run given such a view (``run_experiment(..., shared=...)``) takes a unit it lacks from
    the first directory that finished it, instead of computing it again, and commits a copy
    to its own store (each run directory stays complete on its own). Units are the same work
    exactly when their content keys are equal (:mod:`evcsa.experiments.units`), so sharing
    never changes a number: the reproduction's Table 1, Table 2 and Figures 5–7 evaluate one
    adversarial set per attack this way.

    Directories that do not exist yet, or are not run directories, are skipped, and so is a
    unit whose file there is damaged (it is computed instead); one being written by another
    process is read as far as it has committed (SQLite, WAL journal).
    """

    def __init__(self, paths: Any) -> None:
        self.paths = tuple(pathlib.Path(p) for p in paths)

    def get(self, key: str) -> Any:
        """The :class:`~evcsa.experiments.work.Output` of ``key`` from the first directory
        that finished it, or None."""
        from evcsa.experiments.work import Output

        for path in self.paths:
            db_path = path / DATABASE
            if not db_path.is_file():
                continue
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
            try:
                row = db.execute("SELECT record, arrays, seconds FROM units WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            finally:
                db.close()
            if row is None:
                continue
            arrays: dict[str, np.ndarray] = {}
            try:
                record = json.loads(row[0])
                if row[1]:
                    arrays = _load_arrays(path / "units" / f"{key}.npz", key)
            except (ValueError, CorruptStore):  # damaged there (or missing): computed here instead
                continue
            return Output(record=record, arrays=arrays, seconds=float(row[2]))
        return None


_GAMES = re.compile(r"\d+–\d+")


class SubmittedSamples:
    """The adversarial samples one cell submitted, reloaded from a run directory, to
    re-judge them (``evcsa.games.rejudge``) or look at them.

    Attributes (one entry per accepted submission, games in order):
        x_adv: float32 [S, C, H, W] in [0, 1], the submitted x′.
        sources: int64 [S], indices into X_D; targets: int64 [S] (−1: untargeted).
        games: int64 [S], the game of each; success: bool [S], its outcome in that game;
        labels: int64 [S], C(x′) as the game saw it (−1: rejected); true_labels: int64 [S].
    """

    def __init__(self, chunks: list[Any]) -> None:
        parts: dict[str, list[np.ndarray]] = {}
        xs = []
        for c in chunks:
            a = c.arrays
            xs.append(a["samples"][a["sub_sample"]])
            for name in ("source", "target", "game", "success", "label", "true_label"):
                parts.setdefault(name, []).append(a[f"sub_{name}"])
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        self.x_adv = np.concatenate(xs) if xs else np.zeros((0,), dtype=np.float32)
        self.sources, self.targets, self.games = cat["source"], cat["target"], cat["game"]
        self.success, self.labels, self.true_labels = cat["success"], cat["label"], cat["true_label"]

    def __len__(self) -> int:
        return int(self.sources.shape[0])

    @classmethod
    def load(cls, path: str | os.PathLike[str], defense: str, adversary: str) -> SubmittedSamples:
        """The submissions of cell (``defense`` × ``adversary``, labels) of run directory ``path``.

        The labels are matched exactly (a ``%`` or ``_`` in a label is that character).

        Raises:
            InvalidParameter: not a run directory, no such cell, or no finished game of it.
            CorruptStore: the store or a unit file of that cell is damaged.
        """
        db_path = pathlib.Path(path) / DATABASE
        if not db_path.is_file():
            raise InvalidParameter(f"{path}: expected an evcsa run directory, got none", path=str(path))
        cell = f"{defense} × {adversary}"
        prefix = f"play {cell}, games "
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            config = db.execute("SELECT value FROM meta WHERE name = 'config'").fetchone()
            rows = [(k, r) for k, r, name in db.execute("SELECT key, record, name FROM units WHERE kind = 'play'")
                    if name.startswith(prefix) and _GAMES.fullmatch(name[len(prefix):])]  # exact, not LIKE
        except sqlite3.DatabaseError as exc:
            raise _corrupt_store(pathlib.Path(path), f"a damaged file (SQLite: {exc})") from exc
        finally:
            db.close()
        if config is not None:
            from evcsa.config import parse_config

            try:
                stored = parse_config(config[0])
            except InvalidParameter:  # pragma: no cover - the store wrote it
                stored = None
            if stored is not None:
                labels = [(d.name, a.name) for d in stored.defenses for a in stored.adversaries]
                if (defense, adversary) not in labels:
                    raise InvalidParameter(
                        f"{path}: expected a cell of this run (defenses {[d.name for d in stored.defenses]}, "
                        f"adversaries {[a.name for a in stored.adversaries]}), got {defense!r} × {adversary!r}",
                        path=str(path))
                if sum(f"{d} × {a}" == cell for d, a in labels) > 1:
                    raise InvalidParameter(f"{path}: expected labels that name one cell, got {cell!r} naming "
                                           "several (labels containing ' × ')", path=str(path))
        if not rows:
            raise InvalidParameter(f"{path}: expected finished games of cell {defense!r} × {adversary!r}, got none",
                                   path=str(path))
        from evcsa.experiments.work import Output

        chunks = []
        for key, record in sorted(rows, key=lambda r: json.loads(r[1])["start"]):
            arrays = _load_arrays(pathlib.Path(path) / "units" / f"{key}.npz", f"{prefix}…")
            chunks.append(Output(record=json.loads(record), arrays=arrays))
        return cls(chunks)

