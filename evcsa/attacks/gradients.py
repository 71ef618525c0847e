"""Gradient sanity checks: zero, non-finite and missing gradients are flagged, never read
as robustness.

A gradient attack that meets a zero gradient (rounding, a median, a saturated softmax) or
a NaN silently stops moving, and the defense looks strong (Athalye et al.,
"Obfuscated Gradients Give a False Sense of Security", ICML 2018; AutoAttack's
``checks.py`` warns about the same symptoms). Every attack in :mod:`evcsa.attacks`
records the health of each gradient it takes in a :class:`GradientMonitor`; the result is
a :class:`GradientHealth` record that evaluations and adversary reports carry.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import attrs
import numpy as np
import torch

from evcsa._validation import check_positive_int
from evcsa.errors import InvalidParameter

__all__ = ["GradientHealth", "GradientMonitor", "GradientWarning"]


class GradientWarning(UserWarning):
    """An attack met zero, non-finite or missing gradients: its result says nothing about
    robustness for the flagged samples (see :class:`GradientHealth`)."""


def _bool_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=bool).reshape(-1)


def _int_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.int64).reshape(-1)


@attrs.frozen(kw_only=True, eq=False)
class GradientHealth:
    """The health of the input gradients an attack took, per sample.

    Attributes:
        evaluations: int64 [B], gradients taken for each sample.
        zero_evaluations: int64 [B], of which were identically zero (every entry 0.0).
        nonfinite_evaluations: int64 [B], of which had a NaN or ±inf entry (those entries
            were replaced by 0 for the step).
        missing: bool [B], the classifier's output did not depend differentiably on the
            input (no autograd graph) for at least one evaluation.

    A sample is *flagged* (:attr:`flagged`) when every gradient it got was zero, when any
    was non-finite, or when one was missing. An occasional zero gradient (a saturated
    softmax on one step) is counted but not flagged.
    """

    evaluations: np.ndarray = attrs.field(converter=_int_array)
    zero_evaluations: np.ndarray = attrs.field(converter=_int_array)
    nonfinite_evaluations: np.ndarray = attrs.field(converter=_int_array)
    missing: np.ndarray = attrs.field(converter=_bool_array)

    def __attrs_post_init__(self) -> None:
        n = self.evaluations.shape[0]
        for name in ("zero_evaluations", "nonfinite_evaluations", "missing"):
            if getattr(self, name).shape[0] != n:
                raise InvalidParameter(f"expected {name} of length {n}, got {getattr(self, name).shape[0]}")

    @classmethod
    def clean(cls, n: int) -> GradientHealth:
        """The record of ``n`` samples for which no gradient was taken (nothing flagged)."""
        n = check_positive_int(n, "n", minimum=0)
        zeros = np.zeros(n, dtype=np.int64)
        return cls(evaluations=zeros, zero_evaluations=zeros, nonfinite_evaluations=zeros,
                   missing=np.zeros(n, dtype=bool))

    @classmethod
    def concat(cls, parts: Iterable[GradientHealth]) -> GradientHealth:
        """One record for the samples of ``parts`` in order (batches of one run)."""
        parts = list(parts)
        if not parts:
            return cls.clean(0)
        return cls(evaluations=np.concatenate([p.evaluations for p in parts]),
                   zero_evaluations=np.concatenate([p.zero_evaluations for p in parts]),
                   nonfinite_evaluations=np.concatenate([p.nonfinite_evaluations for p in parts]),
                   missing=np.concatenate([p.missing for p in parts]))

    def select(self, index: object) -> GradientHealth:
        """The record restricted to the samples ``index`` (numpy-style indexing)."""
        idx = np.asarray(index)
        return GradientHealth(evaluations=self.evaluations[idx], zero_evaluations=self.zero_evaluations[idx],
                              nonfinite_evaluations=self.nonfinite_evaluations[idx],
                              missing=self.missing[idx])

    def __len__(self) -> int:
        return int(self.evaluations.shape[0])

    @property
    def all_zero(self) -> np.ndarray:
        """bool [B]: gradients were taken and every one was identically zero."""
        return (self.evaluations > 0) & (self.zero_evaluations == self.evaluations)

    @property
    def nonfinite(self) -> np.ndarray:
        """bool [B]: some gradient had a NaN or infinite entry."""
        return self.nonfinite_evaluations > 0

    @property
    def flagged(self) -> np.ndarray:
        """bool [B]: the attack's result for this sample says nothing about robustness."""
        return self.all_zero | self.nonfinite | self.missing

    @property
    def ok(self) -> bool:
        """Whether no sample is flagged."""
        return not bool(self.flagged.any())

    def summary(self) -> str:
        """One line: how many samples are flagged and why."""
        n = len(self)
        if self.ok:
            return f"gradients healthy for all {n} samples"
        parts = []
        if self.all_zero.any():
            parts.append(f"{int(self.all_zero.sum())} with only zero gradients")
        if self.nonfinite.any():
            parts.append(f"{int(self.nonfinite.sum())} with NaN/inf gradients")
        if self.missing.any():
            parts.append(f"{int(self.missing.sum())} with no gradient path")
        return f"{int(self.flagged.sum())} of {n} samples flagged: " + ", ".join(parts)

    def warn(self, what: str = "attack", stacklevel: int = 3) -> None:
        """Issue a :class:`GradientWarning` if any sample is flagged."""
        if not self.ok:
            warnings.warn(f"{what}: {self.summary()}; the result does not measure robustness for them",
                          GradientWarning, stacklevel=stacklevel)


