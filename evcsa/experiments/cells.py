"""One defense × adversary cell: R games, played as units of work and summed up here.

:func:`run_cell` runs one cell here, without a store (through the runner,
:func:`~evcsa.experiments.runner.run_units`); :func:`~evcsa.experiments.assemble.cell_result`
(re-exported here) turns the outputs of a cell's ``play`` units into a
:class:`~evcsa.experiments.results.CellResult`; :func:`find_component` finds a defense or
adversary table by label or index (for :func:`run_cell` and
:func:`~evcsa.experiments.run_legitimate`).
"""

from __future__ import annotations

from typing import Sequence

from evcsa.config import ComponentSpec, ExperimentConfig
from evcsa.errors import ConfigError
from evcsa.experiments.assemble import cell_result, pooled_estimates
from evcsa.experiments.results import CellResult
from evcsa.experiments.runner import run_units

__all__ = ["cell_result", "find_component", "pooled_estimates", "run_cell"]


def find_component(specs: Sequence[ComponentSpec], which: int | str, section: str) -> tuple[ComponentSpec, int]:
    """The table ``which`` (a label, or an index) of ``specs`` (``config.defenses`` or
    ``config.adversaries``, named ``section`` in messages) and its index.

    Raises:
        ConfigError: no table of that label, or an index out of range (or not an int).
    """
    if isinstance(which, str):
        for i, spec in enumerate(specs):
            if spec.name == which:
                return spec, i
        raise ConfigError(f"{section}: expected a label in {[s.name for s in specs]}, got {which!r}",
                          key=section)
    if isinstance(which, bool) or not isinstance(which, int) or not 0 <= which < len(specs):
        raise ConfigError(f"{section}: expected an index in [0, {len(specs) - 1}], got {which!r}", key=section)
    return specs[which], which


def run_cell(config: ExperimentConfig, defense: int | str, adversary: int | str, *,
             progress: bool | None = None, cache_dir: str | None = None) -> CellResult:
    """Play R = ``config.runs`` games of one adversary against one defense, here (no store).

    The defense's keys derive from ``config.seed`` and the two labels (or come from the OS
    when ``reproducible`` is false); the adversary's generator from the same labels — a
    graybox adversary's crafting from its own parameters, shared by every defense; its
    offline phase runs once and its online phase in every game (seed 002 § 5.1). The
    numbers are those of the same cell in :func:`~evcsa.experiments.run_experiment`.

    Args:
        config: the experiment.
        defense, adversary: index or label of the ``[[defenses]]`` / ``[[adversaries]]`` table.
        progress: unused (kept for compatibility; a cell runs as units of work).
        cache_dir: the model cache (default: ``$EVCSA_CACHE`` or ``~/.cache/evcsa``).

    Raises:
        ConfigError: bad indices or components; whatever the adversary raises.
    """
    _, d = find_component(config.defenses, defense, "defenses")
    _, a = find_component(config.adversaries, adversary, "adversaries")
    run = run_units(config, cache_dir=cache_dir, select=("cell", d, a))
    outputs, plan = run.outputs, run.plan
    chunks = [outputs[k] for k in plan.cells[(d, a)]]
    seconds = sum(o.seconds for o in chunks) + outputs[plan.crafts[(d, a)]].seconds
    return cell_result(config, d, a, chunks, rejudged=outputs[plan.rejudge[(d, a)]], seconds=seconds)
