"""A results directory on disk: written atomically (:func:`write_results`; into a run
directory beside its store: :func:`publish_results`), its digests (:func:`write_digests`,
:func:`verify_results`), read back (:func:`read_results`) and shown (:func:`show`).
Every file goes through :func:`evcsa._files.atomic_write`. :mod:`evcsa.report` is the
public face; this layer imports the engine's plain records and its store's names, never
its runner."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import tempfile
from typing import Any, Callable, Mapping, Protocol, Sequence

import cattrs
import numpy as np
import torch

from evcsa._files import atomic_write, umask_mode
from evcsa._text import printable
from evcsa.config import config_from_dict, config_to_toml
from evcsa.errors import CorruptStore, InvalidParameter
from evcsa.experiments.results import CellResult, ExampleImages, ExperimentResult, SweepPoint
from evcsa.experiments.store import DATABASE, check_removable, is_run_directory
from evcsa.results_tables import DIGESTS, READABLE, csv_text, format_table, game_rows, summary_rows, sweep_rows, to_json
from evcsa.stats import BinomialEstimate

__all__ = ["MetaRecorder", "check_output", "file_sha256", "move_into_place", "publish_results", "read_results",
           "show", "verify_results", "write_digests", "write_results"]


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> pathlib.Path:
    """Check, before a run, that its results directory can be written.

    Raises:
        InvalidParameter: ``path`` exists and ``overwrite`` is false, exists as a file, its
            parent cannot be created, or nothing can be created in that parent; with
            ``overwrite``, it is not a results directory evcsa wrote (nor empty), or it is
            the working directory, a parent of it, home or root.
    """
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise InvalidParameter(f"{path}: expected a results directory, got an existing file", path=str(path))
    if path.exists() and not overwrite:
        raise InvalidParameter(f"{path}: expected a new results directory, got an existing one "
                               "(choose another --output or pass --overwrite)", path=str(path))
    if path.exists():
        check_removable(path, recognised=_is_results_directory, what="a results directory evcsa wrote")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameter(f"{path.parent}: cannot create the results directory's parent ({exc.strerror})",
                               path=str(path)) from exc
    if not os.access(path.parent, os.W_OK):
        raise InvalidParameter(f"{path.parent}: not writable", path=str(path))
    try:  # os.access answers yes to root even where nothing can be created (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".check", dir=path.parent))
    except OSError as exc:
        raise InvalidParameter(f"{path.parent}: cannot write the results directory there ({exc.strerror})",
                               path=str(path)) from exc
    return path


def _is_results_directory(path: pathlib.Path) -> bool:
    """What ``write_results(overwrite=True)`` may replace: a results directory (it holds
    results.json), an evcsa run directory, or an empty directory."""
    return (path / "results.json").is_file() or is_run_directory(path) or not any(path.iterdir())


def file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rename_noreplace(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Rename ``src`` to ``dst``, atomically refusing when ``dst`` exists — even an empty
    directory, which a plain rename would replace (Linux ``renameat2(RENAME_NOREPLACE)``;
    elsewhere a check just before the rename).

    Raises:
        FileExistsError: ``dst`` exists.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            renameat2 = libc.renameat2
        except (OSError, AttributeError):
            renameat2 = None
        if renameat2 is not None:
            at_fdcwd, noreplace = -100, 1
            if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
                return
            err = ctypes.get_errno()
            if err == errno.EEXIST:
                raise FileExistsError(err, os.strerror(err), str(dst))
            if err not in (errno.EINVAL, errno.ENOSYS):  # else: the file system lacks it, fall through
                raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def write_results(result: ExperimentResult, path: str | os.PathLike[str], *, overwrite: bool = False,
                  figures: bool | None = None,
                  progress: Callable[[str], None] | None = None,
                  command: Sequence[str] | None = None) -> pathlib.Path:
    """Write the results directory ``path`` atomically.

    Everything is written into a temporary directory beside ``path`` and renamed into
    place at the end; an existing directory is replaced only when ``overwrite`` is true
    (moved aside first, deleted after the new one is in place), and only a results
    directory evcsa wrote (:func:`check_output`). Without ``overwrite`` the rename refuses
    a ``path`` that appeared while the files were written: both are left as they are. On
    any other error the temporary directory is removed and ``path`` is left as it was.

    Args:
        result: an :class:`~evcsa.experiments.ExperimentResult`.
        path: the results directory.
        overwrite: replace an existing results directory.
        figures: draw the PNG figures (:mod:`evcsa.plots`); None (the default): as the
            configuration says (``[figures] enabled``; false — and ``--no-figures`` — means
            no PNG at all).
        progress: receives the name of each file as it is written.
        command: the command line to record in results.json (the CLI passes its own).

    Returns:
        ``path``.

    Raises:
        InvalidParameter: see :func:`check_output`; or ``path`` appeared meanwhile
            (``overwrite`` false: the new results stay in the temporary directory the
            message names).
        OSError: the disk refused.
    """
    path = check_output(path, overwrite=overwrite)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    keep_tmp = False
    try:
        def put(name: str, text: str) -> None:
            atomic_write(tmp / name, lambda fh: fh.write(text), mode="w", permissions=umask_mode())
            if progress:
                progress(name)
        put("results.json", json.dumps(to_json(result, command=command), indent=2, allow_nan=False) + "\n")
        put("results.csv", csv_text(summary_rows(result)))
        put("games.csv", csv_text(game_rows(result)))
        if result.sweep:
            put("sweep.csv", csv_text(sweep_rows(result)))
        put("config.toml", config_to_toml(result.config, base_dir=True))
        put("summary.txt", format_table(result) + "\n")
        if result.examples is not None:
            ex = result.examples
            labels = {f"labels_{k}": np.asarray(v, dtype=np.int64) for k, v in ex.labels.items()}
            savez: Callable[..., None] = np.savez_compressed  # its stub types the arrays keywords as its own flags
            atomic_write(tmp / "examples.npz", lambda fh: savez(
                fh, original=ex.original.numpy(), adversarial=ex.adversarial.numpy(),
                randomized=ex.randomized.numpy(), squeezed=ex.squeezed.numpy(), **labels), permissions=umask_mode())
            if progress:
                progress("examples.npz")
        if figures if figures is not None else result.config.figures.enabled:
            from evcsa.plots import save_figures

            for name in save_figures(result, tmp):
                if progress:
                    progress(name.name)
        write_digests(tmp)
        if progress:
            progress(DIGESTS)
        try:
            move_into_place(tmp, path, overwrite=overwrite)
        except InvalidParameter as exc:
            keep_tmp = "written" in exc.details
            raise
    except BaseException:
        if not keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


class MetaRecorder(Protocol):
    """What :func:`publish_results` needs of a run's store: to record a value
    (:meth:`RunStore.set_meta <evcsa.experiments.store.RunStore.set_meta>` implements it)."""

    def set_meta(self, **values: str) -> None: ...


def publish_results(result: ExperimentResult, run_dir: str | os.PathLike[str], *, figures: bool | None = None,
                    progress: Callable[[str], None] | None = None, command: Sequence[str] | None = None,
                    store: MetaRecorder | None = None) -> list[str]:
    """Write the results files (:func:`write_results`) into the run directory beside its
    store: all of them into a temporary directory first, then each moved into place,
    ``results.json`` last — a run directory with ``results.json`` is complete.

    Args:
        result: an :class:`~evcsa.experiments.ExperimentResult`.
        run_dir: the run directory (it exists: :class:`~evcsa.experiments.rundir.RunDirectory`).
        figures, progress, command: as :func:`write_results`.
        store: the run's :class:`~evcsa.experiments.store.RunStore`: it records the SHA-256
            of results.json (``results_sha256``) before the file moves into place, so that
            ``evcsa show`` can check the numbers against the store.

    A publication killed half-way leaves its temporary directories (``.results-<pid>``);
    the next opening of the run directory removes them.

    Returns:
        The names of the files written.

    Raises:
        OSError: the disk refused.
    """
    run_dir = pathlib.Path(run_dir)
    staging = run_dir / f".results-{os.getpid()}"
    if staging.exists():  # this process's own leftover (a publication it did not finish)
        shutil.rmtree(staging)
    names: list[str] = []
    write_results(result, staging, overwrite=False, figures=figures, progress=names.append, command=command)
    try:
        for name in sorted(names, key=lambda n: n == "results.json"):
            if name == "results.json" and store is not None:
                store.set_meta(results_sha256=file_sha256(staging / name))
            os.replace(staging / name, run_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        for name in names:
            progress(name)
    return names


def move_into_place(staged: pathlib.Path, path: pathlib.Path, *, overwrite: bool) -> None:
    """Rename the finished directory ``staged`` to ``path`` (on the same file system).

    Without ``overwrite`` the rename refuses a ``path`` that appeared meanwhile
    (:func:`_rename_noreplace`): both are left as they are. With it, an existing ``path``
    (already checked by :func:`check_output`) is moved aside, the new one renamed in, and
    the old one deleted; if the rename fails, the old one is put back.

    Raises:
        InvalidParameter: without ``overwrite``, ``path`` appeared while ``staged`` was
            written (``written`` names ``staged``, which is kept).
        OSError: the disk refused.
    """
    if not overwrite:
        try:
            _rename_noreplace(staged, path)
        except FileExistsError:
            raise InvalidParameter(f"{path}: expected a new results directory, got one that appeared while the "
                                   f"results were written; both are kept: the new results are in {staged}",
                                   path=str(path), written=str(staged)) from None
        return
    backup = None
    if path.exists():
        backup = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.rename(path, backup)
    try:
        os.rename(staged, path)
    except BaseException:
        if backup is not None:
            os.rename(backup, path)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_digests(directory: str | os.PathLike[str]) -> pathlib.Path:
    """Write ``SHA256SUMS`` in a results directory: the SHA-256 of every other file in it
    (``sha256sum -c`` format), which :func:`verify_results` checks. A writer that adds or
    changes files after :func:`write_results` calls it again."""
    directory = pathlib.Path(directory)
    files = sorted(f for f in directory.iterdir() if f.is_file() and f.name != DIGESTS)
    target = directory / DIGESTS
    text = "".join(f"{file_sha256(f)}  {f.name}\n" for f in files)
    atomic_write(target, lambda fh: fh.write(text), mode="w", permissions=umask_mode())
    return target


def verify_results(path: str | os.PathLike[str]) -> str:
    """Check a results directory's files against the digests written with them
    (``SHA256SUMS``) and, in a run directory, results.json against the digest its store
    recorded when it published them.

    Returns:
        What was checked, for the reader ("verified against SHA256SUMS and the run's store"),
        or why nothing could be (results written by an older evcsa).

    Raises:
        CorruptStore: a file differs from its digest, or a listed file is missing.
    """
    path = pathlib.Path(path)
    against = []
    sums = path / DIGESTS
    if sums.is_file():
        listed = {}
        for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, name = line.partition("  ")
            if digest and name:
                listed[name] = digest
        if "results.json" not in listed:
            raise CorruptStore(f"{sums}: expected a digest of results.json, got none; refusing to show numbers "
                               "that cannot be verified", path=str(sums))
        for name, digest in listed.items():
            f = path / name
            if name.endswith(".png") or (name not in ("results.json", "examples.npz") and not f.exists()):
                continue  # figures are redrawn; the CSV files may be removed, not changed
            if not f.is_file():
                raise CorruptStore(f"{f}: expected the file SHA256SUMS lists, got none", path=str(f))
            if file_sha256(f) != digest:
                raise CorruptStore(f"{f}: expected the SHA-256 written with the results ({digest[:16]}…), got "
                                   f"{file_sha256(f)[:16]}…: the file changed after evcsa wrote it; refusing to show "
                                   "altered numbers (evcsa play --resume DIR writes them again from the store)",
                                   path=str(f))
        against.append(DIGESTS)
    stored = _stored_digest(path)
    if stored is not None:
        actual = file_sha256(path / "results.json")
        if actual != stored:
            raise CorruptStore(f"{path / 'results.json'}: expected the results the run's store recorded (SHA-256 "
                               f"{stored[:16]}…), got {actual[:16]}…: the file changed after evcsa wrote it; "
                               "refusing to show altered numbers (evcsa play --resume DIR writes them again from "
                               "the store)", path=str(path / "results.json"))
        against.append("the run's store")
    if not against:
        return "not verified: no digests (written by an older evcsa)"
    return "verified against " + " and ".join(against)


def _stored_digest(path: pathlib.Path) -> str | None:
    """The SHA-256 of results.json a run directory's store recorded, or None."""
    db_path = path / DATABASE
    if not db_path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'results_sha256'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(f"{db_path}: expected an evcsa run store to verify the results against, got a damaged "
                           f"file (SQLite: {exc})", path=str(db_path)) from exc
    return row[0] if row else None


