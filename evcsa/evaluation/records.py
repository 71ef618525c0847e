"""What :func:`evcsa.evaluate` measured (:mod:`evcsa.evaluation`): one
:class:`AdversaryRow` per adversary and the :class:`Evaluation`, which writes its files and
its summary through :mod:`evcsa.evaluation.report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import attrs
import numpy as np

from evcsa.config import ComponentSpec
from evcsa.errors import InvalidParameter
from evcsa.evaluation import checks as chk
from evcsa.evaluation.budget import Budget
from evcsa.evaluation.report import summary_text, write_evaluation
from evcsa.evaluation.suite import Suite
from evcsa.games.rules import Rules
from evcsa.stats import BinomialEstimate

if TYPE_CHECKING:
    from evcsa.experiments.results import CellResult, ExperimentResult


__all__ = ["AdversaryRow", "Evaluation"]

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


@attrs.frozen(kw_only=True, eq=False)
class Evaluation:
    """What :func:`evaluate` measured (see :mod:`evcsa.evaluation.report` for its files).

    Attributes:
        defense: the defense's description; spec: its ``[[defenses]]`` table.
        rules: the rules the games were played under; tau: τ.
        budget: the :class:`~evcsa.evaluation.budget.Budget`.
        suite: the :class:`~evcsa.evaluation.suite.Suite` (traits, members, notes).
        rows: one :class:`AdversaryRow` per adversary, the ensemble first.
        legitimate: the defense's accuracy on the legitimate images (pooled draws).
        undefended: the undefended model's accuracy on the same images.
        seconds_per_image: {"defense": …, "model": …}, wall time of one classification.
        checks: the :class:`~evcsa.evaluation.checks.CheckResult` records.
        extras: the check runs' numbers (the unbounded attack's and the reruns' per-sample
            probabilities).
        data: X_D and the legitimate set, described.
        model: the model's description.
        environment: versions, threads, platform, device.
        experiment: the same results as an :class:`~evcsa.experiments.ExperimentResult`
            (what ``evcsa play`` writes; ``evcsa show`` reads it back).
        seconds: wall time; timings: per step.
        notes: remarks (graybox fallback, …).
    """

    defense: str
    spec: ComponentSpec
    rules: Rules
    tau: float
    budget: Budget
    suite: Suite = attrs.field(repr=False)
    rows: tuple[AdversaryRow, ...] = attrs.field(repr=False)
    legitimate: BinomialEstimate
    undefended: BinomialEstimate
    seconds_per_image: Mapping[str, float]
    checks: tuple[chk.CheckResult, ...]
    extras: Mapping[str, Any] = attrs.field(repr=False)
    data: Mapping[str, Any]
    model: Mapping[str, Any] = attrs.field(repr=False)
    environment: Mapping[str, Any]
    experiment: ExperimentResult = attrs.field(repr=False)
    seconds: float
    timings: Mapping[str, float]
    notes: tuple[str, ...] = ()

    @property
    def ensemble(self) -> AdversaryRow:
        """The ensemble's row."""
        return self.row(ENSEMBLE_LABEL)

    def row(self, label: str) -> AdversaryRow:
        """The row of the adversary ``label``.

        Raises:
            InvalidParameter: no such adversary.
        """
        for r in self.rows:
            if r.label == label:
                return r
        raise InvalidParameter(f"expected an adversary of the evaluation {[r.label for r in self.rows]}, got "
                               f"{label!r}")

    @property
    def best_single(self) -> AdversaryRow:
        """The single adversary with the highest Adv (ties: the higher mean success rate, then
        the one that knows more: whitebox, search, A*, graybox)."""
        knows = {"whitebox": 3, "search": 2, "a_star": 1, "graybox": 0}
        singles = [r for r in self.rows if r.label != ENSEMBLE_LABEL]
        return max(singles, key=lambda r: (r.advantage.value, r.cell.success_rate.value, knows.get(r.role, 0)))

    @property
    def worst_case(self) -> AdversaryRow:
        """The adversary whose Adv the report leads with: the ensemble's, unless a single
        adversary measured a higher Adv beyond noise (its 95 % interval entirely above the
        ensemble's) — the worst case for the defense is then that adversary's."""
        best, ens = self.best_single, self.ensemble
        return best if best.advantage.low > ens.advantage.high else ens

    @property
    def warnings(self) -> tuple[chk.CheckResult, ...]:
        """The checks that fired."""
        return tuple(c for c in self.checks if c.fired)

    @property
    def n_chosen(self) -> int:
        return self.rules.n_chosen

    def summary(self) -> str:
        """The short terminal summary (:func:`evcsa.evaluation.report.summary_text`)."""
        return summary_text(self)

    def write(self, path: Any, *, overwrite: bool = False, figures: bool = True,
              command: Sequence[str] | None = None) -> list[str]:
        """Write the run directory (:func:`evcsa.evaluation.report.write_evaluation`).

        Returns:
            The names of the files written.
        """
        return write_evaluation(self, path, overwrite=overwrite, figures=figures, command=command)
