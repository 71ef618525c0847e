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
import shutil
import socket
import sqlite3
import time
from typing import Any

import attrs

from evcsa import __version__
from evcsa.config import ExperimentConfig, config_to_dict, config_to_toml
from evcsa.errors import CorruptStore, InvalidParameter
from evcsa.experiments.directory import (DATABASE, FORMAT, LOCK, LOG, MARKER, STAGING, check_removable, corrupt_store,
                                         empty_except, has_results, is_run_directory, write_marker)
from evcsa.experiments.finished import FinishedUnits, SubmittedSamples
from evcsa.experiments.locks import hold_lock, release_lock
from evcsa.experiments.seeds import with_master_key
from evcsa.experiments.unit_files import read_unit_arrays, unit_file, write_unit_arrays
from evcsa.experiments.units import Output, Unit, content_key

# the run directory's names and helpers, importable from here as before the store was split
__all__ = ["DATABASE", "FORMAT", "LOCK", "LOG", "MARKER", "STAGING", "FinishedUnits", "RunStore", "SubmittedSamples",
           "check_removable", "config_fingerprint", "hold_lock", "is_run_directory", "release_lock"]

#: Configuration keys that choose where the work runs, not what it computes: they may
#: differ between a run and its resumption.
EXECUTION_KEYS = ("executor", "jobs", "dask_address")


def config_fingerprint(config: ExperimentConfig) -> str:
    """SHA-256 of the configuration (canonical JSON), without the execution keys."""
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

    config: ExperimentConfig  # set by open
    recompute_corrupt: bool  # set by open: whether a corrupt unit file is recomputed

    def __init__(self, path: pathlib.Path, db: sqlite3.Connection, lock_fd: int, attempt: int,
                 created: bool) -> None:
        self.path, self._db, self._lock_fd = path, db, lock_fd
        self.attempt, self.created = attempt, created
        self._log = open(path / LOG, "a", encoding="utf-8")

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], config: ExperimentConfig, *, overwrite: bool = False,
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
                empty_except(path, (LOCK, MARKER))  # under the lock: no other run starts in between
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
            write_marker(path)
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
                raise corrupt_store(path, f"a damaged file (SQLite: {exc})") from exc
            if not meta:
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
            raise corrupt_store(path, f"a damaged file (SQLite: {exc})") from exc
        if check != [("ok",)]:
            raise corrupt_store(path, "a damaged file (SQLite integrity check: "
                                       f"{'; '.join(str(r[0]) for r in check[:2])})")
        if meta == 0 and has_results(path):
            size = (path / DATABASE).stat().st_size
            raise corrupt_store(path, f"{'a 0-byte file' if size == 0 else 'a store without records'} beside "
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
                raise corrupt_store(pathlib.Path(path), "an empty store (no records)") from exc
            raise corrupt_store(pathlib.Path(path), f"a damaged file (SQLite: {exc})") from exc
        finally:
            db.close()
        if row is None or not isinstance(row[0], str):
            raise corrupt_store(pathlib.Path(path), "a store without its configuration")
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
        return unit_file(self.path, key)

    def done(self) -> set[str]:
        """The keys of the finished units."""
        return {k for (k,) in self._db.execute("SELECT key FROM units")}

    def started(self, key: str, kind: str) -> None:
        """Record that this attempt executes unit ``key`` (counts recomputations)."""
        with self._db:
            self._db.execute("INSERT INTO executions VALUES (?, ?, ?, ?)", (self.attempt, key, kind, time.time()))

    def put(self, unit: Unit, output: Output) -> None:
        """Commit a finished unit: its arrays to ``units/<key>.npz`` (atomically), then its row."""
        has_arrays = bool(output.arrays)
        if has_arrays:
            (self.path / "units").mkdir(exist_ok=True)
            write_unit_arrays(self._npz(unit.key), output.arrays)  # atomic: no half-written file stays
        record = json.dumps(output.record, allow_nan=True, sort_keys=True)
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (unit.key, unit.kind, unit.name, record, int(has_arrays), float(output.seconds),
                              self.attempt, time.time()))

    def get(self, key: str) -> Output:
        """The :class:`~evcsa.experiments.units.Output` of finished unit ``key``.

        Raises:
            KeyError: no such finished unit.
        """
        row = self._db.execute("SELECT record, arrays, seconds, name FROM units WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        try:
            record = json.loads(row[0])
        except ValueError as exc:
            raise CorruptStore(f"{self.path / DATABASE}: expected the record of unit {row[3]!r} as JSON, got a "
                               f"damaged one ({exc}); rerun with --recompute-corrupt to compute it again",
                               path=str(self.path / DATABASE), key=key) from exc
        arrays = read_unit_arrays(self._npz(key), row[3]) if row[1] else {}
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

    def __exit__(self, *exc: object) -> None:
        self.close()
