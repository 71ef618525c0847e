"""Results on disk and on the terminal: results.json, results.csv, games.csv, sweep.csv,
the figures, and the summary table.

:func:`write_results` writes a whole results directory atomically: everything goes into a
temporary sibling directory that is renamed into place at the end, so a run that fails —
or is interrupted — leaves no half-written directory behind.

Files:

- ``results.json`` — everything: when and how it was made (``created``, ``command``,
  ``evcsa_version``, ``schema_version``), configuration, environment, model, data, the
  legitimate accuracies, every cell (per-game successes, intervals, p̂), the δ sweep, the
  example strip's labels. Its layout is the JSON Schema :func:`results_schema` returns
  (shipped in the package, ``evcsa/schemas/results.schema.json``).
- ``results.csv`` — the summary table, one row per defense × adversary.
- ``games.csv`` — one row per game (cell, run, successes).
- ``sweep.csv`` — one row per squeezer × δ of the sweep (``plugin_advantage_N<n>``: the
  plug-in Π p̂ of the sweep's best n samples, not an exact advantage).
- ``config.toml`` — the configuration, runnable with ``evcsa play`` (its ``base_dir`` is
  the directory of the configuration the run was made from: relative paths — data, weights,
  plugin modules — resolve there, wherever this copy lies).
- ``summary.txt`` — the table as printed.
- ``examples.npz`` — the example strip's images (float32 [K, C, H, W]) and their labels
  (``labels_<row>``, int64 [K]).
- the figures (PNG) — see :mod:`evcsa.plots`; ``evcsa show DIR`` redraws them from
  ``results.json`` and ``examples.npz``.
- ``SHA256SUMS`` — the SHA-256 of every other file (``sha256sum -c SHA256SUMS`` checks
  them): ``evcsa show`` refuses a results.json or examples.npz that no longer matches
  (and, in a run directory, the digest its store recorded), so edited numbers are never
  shown as the run's. It detects damage and edits, not a forger who rewrites both.

CSV numbers are written with 4 significant digits (integers as they are): the intervals of
these estimates are wider than 10⁻⁴, so more digits would be noise (0.8899999999999999).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import shutil
import tempfile
from typing import Any, Callable, Mapping, Protocol, Sequence

import attrs

from evcsa._text import counted, printable
from evcsa.config import config_to_dict, config_to_toml
from evcsa.errors import CorruptStore, InvalidParameter

__all__ = [
    "FORMAT",
    "MetaRecorder",
    "SCHEMA_VERSION",
    "check_output",
    "format_table",
    "publish_results",
    "read_results",
    "reproducibility_notice",
    "results_schema",
    "show",
    "summary_rows",
    "to_json",
    "verify_results",
    "write_results",
]

#: The ``format`` of the results.json this version writes, and its schema version.
SCHEMA_VERSION = 2
FORMAT = f"evcsa-results/{SCHEMA_VERSION}"
#: Formats :func:`read_results` reads (version 1 lacks created/command/evcsa_version).
_READABLE = ("evcsa-results/1", FORMAT)
#: The digests of a results directory's files (``sha256sum`` format).
DIGESTS = "SHA256SUMS"


def _est(e: Any) -> dict[str, Any] | None:
    if e is None:
        return None
    return e.to_dict() if hasattr(e, "to_dict") else attrs.asdict(e)


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, as shipped in the package."""
    from importlib.resources import files

    return json.loads(files("evcsa").joinpath("schemas/results.schema.json").read_text(encoding="utf-8"))


def reproducibility_notice(config: Any) -> str | None:
    """The one-line notice for a run whose numbers cannot be repeated — the defenses' keys
    drawn from OS entropy (``reproducible = false``) — saying how to make them repeatable;
    None for a reproducible run."""
    if getattr(config, "reproducible", True):
        return None
    if hasattr(config, "master_key"):
        how = ("set reproducible = true: the keys then derive from master_key (drawn once and recorded "
               "in the results' config.toml when absent), and rerunning that config.toml repeats every number")
    else:
        how = "set reproducible = true (the keys then derive from seed): the same configuration repeats every number"
    return f"evcsa: notice: defense keys come from OS entropy (reproducible = false): these numbers cannot be repeated; {how}"