def read_results(path: str | os.PathLike[str]) -> Any:
    """Read a results directory back into an :class:`~evcsa.experiments.ExperimentResult`
    (the example images from ``examples.npz`` when present), e.g. to redraw the figures.
    Nothing is recomputed: the estimates are taken as stored. The document's own
    ``created``, ``command`` and ``evcsa_version`` are in ``result.environment["written"]``.

    Raises:
        InvalidParameter: no readable ``results.json`` of a known format in ``path``.
        CorruptStore: a results.json that does not read back (a key missing, a wrong type).
    """
    path = pathlib.Path(path)
    try:
        doc = json.loads((path / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"{path}: expected a results directory with results.json, got "
                               f"{type(exc).__name__}: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict) or doc.get("format") not in READABLE:
        raise InvalidParameter(f"{path / 'results.json'}: expected format {' or '.join(READABLE)}, got "
                               f"{doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}",
                               path=str(path))
    try:
        return _structure_results(doc, path)
    except InvalidParameter:
        raise
    except Exception as exc:  # a hand-edited or damaged document: a missing key, a wrong type
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CorruptStore(f"{path / 'results.json'}: expected a results document of format {doc.get('format')}, "
                           f"got one that does not read back ({type(exc).__name__}"
                           f"{': ' + detail[:200] if detail else ''})", path=str(path / "results.json")) from exc


def _structure_results(doc: Mapping[str, Any], path: pathlib.Path) -> ExperimentResult:
    conv = cattrs.Converter()
    config = config_from_dict(doc["config"], source=str(path / "results.json"), base_dir=path)
    examples = None
    npz = path / "examples.npz"
    if doc.get("examples") and npz.is_file():
        with np.load(npz, allow_pickle=False) as arrays:
            images = {k: torch.from_numpy(arrays[k]) for k in ("original", "adversarial", "randomized", "squeezed")}
        ex = doc["examples"]
        examples = ExampleImages(**images, labels={k: tuple(v) for k, v in ex["labels"].items()},
                                        defense=ex["defense"], squeezer=ex["squeezer"], delta=float(ex["delta"]))
    environment = dict(doc["environment"])
    environment["written"] = {k: doc.get(k) for k in ("format", "created", "command", "evcsa_version")}
    return ExperimentResult(
        config=config,
        cells=tuple(conv.structure(c, CellResult) for c in doc["cells"]),
        legitimate={k: conv.structure(v, BinomialEstimate) for k, v in doc["legitimate_accuracy"].items()},
        sweep=tuple(conv.structure(p, SweepPoint) for p in doc["sweep"]),
        examples=examples, data=doc["data"], model=doc["model"], environment=environment,
        seconds=float(doc["seconds"]))


def show(path: str | os.PathLike[str], *, figures: bool = True,
         figures_dir: str | os.PathLike[str] | None = None,
         out: Callable[[str], None] = print) -> list[pathlib.Path]:
    """What ``evcsa show DIR`` does: print a finished run's summary (what made it, when,
    and the table) and redraw its figures from the stored results — no game is played and
    no image classified.

    Args:
        path: the results directory.
        figures: redraw the figures.
        figures_dir: where to write them (default: ``path`` itself, replacing its PNGs).
        out: receives each line printed.

    Returns:
        The figures written.

    Raises:
        InvalidParameter: not a results directory (see :func:`read_results`), or the
            figures' directory cannot be written.
        CorruptStore: its files differ from the digests written with them
            (:func:`verify_results`).
    """
    checked = verify_results(path)
    result = read_results(path)
    written = result.environment.get("written", {})
    when = written.get("created") or "an unknown time (results format 1)"
    command = written.get("command")
    out(f"{printable(result.config.name)}: written {printable(str(when))} by evcsa {written.get('evcsa_version') or '?'}"
        f" in {result.seconds:.0f} s")
    if command:
        out("command: " + printable(" ".join(command)))
    out(f"results: {checked}")
    out("")
    out(format_table(result))
    if not figures:
        return []
    target = pathlib.Path(figures_dir) if figures_dir is not None else pathlib.Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameter(f"{target}: cannot write the figures there ({exc.strerror})", path=str(target)) from exc
    if not os.access(target, os.W_OK):
        raise InvalidParameter(f"{target}: not writable (choose another --figures-dir)", path=str(target))
    from evcsa.plots import save_figures

    paths = save_figures(result, target)
    out("")
    out(f"figures: {target}/ ({', '.join(p.name for p in paths) or 'none: nothing to draw'})")
    return paths
