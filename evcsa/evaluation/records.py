"""One adversary's part of what :func:`evcsa.evaluate` measured (:class:`AdversaryRow`; the
whole :class:`~evcsa.evaluation.report.Evaluation` is the report's record).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np

from evcsa.stats import BinomialEstimate

if TYPE_CHECKING:
    from evcsa.experiments.results import CellResult


__all__ = ["ENSEMBLE_LABEL", "AdversaryRow"]

ENSEMBLE_LABEL = "ensemble"


@attrs.frozen(kw_only=True, eq=False)
class AdversaryRow:
    """One adversary's part of an evaluation.

    Attributes:
        label, role, why: as in :class:`~evcsa.evaluation.suite.Member` ("ensemble" for it).
        cell: its :class:`~evcsa.experiments.CellResult` (the games, as ``evcsa play`` has them).
        per_sample: float64 [M], the fresh-key success probability of its candidate for
            every natural sample (crafters; A*'s are its graybox attack's; the ensemble's
            the best of the suite per source), or None.
        craft_seconds, play_seconds: wall time of its crafting and its games.
    """

    label: str
    role: str
    why: str
    cell: CellResult = attrs.field(repr=False)
    per_sample: np.ndarray | None = attrs.field(repr=False)
    craft_seconds: float
    play_seconds: float

    @property
    def advantage(self) -> BinomialEstimate:
        """The games' Adv(N, τ) at the evaluation's τ."""
        return next(iter(self.cell.advantage.values()))
