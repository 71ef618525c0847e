"""Reproducing the seed papers' evaluations: their numbers as data, our numbers beside
them, and the plans behind ``evcsa reproduce``.

- :mod:`evcsa.reproduction.values`: :func:`paper_values`, :func:`paper_value`,
  :func:`paper_table` — seed 002 Tables 1–3 and the numbers its text states; seed 000's
  stated settings (its results are not in the text we hold).
- :mod:`evcsa.reproduction.compare`: :class:`Comparison`, :func:`compare`,
  :func:`format_comparisons` — ours with its interval, the paper's, the difference, and
  whether the paper's value lies in our interval.
- :mod:`evcsa.reproduction.plans`: :func:`build_plan` — the experiment configurations of
  ``evcsa reproduce mix-n-squeeze`` and ``randomized-squeezing`` at full or quick scale,
  with the :class:`Gap` list of what the engine cannot do yet.
- :mod:`evcsa.reproduction.settings`: :func:`~evcsa.reproduction.settings.settings_table`,
  :func:`~evcsa.reproduction.settings.format_settings` — each setting with the seed's value,
  the cited code's, ours (read from the plan) and where ours comes from.
- :mod:`evcsa.reproduction.run`: :func:`run_plan` (and, re-exported, the names below);
  the running by job: :mod:`~evcsa.reproduction.directory` (the reproduction directory:
  marker, lock, the plan's master key), :mod:`~evcsa.reproduction.engine` (one
  configuration in its run directory), :mod:`~evcsa.reproduction.parts` (the parts: cells,
  repetitions, sweep), :mod:`~evcsa.reproduction.estimates` (a cell's estimate over its
  samples).
- :mod:`evcsa.reproduction.records`: :class:`~evcsa.reproduction.records.ReproductionResult`,
  :func:`format_result`, :func:`save_result`, :func:`load_result` — the stored records.
- :mod:`evcsa.reproduction.estimate`: :func:`estimate_plan`, :func:`format_estimate` — the
  predicted run time, from the engine's own units of the plan
  (:mod:`evcsa.reproduction.unit_plan`).
- :mod:`evcsa.reproduction.document`: the generated parts of docs/reproducing.md.

Running a plan loads the engine (evcsa.experiments, torch) on first use: the names of the
running modules are this package's lazy face (``evcsa --help`` imports the plans only).
"""

from __future__ import annotations

from evcsa.reproduction.compare import Comparison, Point, compare, format_comparisons
from evcsa.reproduction.plans import GAPS, PLANS, SCALES, Gap, Part, Plan, Scale, build_plan
from evcsa.reproduction.values import PAPERS, PaperTable, PaperValue, paper_table, paper_value, paper_values

__all__ = [
    "GAPS", "PAPERS", "PLANS", "SCALES", "Comparison", "Gap", "PaperTable", "PaperValue", "Part", "Plan", "Point",
    "Scale", "build_plan", "compare", "estimate_plan", "format_comparisons", "format_estimate", "format_result",
    "load_result", "paper_table", "paper_value", "paper_values", "run_plan", "save_result",
]


def __getattr__(name: str) -> object:  # the package's lazy face: the engine (torch) loads only when used
    if name in ("estimate_plan", "format_estimate", "format_result", "load_result", "run_plan", "save_result"):
        from evcsa.reproduction import run

        return getattr(run, name)
    raise AttributeError(f"module 'evcsa.reproduction' has no attribute {name!r}")
