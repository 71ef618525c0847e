"""The EV-CSA game: :class:`EVCSA`, its :class:`Rules`, the oracles and the results.

Modules, by job: :mod:`~evcsa.games.rules` (the rules record), :mod:`~evcsa.games.knowledge`
(what the adversary is given, and the tamper checks), :mod:`~evcsa.games.oracles` (one open
game's state, Classify and Attack, the session), :mod:`~evcsa.games.game` (the game and its
series), :mod:`~evcsa.games.results` and :mod:`~evcsa.games.rejudge`; the success rule is
the judge's (:mod:`evcsa.judging`).
"""

from evcsa.games.game import EVCSA, AdversaryProtocol
from evcsa.games.knowledge import Knowledge
from evcsa.games.oracles import Oracles, Session
from evcsa.games.results import GameResult, RepeatResult, Submission
from evcsa.games.rejudge import rejudge
from evcsa.games.rules import Rules

__all__ = ["EVCSA", "AdversaryProtocol", "GameResult", "Knowledge", "Oracles", "RepeatResult", "Rules", "Session",
           "Submission", "rejudge"]
