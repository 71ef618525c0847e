"""The experiment engine's units of a whole reproduction plan, listed without running them:
every configuration of every part under the key :func:`~evcsa.reproduction.run.run_plan`
gives it, planned by the engine itself (:func:`evcsa.experiments.units.plan_units`, with
the fingerprint the runner computes: :func:`evcsa.experiments.runner.fingerprint`), and
deduplicated by content key across the plan, so a unit two configurations share (a
graybox set, a legitimate accuracy, a sweep point) counts once, as the engine runs it.

The engine lists a configuration's units only inside ``run_units``, which also runs them;
this module does the listing half with the engine's public pieces (what the engine could
expose as ``list_units(config, cache_dir=...)``).
"""

from __future__ import annotations

from typing import Any, Iterator

import attrs

from evcsa.config import ExperimentConfig
from evcsa.experiments import Inputs, build_adversary, load_inputs
from evcsa.experiments.inputs import resolve_device
from evcsa.experiments.provenance import fingerprint
from evcsa.experiments.units import Unit, plan_units
from evcsa.reproduction.directory import derived_key, key_label
from evcsa.reproduction.plans import Part, Plan

__all__ = ["ConfigurationUnits", "PlannedUnit", "configurations", "plan_units_of"]


@attrs.frozen(kw_only=True)
class ConfigurationUnits:
    """One configuration of a plan as the engine plans it: the ``part`` it belongs to, the
    ``config`` with the master key it runs under, its ``inputs`` (model, X_D, legitimate
    set), its built ``adversaries`` (one per ``[[adversaries]]`` table) and its ``units``."""

    part: Part
    config: ExperimentConfig
    inputs: Inputs
    adversaries: tuple[Any, ...]
    units: tuple[Unit, ...]


@attrs.frozen(kw_only=True)
class PlannedUnit:
    """A unit of the plan, listed once: the ``unit`` and the :class:`ConfigurationUnits`
    that first planned it (its configuration, inputs and adversaries)."""

    unit: Unit
    owner: ConfigurationUnits


def configurations(plan: Plan, *, master_key: str, cache_dir: str | None = None,
                   parts: tuple[str, ...] | None = None) -> Iterator[ConfigurationUnits]:
    """Every configuration of ``plan`` (or of ``parts``) with the engine's units, in the
    order :func:`~evcsa.reproduction.run.run_plan` runs them, each under the key it runs
    under (``master_key``, or a repetition's key derived from it:
    :func:`~evcsa.reproduction.directory.key_label`).

    Raises:
        ConfigError, DataError: a configuration's data or model cannot be loaded.
    """
    chosen = [plan.part(p) for p in parts] if parts is not None else list(plan.parts)
    for part in chosen:
        for i, config in enumerate(part.configs):
            keyed = attrs.evolve(config, master_key=derived_key(master_key, key_label(part.id, part.run, i)))
            inputs = load_inputs(keyed, cache_dir=cache_dir)
            adversaries = tuple(build_adversary(s, where=f"adversaries[{a}]", base_dir=keyed.base_dir)
                                for a, s in enumerate(keyed.adversaries))
            units, _ = plan_units(keyed, fingerprint(inputs, resolve_device(keyed.device)), adversaries)
            yield ConfigurationUnits(part=part, config=keyed, inputs=inputs, adversaries=adversaries,
                                     units=tuple(units))


def plan_units_of(plan: Plan, *, master_key: str, cache_dir: str | None = None,
                  parts: tuple[str, ...] | None = None) -> tuple[PlannedUnit, ...]:
    """Every unit of ``plan`` once (deduplicated by content key), in the order the plan's
    configurations first list them (:func:`configurations`).

    Raises:
        ConfigError, DataError: a configuration's data or model cannot be loaded.
    """
    seen: dict[str, PlannedUnit] = {}
    for owner in configurations(plan, master_key=master_key, cache_dir=cache_dir, parts=parts):
        for unit in owner.units:
            if unit.key not in seen:
                seen[unit.key] = PlannedUnit(unit=unit, owner=owner)
    return tuple(seen.values())
