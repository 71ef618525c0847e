"""The result records of a run: :class:`CellResult`, :class:`SweepPoint`,
:class:`ExampleImages`, :class:`ExperimentResult`; proportions in them are
:class:`evcsa.stats.BinomialEstimate` (one estimate type for the whole library)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import attrs

from evcsa.config import ExperimentConfig
from evcsa.stats import BinomialEstimate, IntervalEstimate

if TYPE_CHECKING:  # (the records import no torch; the images are tensors)
    import torch

__all__ = ["CellResult", "ExampleImages", "ExperimentResult", "SweepPoint"]


@attrs.frozen(kw_only=True)
class CellResult:
    """One defense × adversary cell: R games.

    Attributes:
        defense, adversary: the labels.
        runs: R; n_chosen: N.
        successes: n per game (R integers).
        success_rate: the mean success rate with the pooled Clopper–Pearson interval over the
            R·N submissions (:meth:`evcsa.games.RepeatResult.success_rate_interval`).
        advantage: τ (as a string key, e.g. "1.0") → empirical Adv(N, τ) over the R games
            with its exact interval (:meth:`evcsa.games.RepeatResult.advantage`).
        adversarial_accuracy: submissions the defense labelled with the source's true label,
            over all submissions (pooled interval).
        submissions: mean submissions per game (≤ N; missing ones count as failures).
        classify_queries: mean Classify queries per game.
        stale_queries: stale Attack queries over all games.
        p_hat: the adversary's per-candidate success estimates averaged over the games
            (A*, or BPDA+EOT's selection), or None; ``p_hat_sources`` their natural samples;
            ``p_hat_draws`` the draws per candidate summed over games.
        advantage_exact: τ → Adv(N, τ) computed from ``p_hat`` (seed 002 Eq. 6 for τ = 1:
            Π of the N largest p̂; the Poisson-binomial tail otherwise), or empty.
        log_advantage_exact: the same in natural log (−inf allowed as None).
        submitted_successes: the N samples the adversary submitted in the cell's first game
            (its crafted set for a transfer adversary), each re-judged ``submitted_draws``
            times on fresh classifier keys (:func:`evcsa.games.rejudge`): successes per
            sample (N integers; a submission never made counts 0), or None.
        submitted_draws: the classifications per sample behind ``submitted_successes``.
        expected_advantage: τ → the expected advantage of those N samples
            (:func:`evcsa.stats.expected_advantage`: the Poisson-binomial tail at their
            fresh-key success rates, with a Bonferroni–Clopper–Pearson interval), or empty.
        sample_correct, sample_submissions: per X_D sample (|X_D| integers, by source
            index), the submissions made from it over all games that the defense labelled
            with its true label, and all submissions made from it (0 for a sample never
            submitted); None in results written before they were recorded. The per-sample
            interval (:func:`evcsa.stats.per_sample_estimate`) is computed from them.
        gradient_flagged: whether any game's report flagged a zero, NaN or missing gradient.
        notes: distinct remarks from the adversary's reports.
        seconds: wall time of the cell.
    """
    defense: str
    adversary: str
    runs: int
    n_chosen: int
    successes: tuple[int, ...]
    success_rate: BinomialEstimate
    advantage: Mapping[str, BinomialEstimate]
    adversarial_accuracy: BinomialEstimate | None
    submissions: float
    classify_queries: float
    stale_queries: int
    p_hat: tuple[float, ...] | None = None
    p_hat_sources: tuple[int, ...] | None = None
    p_hat_draws: int | None = None
    advantage_exact: Mapping[str, float] = attrs.field(factory=dict)
    log_advantage_exact: Mapping[str, float | None] = attrs.field(factory=dict)
    submitted_successes: tuple[int, ...] | None = None
    submitted_draws: int | None = None
    expected_advantage: Mapping[str, IntervalEstimate] = attrs.field(factory=dict)
    sample_correct: tuple[int, ...] | None = None
    sample_submissions: tuple[int, ...] | None = None
    gradient_flagged: bool = False
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def mean_success_rate(self) -> float:
        """The mean success rate over the games."""
        return self.success_rate.value


@attrs.frozen(kw_only=True)
class SweepPoint:
    """One squeezer at one δ in the sweep (seed 002 Fig. 5 and Fig. 6).

    Attributes:
        squeezer: its spec ("bit-depth-1"); delta: δ (0: deterministic feature squeezing).
        legitimate_accuracy: on the legitimate test images.
        adversarial_accuracy: on the sweep's adversarial samples (one per X_D sample,
            crafted on the undefended model), each classified ``draws`` times.
        p_hat: per adversarial sample, the fraction of draws that succeeded (untargeted:
            label ∉ {y, REJECTED}).
        advantage_exact: "N" → Adv(N, 1) = Π of the N largest p̂ (seed 002 Eq. 6), for
            each N of ``figures.n_values`` not above the number of samples.
        sample_correct: per adversarial sample, the draws labelled with its true label
            (None in results written before it was recorded); ``sample_draws`` the draws
            per sample (``figures.draws``, 1 at δ = 0).
    """
    squeezer: str
    delta: float
    legitimate_accuracy: BinomialEstimate
    adversarial_accuracy: BinomialEstimate
    p_hat: tuple[float, ...]
    advantage_exact: Mapping[str, float]
    sample_correct: tuple[int, ...] | None = None
    sample_draws: int | None = None


@attrs.frozen(kw_only=True, eq=False)
class ExampleImages:
    """The example strip (seed 002 Fig. 4): images float32 [K, C, H, W] in [0, 1].

    Attributes:
        original, adversarial, randomized, squeezed: the natural sample, its adversarial
            version (the sweep's attack on the undefended model), that with the defense's
            noise (clip(x′ + r, 0, 1)), and then squeezed — what the model classifies.
        labels: "original" / "adversarial" / "randomized" / "squeezed" → the undefended
            model's labels of each row (the squeezed row's labels are the defense's answer
            for that draw; "randomized" is absent in results written before 0.2); "true".
        defense: the randomized defense shown; squeezer and delta its parameters.
    """
    original: torch.Tensor = attrs.field(repr=False)
    adversarial: torch.Tensor = attrs.field(repr=False)
    randomized: torch.Tensor = attrs.field(repr=False)
    squeezed: torch.Tensor = attrs.field(repr=False)
    labels: Mapping[str, tuple[int, ...]]
    defense: str
    squeezer: str
    delta: float


@attrs.frozen(kw_only=True, eq=False)
class ExperimentResult:
    """Everything a run produced (see :mod:`evcsa.report` for the files).

    Attributes:
        config: the configuration.
        cells: one :class:`CellResult` per defense × adversary, defenses outer.
        legitimate: defense label → accuracy on the legitimate test images.
        sweep: the δ sweep (empty when figures are disabled).
        examples: the example strip, or None.
        data: a description of X_D and the legitimate set.
        model: the model's description (the reference model's JSON).
        environment: versions, threads, platform.
        seconds: wall time of the run.
    """
    config: ExperimentConfig
    cells: tuple[CellResult, ...]
    legitimate: Mapping[str, BinomialEstimate]
    sweep: tuple[SweepPoint, ...]
    examples: ExampleImages | None
    data: Mapping[str, Any]
    model: Mapping[str, Any]
    environment: Mapping[str, Any]
    seconds: float
