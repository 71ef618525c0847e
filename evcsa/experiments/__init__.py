"""Running an experiment: every defense × adversary cell, the legitimate accuracy, the δ
sweep and the example images, each a pure function of an :class:`~evcsa.config.ExperimentConfig`.

A run is reproducible and splittable: :func:`run_cell`, :func:`run_legitimate`,
:func:`run_sweep` and :func:`run_examples` take the configuration (a frozen, serializable
record) and names or indices, derive all of their randomness from ``config.seed`` and the
*labels* of what they run (so reordering tables does not change a cell's numbers), and
return frozen result records. :func:`run_experiment` calls them in turn, or spreads the
cells over a ``concurrent.futures`` executor (processes, a cluster) unchanged.

Modules:

- :mod:`~evcsa.experiments.registry`: the component registries :data:`DEFENSES` and
  :data:`ADVERSARIES` (plain dicts; add your own entries) and their builders;
- :mod:`~evcsa.experiments.checks`: :func:`check_config`;
- :mod:`~evcsa.experiments.seeds`: the randomness derived from the master seed;
- :mod:`~evcsa.experiments.inputs`: the model, the legitimate set and X_D;
- :mod:`~evcsa.experiments.results`: the result records;
- :mod:`~evcsa.experiments.cells`, :mod:`~evcsa.experiments.legitimate`,
  :mod:`~evcsa.experiments.sweep`: the pieces (their records from the units' outputs:
  :mod:`~evcsa.experiments.assemble`);
- :mod:`~evcsa.experiments.units`, :mod:`~evcsa.experiments.work`: the units of work and what
  each computes; :mod:`~evcsa.experiments.store`, :mod:`~evcsa.experiments.executors`: where
  they are kept and where they run (the seams: :mod:`~evcsa.experiments.seams`);
- :mod:`~evcsa.experiments.runner`: :func:`~evcsa.experiments.runner.run_units`, the core
  the pieces call; :mod:`~evcsa.experiments.run`: :func:`run_experiment`;
- :mod:`~evcsa.experiments.rundir`: :class:`~evcsa.experiments.rundir.RunDirectory`, a run
  directory from opening to closing;
- :mod:`~evcsa.experiments.demo`: :data:`DEMO_TOML`, the demo configuration (package data).
"""

from __future__ import annotations

from evcsa.experiments.cells import run_cell
from evcsa.experiments.checks import check_config
from evcsa.experiments.demo import DEMO_TOML
from evcsa.experiments.inputs import Inputs, load_inputs
from evcsa.experiments.legitimate import run_legitimate
from evcsa.experiments.registry import ADVERSARIES, DEFENSES, build_adversary, build_defense, squeezers_of
from evcsa.experiments.results import CellResult, ExampleImages, ExperimentResult, SweepPoint
from evcsa.experiments.run import run_experiment
from evcsa.experiments.rundir import RunDirectory
from evcsa.experiments.sweep import run_examples, run_sweep

__all__ = [
    "ADVERSARIES",
    "DEFENSES",
    "DEMO_TOML",
    "CellResult",
    "ExampleImages",
    "ExperimentResult",
    "Inputs",
    "RunDirectory",
    "SweepPoint",
    "build_adversary",
    "build_defense",
    "check_config",
    "load_inputs",
    "run_cell",
    "run_examples",
    "run_experiment",
    "run_legitimate",
    "run_sweep",
    "squeezers_of",
]