def _finite(value: Any) -> Any:
    """JSON has no inf/NaN: map them to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(result: Any, *, command: Sequence[str] | None = None,
            created: str | None = None) -> dict[str, Any]:
    """The JSON document of an :class:`~evcsa.experiments.ExperimentResult` (no images),
    valid against :func:`results_schema`.

    Args:
        result: the run.
        command: the command line that made it (``evcsa play …``), or None (the Python API).
        created: ISO 8601 UTC time stamp; default: now.
    """
    import datetime

    import evcsa

    cells = [attrs.asdict(c, recurse=True) for c in result.cells]
    sweep = [attrs.asdict(p, recurse=True) for p in result.sweep]
    ex = result.examples
    if created is None:
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": created,
        "command": None if command is None else [str(a) for a in command],
        "evcsa_version": evcsa.__version__,
        "name": result.config.name,
        "seconds": round(result.seconds, 2),
        "environment": dict(result.environment),
        "config": config_to_dict(result.config),
        "model": dict(result.model),
        "data": dict(result.data),
        "legitimate_accuracy": {k: _est(v) for k, v in result.legitimate.items()},
        "cells": cells,
        "sweep": sweep,
        "examples": None if ex is None else {
            "defense": ex.defense, "squeezer": ex.squeezer, "delta": ex.delta,
            "count": int(ex.original.shape[0]),
            "attack": result.config.figures.attack, "epsilon": result.config.game.epsilon,
            "norm": result.config.game.norm,
            "labels": {k: [int(v) for v in vs] for k, vs in ex.labels.items()},
        },
    }
    return _finite(doc)


def _headline_tau(result: Any) -> str:
    return repr(float(result.config.figures.taus[0]))


def summary_rows(result: Any) -> list[dict[str, Any]]:
    """One flat row per cell: the summary table's numbers (CSV-ready)."""
    tau = _headline_tau(result)
    rows = []
    for c in result.cells:
        legit = result.legitimate.get(c.defense)
        adv = c.advantage.get(tau)
        acc = c.adversarial_accuracy
        rows.append({
            "defense": c.defense, "adversary": c.adversary, "runs": c.runs, "n_chosen": c.n_chosen,
            "tau": float(tau),
            "legitimate_accuracy": None if legit is None else legit.value,
            "legitimate_accuracy_low": None if legit is None else legit.low,
            "legitimate_accuracy_high": None if legit is None else legit.high,
            "adversarial_accuracy": None if acc is None else acc.value,
            "adversarial_accuracy_low": None if acc is None else acc.low,
            "adversarial_accuracy_high": None if acc is None else acc.high,
            "success_rate": c.success_rate.value, "success_rate_low": c.success_rate.low,
            "success_rate_high": c.success_rate.high,
            "advantage": None if adv is None else adv.value,
            "advantage_low": None if adv is None else adv.low,
            "advantage_high": None if adv is None else adv.high,
            "plugin_advantage": c.advantage_exact.get(tau),
            **_expected_columns(c, float(tau)),
            "classify_queries_per_game": c.classify_queries,
            "gradient_flagged": c.gradient_flagged,
            "seconds": round(c.seconds, 2),
        })
    return rows


def _expected_columns(cell: Any, tau: float) -> dict[str, Any]:
    """expected_advantage(_low, _high) of the submitted samples at τ, when the cell has it."""
    from evcsa.plots import _expected

    e = _expected(cell, tau)
    return {"expected_advantage": None if e is None else e.value,
            "expected_advantage_low": None if e is None else e.low,
            "expected_advantage_high": None if e is None else e.high}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ci(value: float | None, low: float | None, high: float | None) -> str:
    from evcsa.stats import format_interval

    if value is None:
        return "—"
    return format_interval(value, low, high)


