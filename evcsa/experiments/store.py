"""The run directory's store: every finished unit of work, committed as it finishes.

Layout of a run directory::

    evcsa-run.sqlite   records (SQLite, WAL journal): the configuration and its fingerprint,
                       one row per finished unit (kind, name, record as JSON, seconds),
                       one row per execution (which attempt ran which unit)
    units/<key>.npz    the unit's arrays (tensors), written before its row is committed
    evcsa-run.lock     held (flock) by the run writing here; the kernel drops it when the
                       process dies, even by SIGKILL
    run.log            one line per event, appended by every attempt
    results.json, …    the results files, written when every unit is done

A unit counts as finished only when its row is committed, and its row is committed only after
its ``.npz`` is complete on disk (written to a temporary name, then renamed): a kill at any
moment leaves only finished units and, at most, an orphaned temporary file. A unit whose
``.npz`` went missing counts as not finished.

:class:`RunStore` refuses a directory that holds a run of another configuration, one that is
not an evcsa run directory (unless told to overwrite it), and one another process is writing
(the lock).
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
import numpy as np

from evcsa.errors import InvalidParameter

__all__ = ["FinishedUnits", "RunStore", "SubmittedSamples", "config_fingerprint"]

DATABASE = "evcsa-run.sqlite"
LOCK = "evcsa-run.lock"
LOG = "run.log"
FORMAT = "evcsa-run/1"

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
             resume: bool = True) -> RunStore:
        """Create the run directory ``path`` for ``config``, or open it to resume.

        Args:
            path: the run directory.
            config: the experiment (its fingerprint is recorded, or compared).
            overwrite: replace whatever ``path`` holds (a run of any configuration, or a
                directory evcsa did not create) by a new run.
            resume: accept an existing run of the same configuration (False: refuse it).

        Raises:
            InvalidParameter: ``path`` is a file; it holds a run of another configuration,
                a directory that is not an evcsa run directory, or (``resume`` false) a run,
                and ``overwrite`` is false; another process holds its lock; it cannot be
                created.
        """
        from evcsa.experiments.seeds import with_master_key

        path = pathlib.Path(path)
        fingerprint = config_fingerprint(config)
        if path.exists() and not path.is_dir():
            raise InvalidParameter(f"{path}: expected a run directory, got an existing file", path=str(path))
        created = False
        if path.exists() and overwrite:
            cls._check_not_locked(path)
            shutil.rmtree(path)
        if path.exists():
            if not (path / DATABASE).is_file():
                raise InvalidParameter(f"{path}: expected a new results directory, got an existing one that is "
                                       "not an evcsa run directory (choose another --output or pass --overwrite)",
                                       path=str(path))
        else:
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise InvalidParameter(f"{path}: cannot create the run directory ({exc.strerror})",
                                       path=str(path)) from exc
            created = True
        try:
            lock_fd = cls._lock(path)
        except BaseException:
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        try:
            db = sqlite3.connect(path / DATABASE, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript("""
                CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS units (key TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
                    record TEXT NOT NULL, arrays INTEGER NOT NULL, seconds REAL NOT NULL, attempt INTEGER NOT NULL,
                    finished REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS executions (attempt INTEGER NOT NULL, key TEXT NOT NULL,
                    kind TEXT NOT NULL, started REAL NOT NULL);
            """)
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if not meta:
                from evcsa import __version__
                from evcsa.config import config_to_toml

                config = with_master_key(config)  # drawn once, kept: a resumption uses the same keys
                with db:
                    db.execute("BEGIN")
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", FORMAT), ("fingerprint", fingerprint), ("config", config_to_toml(config)),
                        ("master_key", config.master_key or ""),
                        ("evcsa", __version__), ("created", repr(time.time())), ("attempts", "1"),
                        ("status", "running"), ("host", socket.gethostname())])
                attempt = 1
            else:
                if meta.get("format") != FORMAT:
                    raise InvalidParameter(f"{path}: expected a run directory of format {FORMAT}, got "
                                           f"{meta.get('format')!r}", path=str(path))
                if meta["fingerprint"] != fingerprint:
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
            store._forget_incomplete()
        except BaseException:  # a refusal, or a signal while opening: a new directory is removed again
            os.close(lock_fd)
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return store

    @staticmethod
    def _lock(path: pathlib.Path) -> int:
        import fcntl

        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InvalidParameter(f"{path}: in use by a run in progress ({holder}); refusing a second run "
                                   "writing to the same directory", path=str(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return fd

    @classmethod
    def _check_not_locked(cls, path: pathlib.Path) -> None:
        if (path / LOCK).is_file():
            os.close(cls._lock(path))

    @staticmethod
    def config_text(path: str | os.PathLike[str]) -> str:
        """The configuration (TOML) a run directory was created for.

        Raises:
            InvalidParameter: ``path`` is not an evcsa run directory.
        """
        db_path = pathlib.Path(path) / DATABASE
        if not db_path.is_file():
            raise InvalidParameter(f"{path}: expected an evcsa run directory (with {DATABASE}), got none",
                                   path=str(path))
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'config'").fetchone()
        finally:
            db.close()
        if row is None:
            raise InvalidParameter(f"{path}: the run directory holds no configuration", path=str(path))
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

        row = self._db.execute("SELECT record, arrays, seconds FROM units WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        arrays: dict[str, np.ndarray] = {}
        if row[1]:
            with np.load(self._npz(key), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return Output(record=json.loads(row[0]), arrays=arrays, seconds=float(row[2]))

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
        os.close(self._lock_fd)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FinishedUnits:
    """Read-only view of the finished units of other run directories, by content key.

    A run given such a view (``run_experiment(..., shared=...)``) takes a unit it lacks from
    the first directory that finished it, instead of computing it again, and commits a copy
    to its own store (each run directory stays complete on its own). Units are the same work
    exactly when their content keys are equal (:mod:`evcsa.experiments.units`), so sharing
    never changes a number: the reproduction's Table 1, Table 2 and Figures 5–7 evaluate one
    adversarial set per attack this way.

    Directories that do not exist yet, or are not run directories, are skipped; one being
    written by another process is read as far as it has committed (SQLite, WAL journal).
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
            if row[1]:
                npz_path = path / "units" / f"{key}.npz"
                if not npz_path.is_file():
                    continue
                with np.load(npz_path, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            return Output(record=json.loads(row[0]), arrays=arrays, seconds=float(row[2]))
        return None


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

        Raises:
            InvalidParameter: not a run directory, or no finished game of that cell.
        """
        db_path = pathlib.Path(path) / DATABASE
        if not db_path.is_file():
            raise InvalidParameter(f"{path}: expected an evcsa run directory, got none", path=str(path))
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT key, record FROM units WHERE kind = 'play' AND name LIKE ?",
                              (f"play {defense} × {adversary}, games %",)).fetchall()
        finally:
            db.close()
        if not rows:
            raise InvalidParameter(f"{path}: expected finished games of cell {defense!r} × {adversary!r}, got none",
                                   path=str(path))
        from evcsa.experiments.work import Output

        chunks = []
        for key, record in sorted(rows, key=lambda r: json.loads(r[1])["start"]):
            with np.load(pathlib.Path(path) / "units" / f"{key}.npz") as npz:
                chunks.append(Output(record=json.loads(record), arrays={k: npz[k] for k in npz.files}))
        return cls(chunks)

