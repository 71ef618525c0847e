"""The adversary interface: subclass :class:`Adversary` and implement ``play``.

An adversary is a strategy that plays the EV-CSA game: which Classify queries to make and
which chosen samples to submit to Attack. Its hyperparameters are keyword-only attrs
fields; it keeps no state between games.

Two phases:

- ``prepare(knowledge) -> Adversary`` (optional): offline work that uses only the
  knowledge — crafting on the undefended model or on the whitebox twin. Returns the
  adversary that plays (``self`` by default). ``EVCSA.repeat`` runs it once and plays the
  result in every game (seed 002 § 5.1).
- ``play(oracles, knowledge)`` (abstract): the online phase with the oracles. It may
  return a report (diagnostics: estimated probabilities, gradient warnings), which the
  game attaches to the result; the game never reads success from it.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from evcsa.errors import InvalidParameter

if TYPE_CHECKING:
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles
    from evcsa.games.rules import Rules

__all__ = ["Adversary"]


class Adversary(abc.ABC):
    """Base class of EV-CSA adversaries (seed 002 § 3, seed 000 § 3)."""

    @property
    def knowledge_needed(self) -> str:
        """The least knowledge level this adversary can play with: "blackbox" (the
        default: samples, labels, N, ε and the oracles), "graybox" (it needs the undefended
        model) or "whitebox" (it needs the defense's twin)."""
        return "blackbox"

    @property
    def play_randomized(self) -> bool:
        """Whether ``play`` may use the game's coins (``knowledge.generator``,
        ``knowledge.keys``): True by default (the safe side). An adversary that declares
        False promises that, against a deterministic classifier, every game it plays gives
        the same result; the experiment engine then plays such a cell's games once and
        replicates the result (:func:`evcsa.experiments.work.is_determined`)."""
        return True

    def check_rules(self, rules: Rules) -> None:
        """Refuse, before any work, a game this adversary cannot play.

        :class:`~evcsa.games.EVCSA` calls it at the start of ``play`` and ``repeat``, and
        ``evcsa play --check`` calls it on the configuration. The default checks
        :attr:`knowledge_needed` against ``rules.knowledge``; override it (calling
        ``super()``) to refuse other rules (a norm the attack lacks, say).

        Raises:
            InvalidParameter: "expected … knowledge …, got …" or the subclass's reason.
        """
        order = ("blackbox", "graybox", "whitebox")
        needed = self.knowledge_needed
        if order.index(needed) > order.index(rules.knowledge):
            raise InvalidParameter(f"expected {needed} knowledge for {type(self).__name__}, got "
                                   f"{rules.knowledge}", needed=needed, got=rules.knowledge)

    def prepare(self, knowledge: Knowledge) -> Adversary:
        """Offline phase: work that needs only ``knowledge`` (no oracle).

        Args:
            knowledge: what the game gives the adversary (samples, labels, N, ε, model,
                twin, generator, keys).

        Returns:
            The adversary that plays the online phase; ``self`` by default.
        """
        return self

    @abc.abstractmethod
    def play(self, oracles: Oracles, knowledge: Knowledge) -> Any:
        """Play one game: query ``oracles.classify`` and submit with ``oracles.attack``.

        Args:
            oracles: the game's oracles (``classify``, ``attack``, ``attack_batch``,
                ``remaining``).
            knowledge: the adversary's knowledge for this game.

        Returns:
            An optional report (any object) kept as ``GameResult.report``.
        """