class GradientMonitor:
    """Collects the health of the gradients an attack takes on a batch of ``batch_size``
    samples; :meth:`health` gives the :class:`GradientHealth` record.

    Pass one to any attack as ``monitor=`` (the attack then does not warn; reading the
    record is the caller's job). Without one, an attack warns with
    :class:`GradientWarning` when a sample is flagged.

    Args:
        batch_size: B, the number of samples of the attacked batch.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self._evals = torch.zeros(self.batch_size, dtype=torch.int64)
        self._zero = torch.zeros(self.batch_size, dtype=torch.int64)
        self._nonfinite = torch.zeros(self.batch_size, dtype=torch.int64)
        self._missing = torch.zeros(self.batch_size, dtype=torch.bool)

    def observe(self, grad: torch.Tensor, *, index: torch.Tensor | None = None, missing: bool = False,
                nonfinite: torch.Tensor | None = None, zero: torch.Tensor | None = None) -> None:
        """Record one gradient evaluation for the samples ``index`` (all when None).

        Args:
            grad: [b, ...] the gradient (after non-finite entries were zeroed).
            index: int64 [b] positions in the batch, or None for 0..B−1.
            missing: the classifier gave no gradient path.
            nonfinite: bool [b], samples whose raw gradient had NaN/inf entries.
            zero: bool [b], samples whose ``grad`` is identically zero, when the caller
                computed it already (:func:`evcsa.attacks._common.gradient_health`); else
                computed here.

        Raises:
            InvalidParameter: ``index`` and ``grad`` disagree on the number of samples.
        """
        full = index is None
        if index is not None and index.numel() != grad.shape[0]:
            raise InvalidParameter(f"expected {index.numel()} gradients for the monitored samples, "
                                   f"got {grad.shape[0]}")
        if full and grad.shape[0] != self.batch_size:
            raise InvalidParameter(f"expected {self.batch_size} gradients for the monitored samples, "
                                   f"got {grad.shape[0]}")
        if zero is None:
            zero = (grad.detach().flatten(1) == 0).all(dim=1)
        zero = zero.detach().to("cpu", torch.int64)
        if full:  # every sample: plain adds, no index tensors
            self._evals += 1
            self._zero += zero
            if nonfinite is not None:
                self._nonfinite += nonfinite.detach().to("cpu", torch.int64)
            if missing:
                self._missing[:] = True
            return
        assert index is not None  # full is False exactly when index is given
        idx = index.detach().to("cpu", torch.int64)
        self._evals.index_add_(0, idx, torch.ones_like(idx))
        self._zero.index_add_(0, idx, zero)
        if nonfinite is not None:
            self._nonfinite.index_add_(0, idx, nonfinite.detach().to("cpu", torch.int64))
        if missing:
            self._missing[idx] = True

    def health(self) -> GradientHealth:
        """The record so far."""
        return GradientHealth(evaluations=self._evals.numpy().copy(), zero_evaluations=self._zero.numpy().copy(),
                              nonfinite_evaluations=self._nonfinite.numpy().copy(),
                              missing=self._missing.numpy().copy())
