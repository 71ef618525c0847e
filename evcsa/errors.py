"""One exception hierarchy for evcsa.

Every error evcsa raises on purpose derives from :class:`EvcsaError`. Each carries the
values that explain it as attributes (``details``), and its message reads
"expected ..., got ...". Errors that signal bad input also derive from :class:`ValueError`
so that generic handlers keep working.

::

    EvcsaError
    ├── InvalidParameter (ValueError)   a bad argument to a function or constructor
    │   ├── ConfigError                 a bad key or value in a configuration file
    │   ├── DataError                   a malformed data file or data set
    │   │   └── CorruptStore            a run directory's store or unit file is damaged
    │   └── InvalidOutput               a component's answer the referee or the engine cannot accept
    ├── InvalidQuery (ValueError)       a malformed oracle query; the game state is unchanged
    ├── NotFresh                        a stale Attack query: the game's ⊥, not counted
    ├── GameOver                        Attack after N submissions, or after the game ended
    ├── BudgetExhausted                 Classify beyond its optional query budget
    ├── KeyStreamError                  a key, nonce or keystream request out of range
    ├── PluginError                     a user's plugin (package.module:Name) failed in a run
    └── ModelTampered                   the adversary changed the model the game classifies with

    TrivialEpsilonWarning (UserWarning) ε at or beyond the bound that lets every image through
    EvaluationWarning (UserWarning)     a check of ``evcsa.evaluate`` says the evaluation cannot be trusted
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExhausted",
    "ConfigError",
    "CorruptStore",
    "DataError",
    "EvaluationWarning",
    "EvcsaError",
    "GameOver",
    "InvalidOutput",
    "InvalidParameter",
    "NotReproducibleWarning",
    "InvalidQuery",
    "KeyStreamError",
    "ModelTampered",
    "NotFresh",
    "PluginError",
    "TrivialEpsilonWarning",
]


class EvcsaError(Exception):
    """Base class of every error evcsa raises on purpose.

    Args:
        message: one line saying what was expected and what was got.
        **details: the values that explain the error, kept as ``self.details`` and
            as attributes of the same names.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details)
        for name, value in details.items():
            setattr(self, name, value)


class InvalidParameter(EvcsaError, ValueError):
    """A bad argument to a function or constructor (type, range, shape)."""


class ConfigError(InvalidParameter):
    """A bad key or value in a configuration; ``key`` names the offending key."""


class DataError(InvalidParameter):
    """A malformed data file or data set; ``path`` names the file where there is one."""


class InvalidOutput(InvalidParameter):
    """A component's answer that the referee or the experiment engine cannot accept: a
    classifier's ``predict`` returning anything but B integer labels in [REJECTED, K), an
    adversary's success estimate p̂ that is NaN or outside [0, 1], a unit of work whose
    counts exceed their totals. Raised before anything is counted or stored; from a unit
    of work the message starts with the unit's name (``unit``)."""


class CorruptStore(DataError):
    """A run directory's store (``evcsa-run.sqlite``), one of its unit files
    (``units/<key>.npz``) or its results files are damaged or were changed after evcsa wrote
    them: refused, never silently replaced (``path`` names the file; the message says how to
    recompute or start over)."""


class PluginError(EvcsaError):
    """A user's component named ``package.module:Name`` (a defense, an adversary, an attack,
    a data loader or an architecture) raised, or called ``sys.exit``, while a unit of work
    ran: ``plugin`` names it, ``where`` its configuration key, ``unit`` the unit (its cell)."""


class InvalidQuery(EvcsaError, ValueError):
    """A malformed oracle query (shape, dtype, NaN/inf, outside [0, 1], unknown source,
    target missing or unexpected). Raised before anything is counted: the game is unchanged."""


class NotFresh(EvcsaError):
    """A stale Attack query: the game's ⊥ (seed 002 Fig. 2 line 8; seed 000 Fig. 1 line 8).

    The query is not counted and nothing is recorded; the adversary may go on playing.
    ``sources`` lists the stale sources, ``positions`` their positions in the batch.
    """


class GameOver(EvcsaError):
    """Attack called when q ≥ N (or with more samples than remain), or after the game ended."""


class BudgetExhausted(EvcsaError):
    """Classify called beyond the game's optional query budget; nothing was classified."""


class KeyStreamError(EvcsaError):
    """A key or nonce of the wrong length, or a keystream request past the counter's end."""


class ModelTampered(EvcsaError):
    """The adversary changed the undefended model it was handed (graybox/whitebox knowledge)
    — its parameters or buffers (in place, via ``.data`` or by replacement) or its train/eval
    mode — while the game classified with that same model. The game's result is void;
    an adversary that fine-tunes a surrogate must work on a copy
    (``copy.deepcopy(knowledge.model.module)``)."""


class TrivialEpsilonWarning(UserWarning):
    """A distortion bound ε at or beyond the trivial bound of its norm on [0, 1] images of
    C × H × W values: L∞ ε ≥ 1, L2 ε ≥ √(C·H·W), L0 ε ≥ C·H·W (a pixel count). Every image
    of the same shape is then within ε of every other, so every attack "succeeds" and the
    numbers say nothing about the defense (ε = 8 written for 8/255, say). A warning, not an
    error: an unbounded evaluation is legitimate (seed 002 plays with ε = None), but one
    should say so. ``epsilon``, ``norm``, ``bound`` hold the values."""

    def __init__(self, message: str, *, epsilon: float, norm: str, bound: float) -> None:
        super().__init__(message)
        self.epsilon, self.norm, self.bound = epsilon, norm, bound


class NotReproducibleWarning(UserWarning):
    """A series of games given a ``seed`` against a randomized defense whose keys come from
    OS entropy (:class:`~evcsa.randomness.SystemKeys`, the secure default): the adversary's
    coins repeat, the defense's noise does not, so the same script prints a different
    advantage on each run. To repeat every number, give the defense
    ``keys=DerivedKeys(MasterKey.generate(), "my-study")`` and keep the key's ``.hex()``
    (experiments do this with ``reproducible = true``). ``classifier`` names its class."""

    def __init__(self, message: str, *, classifier: str) -> None:
        super().__init__(message)
        self.classifier = classifier


class EvaluationWarning(UserWarning):
    """A check of an evaluation (:mod:`evcsa.evaluation.checks`) fired: the evaluation's
    numbers cannot be trusted as they stand (masked gradients, an unbounded attack that
    fails, a transfer beating the whitebox attack, an attack that had not converged, a twin
    sharing the defense's randomness). ``check`` names it, ``advice`` says what to do."""

    def __init__(self, message: str, *, check: str, advice: str) -> None:
        super().__init__(message)
        self.check, self.advice = check, advice
