"""Finished units read from other run directories: :class:`FinishedUnits` (shared by the
runs of a reproduction) and :class:`SubmittedSamples` (one cell's submissions, to re-judge)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sqlite3
from typing import Iterable

import numpy as np

from evcsa.config import parse_config
from evcsa.errors import CorruptStore, InvalidParameter
from evcsa.experiments.directory import DATABASE, corrupt_store
from evcsa.experiments.unit_files import read_unit_arrays, unit_file
from evcsa.experiments.units import Output

__all__ = ["FinishedUnits", "SubmittedSamples"]


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

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths = tuple(pathlib.Path(p) for p in paths)

    def get(self, key: str) -> Output | None:
        """The :class:`~evcsa.experiments.units.Output` of ``key`` from the first directory
        that finished it, or None."""
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
                    arrays = read_unit_arrays(unit_file(path, key), key)
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

    def __init__(self, chunks: list[Output]) -> None:
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
            raise corrupt_store(pathlib.Path(path), f"a damaged file (SQLite: {exc})") from exc
        finally:
            db.close()
        if config is not None:
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

        chunks = []
        for key, record in sorted(rows, key=lambda r: json.loads(r[1])["start"]):
            arrays = read_unit_arrays(unit_file(pathlib.Path(path), key), f"{prefix}…")
            chunks.append(Output(record=json.loads(record), arrays=arrays))
        return cls(chunks)
