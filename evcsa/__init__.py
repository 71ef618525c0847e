"""evcsa: the EV-CSA security game (evasion under chosen-sample attacks) as executable code.

Importing ``evcsa`` is light: it loads no torch. The sub-packages load what they need:

- :mod:`evcsa.games`: the game :class:`~evcsa.games.EVCSA`, its oracles and results;
- :mod:`evcsa.adversaries`: the :class:`~evcsa.adversaries.Adversary` base class and strategies;
- :mod:`evcsa.attacks`: sample-crafting attacks on a model;
- :mod:`evcsa.defenses`: classifiers, squeezers and randomized defenses;
- :mod:`evcsa.stats`: Clopper-Pearson intervals, Poisson-binomial tails, the exact advantage;
- :mod:`evcsa.keys`: key sources and the master key; :mod:`evcsa.randomness`: keyed noise;
- :mod:`evcsa.judging`: the success rule (:mod:`evcsa.terms`: the game's vocabulary and rules record);
- :mod:`evcsa.evaluation`: :func:`evaluate` — a defense against the standard adversary
  suite, the worst-case advantage and the checks (loaded on first use).
"""

from evcsa.errors import (
    BudgetExhausted,
    ConfigError,
    DataError,
    EvcsaError,
    GameOver,
    InvalidParameter,
    InvalidQuery,
    KeyStreamError,
    ModelTampered,
    NotFresh,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetExhausted",
    "ConfigError",
    "DataError",
    "EvcsaError",
    "GameOver",
    "InvalidParameter",
    "InvalidQuery",
    "KeyStreamError",
    "ModelTampered",
    "NotFresh",
    "__version__",
    "evaluate",
]


def __getattr__(name: str):  # noqa: ANN202 - the package face: torch loads only when evaluate is used
    if name == "evaluate":
        from evcsa.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'evcsa' has no attribute {name!r}")
