"""The EV-CSA game: :class:`EVCSA`, its :class:`Rules`, the oracles and the results."""

from evcsa.games.game import EVCSA, Knowledge, Oracles, Session
from evcsa.games.results import GameResult, RepeatResult, Submission
from evcsa.games.rejudge import rejudge
from evcsa.games.rules import Rules

__all__ = ["EVCSA", "GameResult", "Knowledge", "Oracles", "RepeatResult", "Rules", "Session", "Submission", "rejudge"]
