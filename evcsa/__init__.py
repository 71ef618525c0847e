"""evcsa: the EV-CSA security game (evasion under chosen-sample attacks) as executable code.

Importing ``evcsa`` is light: it loads no torch. The sub-packages load what they need:

- :mod:`evcsa.games`: the game :class:`~evcsa.games.EVCSA`, its oracles and results;
- :mod:`evcsa.adversaries`: the :class:`~evcsa.adversaries.Adversary` base class and strategies;
- :mod:`evcsa.attacks`: sample-crafting attacks on a model;
- :mod:`evcsa.defenses`: classifiers, squeezers and randomized defenses;
- :mod:`evcsa.stats`: Clopper-Pearson intervals, Poisson-binomial tails, the exact advantage;
- :mod:`evcsa.randomness`: key sources and keyed noise.
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
]
