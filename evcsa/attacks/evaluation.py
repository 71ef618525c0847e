"""Crafting in batches and judging the result: success is re-checked, never trusted.

Who counts success, stated once and applied to every attack:

- A sample's outcome is decided by running the returned x′ through the classifier under
  evaluation (the defended one), never by an attack's own flag or loss.
- Untargeted success: C(x′) ∉ {y, REJECTED}. Targeted success: C(x′) = t. When ε is
  given, success also needs d(x, x′) ≤ ε (+ tolerance) in the stated norm. A targeted
  attack that lands in another wrong class is a targeted failure; it appears in
  :attr:`AttackEvaluation.untargeted_success`, never in :attr:`AttackEvaluation.success`.
- **The success rate is over the initially correct samples**: successes among the
  samples the classifier labels correctly before the attack, divided by their number.
  (The adversarial accuracy, the seed's Table 1 figure, is over all samples.)
- An attack that returns no sample (None), a NaN/inf value, a wrong shape or values
  outside [0, 1] for a sample fails on that sample: counted in the denominator, logged
  on the ``evcsa.attacks`` logger, and evaluated as x itself (the natural sample).
- A rejecting defense (``REJECTED`` = −1) stays in the denominator: a rejected x′ is not
  a success; a rejected natural x is not initially correct.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import numpy as np
import torch

from evcsa._validation import as_images, as_labels, check_positive_int
from evcsa.attacks._common import as_classifier, check_generator, check_targets_differ, to_uint8_grid
from evcsa.attacks.gradients import GradientHealth, GradientMonitor
from evcsa.attacks.registry import check_params, get_attack, resolve_targets
from evcsa.defenses.base import REJECTED
from evcsa.distances import DEFAULT_TOLERANCE, NORMS, distance, within_epsilon
from evcsa.errors import InvalidParameter
from evcsa.judging import is_success
from evcsa.stats import BinomialEstimate

__all__ = ["AttackEvaluation", "Crafted", "evaluate_adversarial", "evaluate_attack", "run_attack"]

logger = logging.getLogger("evcsa.attacks")


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


@attrs.frozen(kw_only=True, eq=False)
class Crafted:
    """Adversarial samples from :func:`run_attack`.

    Attributes:
        x_adv: float32 [B, C, H, W] in [0, 1] (CPU); x itself where the attack failed.
        targets: int64 [B] (CPU) for a targeted attack, else None.
        failed: bool [B], the attack produced no usable sample (None, NaN/inf, out of
            range, wrong shape).
        health: the gradients' :class:`GradientHealth`.
    """

    x_adv: torch.Tensor = attrs.field(repr=False)
    targets: torch.Tensor | None = attrs.field(repr=False)
    failed: np.ndarray = attrs.field(repr=False)
    health: GradientHealth = attrs.field(repr=False)

    def __len__(self) -> int:
        return int(self.x_adv.shape[0])


def _usable_rows(out: Any, x: torch.Tensor, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """The attack's output as [b, C, H, W] with x in place of unusable rows, and the
    failed mask."""
    b = x.shape[0]
    if out is None:
        logger.warning("%s returned no samples for a batch of %d: counted as failures", name, b)
        return x.clone(), np.ones(b, dtype=bool)
    if not isinstance(out, torch.Tensor):
        try:
            out = torch.as_tensor(np.asarray(out, dtype=np.float32))
        except (TypeError, ValueError):
            logger.warning("%s returned %s for a batch of %d: counted as failures", name, type(out).__name__, b)
            return x.clone(), np.ones(b, dtype=bool)
    if tuple(out.shape) != tuple(x.shape) or not torch.is_floating_point(out):
        logger.warning("%s returned shape %s dtype %s for inputs %s: counted as failures", name,
                       tuple(out.shape), out.dtype, tuple(x.shape))
        return x.clone(), np.ones(b, dtype=bool)
    out = out.detach().to(x.device, torch.float32)
    flat = out.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    in_range = (safe.min(dim=1).values >= -DEFAULT_TOLERANCE) & (safe.max(dim=1).values <= 1 + DEFAULT_TOLERANCE)
    good = finite & in_range
    failed = _np(~good).astype(bool)
    if failed.any():
        logger.warning("%s produced no usable sample (NaN/inf or outside [0, 1]) for %d of %d inputs: "
                       "counted as failures", name, int(failed.sum()), b)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return torch.where(good.view(shape), out.clamp(0.0, 1.0), x), failed


def run_attack(attack: Any, model: Any, x: Any, y: Any, *, target: Any = "spec", batch_size: int | None = None,
               generator: torch.Generator | None = None, **params: Any) -> Crafted:
    """Run an attack in batches, collecting gradient health and failures.

    Args:
        attack: a registry name (:data:`~evcsa.attacks.ATTACKS`), an
            :class:`AttackSpec`, or an attack function.
        model: the model crafted on (Classifier or nn.Module).
        x: float32 [M, C, H, W] in [0, 1].
        y: true labels [M].
        target: "spec" (the spec's own targeting; untargeted for a bare function), None
            (untargeted), "next", "least_likely", or labels [M].
        batch_size: images per attack call (None: all at once).
        generator: the attack's randomness.
        **params: override the spec's parameters.

    Returns:
        :class:`Crafted` on the CPU.

    Raises:
        InvalidParameter: malformed inputs or parameters (from the attack itself).
    """
    spec = get_attack(attack)
    check_generator(generator)
    clf = as_classifier(model)
    x = as_images(x, name="x", device=clf.device)
    y = as_labels(y, name="y", length=x.shape[0]).to(clf.device)
    targeting = spec.targeting if isinstance(target, str) and target == "spec" else target
    targets = resolve_targets(targeting, clf, x, y)
    size = x.shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
    check_params(spec.attack, params, name=spec.name)
    merged = {**spec.params, **params}
    outs, fails, healths = [], [], []
    for start in range(0, x.shape[0], size):
        sl = slice(start, start + size)
        xb, yb = x[sl], y[sl]
        tb = None if targets is None else targets[sl]
        monitor = GradientMonitor(xb.shape[0])
        out = spec.attack(clf, xb, yb, target=tb, generator=generator, monitor=monitor, **merged)
        rows, failed = _usable_rows(out, xb, spec.name)
        outs.append(rows.cpu())
        fails.append(failed)
        healths.append(monitor.health())
    health = GradientHealth.concat(healths)
    if not health.ok:
        logger.warning("%s: %s", spec.name, health.summary())
    return Crafted(x_adv=torch.cat(outs), targets=None if targets is None else targets.cpu(),
                   failed=np.concatenate(fails), health=health)


@attrs.frozen(kw_only=True, eq=False)
class AttackEvaluation:
    """The outcome of an attack on M samples, judged by the evaluated classifier.

    Attributes:
        labels: true labels y, int64 [M].
        targets: target labels t [M] for a targeted attack, else None.
        clean_predictions: C(x), int64 [M] (REJECTED = −1 for a rejection).
        predictions: C(x′), int64 [M]; C(x) for failed samples.
        failed: bool [M], the attack produced no usable sample.
        distances: d(x, x′) [M] in ``norm`` (float64).
        within_epsilon: bool [M] (all True when ``epsilon`` is None).
        epsilon, norm: the bound checked (None: unbounded).
        health: the gradients' :class:`GradientHealth`, or None if unknown.

    See the module docstring for the definitions; every figure is computed from these
    arrays by the properties below.
    """

    labels: np.ndarray = attrs.field(repr=False)
    targets: np.ndarray | None = attrs.field(repr=False)
    clean_predictions: np.ndarray = attrs.field(repr=False)
    predictions: np.ndarray = attrs.field(repr=False)
    failed: np.ndarray = attrs.field(repr=False)
    distances: np.ndarray = attrs.field(repr=False)
    within_epsilon: np.ndarray = attrs.field(repr=False)
    epsilon: float | None
    norm: str
    health: GradientHealth | None = attrs.field(default=None, repr=False)

    @property
    def n(self) -> int:
        """M, the number of samples."""
        return int(self.labels.shape[0])

    @property
    def initially_correct(self) -> np.ndarray:
        """bool [M]: C(x) = y."""
        return self.clean_predictions == self.labels

    @property
    def rejected(self) -> np.ndarray:
        """bool [M]: the classifier rejected x′."""
        return self.predictions == REJECTED

    @property
    def untargeted_success(self) -> np.ndarray:
        """bool [M]: C(x′) ∉ {y, REJECTED} (the game's rule,
        :func:`evcsa.judging.is_success` against the label), within ε, and the attack
        produced a sample."""
        hit = is_success(torch.as_tensor(self.predictions), torch.as_tensor(self.labels)).numpy()
        return hit & self.within_epsilon & ~self.failed

    @property
    def success(self) -> np.ndarray:
        """bool [M]: the attack's goal reached — C(x′) = t (targeted) or the untargeted
        success above — within ε, with a sample produced (the game's rule,
        :func:`evcsa.judging.is_success`)."""
        if self.targets is None:
            return self.untargeted_success
        hit = is_success(torch.as_tensor(self.predictions), torch.as_tensor(self.labels), goal="targeted",
                         targets=torch.as_tensor(self.targets)).numpy()
        return hit & self.within_epsilon & ~self.failed

    @property
    def success_rate(self) -> float:
        """Successes among the initially correct samples / their number (NaN if none)."""
        ic = self.initially_correct
        return float(self.success[ic].sum() / ic.sum()) if ic.any() else float("nan")

    def success_estimate(self, alpha: float = 0.05) -> BinomialEstimate:
        """:attr:`success_rate` with its Clopper–Pearson interval.

        Raises:
            InvalidParameter: no sample is initially correct.
        """
        ic = self.initially_correct
        if not ic.any():
            raise InvalidParameter("expected at least one initially correct sample for a success rate, got none")
        return BinomialEstimate.from_counts(int(self.success[ic].sum()), int(ic.sum()), alpha)

    @property
    def adversarial_accuracy(self) -> float:
        """Fraction of all M samples with C(x′) = y (seed 002 Table 1's figure)."""
        return float((self.predictions == self.labels).mean())

    @property
    def clean_accuracy(self) -> float:
        """Fraction of all M samples with C(x) = y."""
        return float(self.initially_correct.mean())

    @property
    def gradient_flagged(self) -> np.ndarray:
        """bool [M]: samples whose gradients were zero, non-finite or missing."""
        if self.health is None:
            return np.zeros(self.n, dtype=bool)
        return self.health.flagged

    def summary(self) -> str:
        """One line with the figures."""
        ic = int(self.initially_correct.sum())
        line = (f"adversarial accuracy {self.adversarial_accuracy:.1%}; success {int(self.success[self.initially_correct].sum())}"
                f"/{ic} initially correct ({self.success_rate:.1%}); failed {int(self.failed.sum())}; "
                f"rejected {int(self.rejected.sum())}")
        if self.health is not None and not self.health.ok:
            line += f"; {self.health.summary()}"
        return line


def _predict(classifier: Any, x: torch.Tensor, batch_size: int | None) -> np.ndarray:
    device = getattr(classifier, "device", torch.device("cpu"))
    size = x.shape[0] if batch_size is None else batch_size
    out = [classifier.predict(x[i:i + size].to(device)).detach().cpu().to(torch.int64)
           for i in range(0, x.shape[0], size)]
    return torch.cat(out).numpy()


def evaluate_adversarial(classifier: Any, x: Any, y: Any, x_adv: Any, *, target: Any = None,
                         epsilon: float | None = None, norm: str = "linf", failed: Any = None,
                         health: GradientHealth | None = None, tolerance: float = DEFAULT_TOLERANCE,
                         batch_size: int | None = None) -> AttackEvaluation:
    """Judge adversarial samples with the classifier under evaluation (success is never read from the attack).

    Args:
        classifier: anything with ``predict(x) -> labels`` (the defended classifier).
        x: natural images float32 [M, C, H, W] in [0, 1].
        y: true labels [M].
        x_adv: adversarial images [M, C, H, W], or None (the attack produced nothing).
            Rows with NaN/inf, values outside [0, 1] count as failures.
        target: target labels [M] for a targeted attack, or None.
        epsilon: the bound to check (None: none), in ``norm`` ("l0", "l2", "linf").
        failed: bool [M] of samples already known to have failed (from :func:`run_attack`).
        health: the gradients' health to carry along.
        tolerance: the ε check's float slack (the game's default 1e-6).
        batch_size: images per ``predict`` call (None: all at once).

    Returns:
        :class:`AttackEvaluation`.

    Raises:
        InvalidParameter: malformed x, y, targets (or a target equal to its label), norm
            or failed mask.
    """
    if not callable(getattr(classifier, "predict", None)):
        raise InvalidParameter(f"expected a classifier with predict(x), got {type(classifier).__name__}")
    if norm not in NORMS:
        raise InvalidParameter(f"expected norm in {NORMS}, got {norm!r}", got=norm)
    x = as_images(x, name="x", device="cpu")
    m = x.shape[0]
    y_t = as_labels(y, name="y", length=m)
    tgt = None if target is None else as_labels(target, name="target", length=m)
    if tgt is not None:
        check_targets_differ(tgt, y_t)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    rows, bad = _usable_rows(x_adv, x, "attack")
    if failed is not None:
        failed = np.asarray(failed, dtype=bool).reshape(-1)
        if failed.shape[0] != m:
            raise InvalidParameter(f"expected failed as {m} booleans, got {failed.shape[0]}")
        bad = bad | failed
    bad_t = torch.from_numpy(bad)
    rows = torch.where(bad_t.view(-1, 1, 1, 1), x, rows.cpu())
    clean = _predict(classifier, x, batch_size)
    pred = _predict(classifier, rows, batch_size)
    d = distance(x, rows, norm, tolerance=tolerance)
    ok = within_epsilon(d, epsilon, norm, tolerance=tolerance)
    return AttackEvaluation(labels=y_t.numpy(), targets=None if tgt is None else tgt.numpy(),
                            clean_predictions=clean, predictions=pred, failed=bad,
                            distances=d.numpy(), within_epsilon=ok.numpy(), epsilon=epsilon, norm=norm,
                            health=health)


def evaluate_attack(attack: Any, classifier: Any, x: Any, y: Any, *, model: Any = None, target: Any = "spec",
                    epsilon: float | None = None, norm: str | None = None, batch_size: int | None = None,
                    generator: torch.Generator | None = None, round_to_grid: bool = False,
                    **params: Any) -> AttackEvaluation:
    """Craft with an attack on ``model`` and judge the result on ``classifier``.

    ``model`` = None crafts on the classifier itself (through its surrogate: the
    whitebox case); pass ``model=classifier.model`` for a graybox (transfer) evaluation,
    as the feature-squeezing evaluation does.

    Args:
        attack: registry name, :class:`AttackSpec` or attack function.
        classifier: the classifier under evaluation.
        x, y: natural images [M, C, H, W] and labels [M].
        model: the model to craft on (default: ``classifier``).
        target: as in :func:`run_attack`.
        epsilon: ε to check (default: the spec's own ``epsilon`` parameter, if any). A
            bounded attack of the same norm (FGSM, BIM) also crafts with this ε.
        norm: the norm of ε (default the spec's norm).
        batch_size: images per attack / predict call.
        generator: the attack's randomness.
        round_to_grid: round x′ to the uint8 grid (within ε) before judging it.
        **params: override the attack's parameters.

    Returns:
        :class:`AttackEvaluation` (success re-checked on ``classifier``).
    """
    if not callable(getattr(classifier, "predict", None)):
        raise InvalidParameter(f"expected a classifier with predict(x), got {type(classifier).__name__}")
    spec = get_attack(attack)
    if epsilon is not None and spec.epsilon is not None and "epsilon" not in params \
            and (norm is None or norm == spec.norm):
        params = {**params, "epsilon": epsilon}
    if params:
        spec = spec.with_params(**params)
    crafted = run_attack(spec, classifier if model is None else model, x, y, target=target,
                         batch_size=batch_size, generator=generator)
    norm = spec.norm if norm is None else norm
    if epsilon is None:
        epsilon = spec.epsilon
    x_cpu = as_images(x, name="x", device="cpu")
    x_adv = crafted.x_adv
    if round_to_grid:
        x_adv = to_uint8_grid(x_adv, x_cpu, epsilon=epsilon, norm=norm)
    return evaluate_adversarial(classifier, x_cpu, y, x_adv, target=crafted.targets, epsilon=epsilon, norm=norm,
                                failed=crafted.failed, health=crafted.health, batch_size=batch_size)