def format_table(result: Any) -> str:
    """The summary table as aligned text: per defense × adversary, the legitimate accuracy,
    the adversarial accuracy, the success rate (mean, 95 % CI), Adv(N, τ) of the games
    (estimate, 95 % CI), the expected advantage of the submitted samples where the run
    measured it, and the plug-in Π p̂ where the adversary estimated p̂."""
    from evcsa.stats import format_number

    rows = summary_rows(result)
    tau = float(_headline_tau(result))
    n = result.config.game.n_chosen
    expected = any(r["expected_advantage"] is not None for r in rows)
    header = ["defense", "adversary", "legit acc %", "adv acc %", "success rate [95% CI]",
              f"Adv({n},{tau:g}) [95% CI]"] + (["E[Adv] submitted [95%]"] if expected else []) + \
             ["Π p̂ (own)", "queries/game"]
    lines = []
    for r in rows:
        lines.append([
            printable(r["defense"]), printable(r["adversary"]), _pct(r["legitimate_accuracy"]),
            _pct(r["adversarial_accuracy"]),
            _ci(r["success_rate"], r["success_rate_low"], r["success_rate_high"]),
            _ci(r["advantage"], r["advantage_low"], r["advantage_high"]),
        ] + ([_ci(r["expected_advantage"], r["expected_advantage_low"], r["expected_advantage_high"])]
             if expected else []) + [
            "—" if r["plugin_advantage"] is None else format_number(r["plugin_advantage"]),
            f"{r['classify_queries_per_game']:.0f}",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(line) for line in lines]
    runs = result.config.runs
    out.append("")
    out.append(f"{counted(runs, 'game')} per cell, N = {n}, τ = {tau:g}; "
               f"X_D = {printable(str(result.data.get('samples')))}; "
               f"legitimate accuracy on {printable(str(result.data.get('legitimate')))} "
               f"({counted(result.config.legitimate_draws, 'draw')} per image for randomized defenses).")
    out.append("Intervals are exact Clopper–Pearson (95 %); the success-rate interval pools the "
               "runs × N submissions.")
    if expected:
        out.append("E[Adv] submitted: the Poisson-binomial tail Pr[S ≥ ⌈τN⌉] at the fresh-key success "
                   "rates of the samples actually submitted (Bonferroni 95 %).")
    out.append("Π p̂ (own): a plug-in, seed 002 Eq. 6 at the adversary's own p̂ of its N best candidates "
               "pooled over all games (what it would reach if its p̂ were exact; biased up by the selection); "
               "— where the adversary estimates no p̂.")
    if any(r["gradient_flagged"] for r in rows):
        out.append("! a gradient check flagged zero, NaN or missing gradients in some cell "
                   "(see results.json notes): a low success there says nothing about robustness.")
    return "\n".join(out)


def _cell_text(v: Any) -> Any:
    """A CSV field: None → empty, a float with 4 significant digits, the rest as is."""
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.4g}"
    return v


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell_text(v) for k, v in row.items()})
    return buf.getvalue()


def _game_rows(result: Any) -> list[dict[str, Any]]:
    rows = []
    for c in result.cells:
        for run, n in enumerate(c.successes):
            rows.append({"defense": c.defense, "adversary": c.adversary, "run": run, "successes": n,
                         "n_chosen": c.n_chosen, "success_rate": n / c.n_chosen})
    return rows


def _sweep_rows(result: Any) -> list[dict[str, Any]]:
    rows = []
    for p in result.sweep:
        row = {"squeezer": p.squeezer, "delta": p.delta,
               "legitimate_accuracy": p.legitimate_accuracy.value,
               "legitimate_accuracy_low": p.legitimate_accuracy.low,
               "legitimate_accuracy_high": p.legitimate_accuracy.high,
               "adversarial_accuracy": p.adversarial_accuracy.value,
               "adversarial_accuracy_low": p.adversarial_accuracy.low,
               "adversarial_accuracy_high": p.adversarial_accuracy.high}
        for n, v in p.advantage_exact.items():
            row[f"plugin_advantage_N{n}"] = v
        rows.append(row)
    return rows


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
        from evcsa.experiments.store import check_removable

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
    from evcsa.experiments.store import is_run_directory

    return (path / "results.json").is_file() or is_run_directory(path) or not any(path.iterdir())


def _sha256(path: pathlib.Path) -> str:
    import hashlib

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
    import ctypes
    import errno
    import sys

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


