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

from evcsa.results_files import (MetaRecorder, check_output, file_sha256, move_into_place, publish_results,
                                 read_results, show, verify_results, write_digests, write_results)
from evcsa.results_tables import (DIGESTS, FORMAT, SCHEMA_VERSION, finite_json, format_table, reproducibility_notice,
                                  results_schema, summary_rows, to_json)

__all__ = [
    "DIGESTS",
    "FORMAT",
    "MetaRecorder",
    "SCHEMA_VERSION",
    "check_output",
    "file_sha256",
    "finite_json",
    "format_table",
    "move_into_place",
    "publish_results",
    "read_results",
    "reproducibility_notice",
    "results_schema",
    "show",
    "summary_rows",
    "to_json",
    "verify_results",
    "write_digests",
    "write_results",
]

#: The names evcsa.evaluation.report and older tests used before they were public.
_finite = finite_json
_sha256 = file_sha256
