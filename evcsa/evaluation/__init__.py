"""Evaluate a defense in one call: the strongest adversary suite, the worst-case advantage,
and the checks that say when an evaluation cannot be trusted (issue 26).

- :func:`evaluate` (also ``evcsa.evaluate`` and ``evcsa evaluate``): defense → suite →
  games → :class:`Evaluation` (and a run directory with report.md);
- :mod:`~evcsa.evaluation.budget`: :class:`Budget`, the presets :data:`QUICK` and
  :data:`STANDARD`;
- :mod:`~evcsa.evaluation.suite`: the defense's traits and the suite chosen from them;
- :mod:`~evcsa.evaluation.ensemble`: :class:`Ensemble`, the best of every attack per
  source by A*'s rule;
- :mod:`~evcsa.evaluation.checks`: the five named checks;
- :mod:`~evcsa.evaluation.records`: one adversary's part of the evaluation (:class:`AdversaryRow`);
- :mod:`~evcsa.evaluation.report`: the whole :class:`Evaluation`, its files and its terminal summary;
- :mod:`~evcsa.evaluation.measure`: the pieces :func:`evaluate` measures with (X_D, the
  cell record, the accuracy, re-keying);
- :mod:`~evcsa.evaluation.run`: :func:`evaluate` itself;
- :mod:`~evcsa.evaluation.estimate`: :func:`estimate_evaluation`, the predicted time.

The modules import one way, in this order: budget, inputs, checks, suite, ensemble →
records → report → measure → run → estimate (nothing below imports what is above it).
"""

import importlib
from typing import Any

#: public name → the module that defines it (loaded on first use: torch loads only then)
_NAMES = {
    "BUDGETS": "budget", "QUICK": "budget", "STANDARD": "budget", "Budget": "budget", "resolve_budget": "budget",
    "CHECKS": "checks", "CheckResult": "checks",
    "Ensemble": "ensemble", "PreparedEnsemble": "ensemble",
    "EvaluationEstimate": "estimate", "estimate_evaluation": "estimate",
    "AdversaryRow": "run", "Evaluation": "run", "evaluate": "run",
    "Member": "suite", "Suite": "suite", "Traits": "suite", "choose_suite": "suite", "describe_defense": "suite",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"evcsa.evaluation.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'evcsa.evaluation' has no attribute {name!r}")