def write_results(result: Any, path: str | os.PathLike[str], *, overwrite: bool = False,
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
            (tmp / name).write_text(text, encoding="utf-8")
            if progress:
                progress(name)
        put("results.json", json.dumps(to_json(result, command=command), indent=2, allow_nan=False) + "\n")
        put("results.csv", _csv(summary_rows(result)))
        put("games.csv", _csv(_game_rows(result)))
        if result.sweep:
            put("sweep.csv", _csv(_sweep_rows(result)))
        put("config.toml", config_to_toml(result.config, base_dir=True))
        put("summary.txt", format_table(result) + "\n")
        if result.examples is not None:
            import numpy as np

            ex = result.examples
            labels = {f"labels_{k}": np.asarray(v, dtype=np.int64) for k, v in ex.labels.items()}
            with open(tmp / "examples.npz", "wb") as fh:
                np.savez_compressed(fh, original=ex.original.numpy(), adversarial=ex.adversarial.numpy(),
                                    randomized=ex.randomized.numpy(), squeezed=ex.squeezed.numpy(), **labels)
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


def publish_results(result: Any, run_dir: str | os.PathLike[str], *, figures: bool | None = None,
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
                store.set_meta(results_sha256=_sha256(staging / name))
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
    target.write_text("".join(f"{_sha256(f)}  {f.name}\n" for f in files), encoding="utf-8")
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
            if _sha256(f) != digest:
                raise CorruptStore(f"{f}: expected the SHA-256 written with the results ({digest[:16]}…), got "
                                   f"{_sha256(f)[:16]}…: the file changed after evcsa wrote it; refusing to show "
                                   "altered numbers (evcsa play --resume DIR writes them again from the store)",
                                   path=str(f))
        against.append(DIGESTS)
    stored = _stored_digest(path)
    if stored is not None:
        actual = _sha256(path / "results.json")
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
    import sqlite3

    from evcsa.experiments.store import DATABASE

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


def _records() -> Any:
    """The results record classes (evcsa.experiments, or the older evcsa.experiment)."""
    try:
        from evcsa import experiments as module  # type: ignore[attr-defined]
    except ImportError:
        from evcsa import experiment as module  # type: ignore[no-redef]
    return module


def read_results(path: str | os.PathLike[str]) -> Any:
    """Read a results directory back into an :class:`~evcsa.experiments.ExperimentResult`
    (the example images from ``examples.npz`` when present), e.g. to redraw the figures.
    Nothing is recomputed: the estimates are taken as stored. The document's own
    ``created``, ``command`` and ``evcsa_version`` are in ``result.environment["written"]``.

    Raises:
        InvalidParameter: no readable ``results.json`` of a known format in ``path``.
        CorruptStore: a results.json that does not read back (a key missing, a wrong type).
    """
    module = _records()
    path = pathlib.Path(path)
    try:
        doc = json.loads((path / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"{path}: expected a results directory with results.json, got "
                               f"{type(exc).__name__}: {exc}", path=str(path)) from exc
    if not isinstance(doc, dict) or doc.get("format") not in _READABLE:
        raise InvalidParameter(f"{path / 'results.json'}: expected format {' or '.join(_READABLE)}, got "
                               f"{doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}",
                               path=str(path))
    try:
        return _structure_results(doc, path, module)
    except InvalidParameter:
        raise
    except Exception as exc:  # a hand-edited or damaged document: a missing key, a wrong type
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CorruptStore(f"{path / 'results.json'}: expected a results document of format {doc.get('format')}, "
                           f"got one that does not read back ({type(exc).__name__}"
                           f"{': ' + detail[:200] if detail else ''})", path=str(path / "results.json")) from exc


def _structure_results(doc: Mapping[str, Any], path: pathlib.Path, module: Any) -> Any:
    import cattrs

    from evcsa.config import config_from_dict

    conv = cattrs.Converter()
    estimate = getattr(module, "Estimate", None)
    if estimate is None:
        from evcsa.stats import BinomialEstimate as estimate
    config = config_from_dict(doc["config"], source=str(path / "results.json"), base_dir=path)
    examples = None
    npz = path / "examples.npz"
    if doc.get("examples") and npz.is_file():
        import numpy as np
        import torch

        with np.load(npz, allow_pickle=False) as arrays:
            images = {k: torch.from_numpy(arrays[k]) for k in ("original", "adversarial", "randomized", "squeezed")}
        ex = doc["examples"]
        examples = module.ExampleImages(**images, labels={k: tuple(v) for k, v in ex["labels"].items()},
                                        defense=ex["defense"], squeezer=ex["squeezer"], delta=float(ex["delta"]))
    environment = dict(doc["environment"])
    environment["written"] = {k: doc.get(k) for k in ("format", "created", "command", "evcsa_version")}
    return module.ExperimentResult(
        config=config,
        cells=tuple(conv.structure(c, module.CellResult) for c in doc["cells"]),
        legitimate={k: conv.structure(v, estimate) for k, v in doc["legitimate_accuracy"].items()},
        sweep=tuple(conv.structure(p, module.SweepPoint) for p in doc["sweep"]),
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
