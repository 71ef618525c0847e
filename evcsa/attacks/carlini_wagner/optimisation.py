"""The optimiser and the schedule of c shared by the Carlini–Wagner attacks
(:mod:`evcsa.attacks.carlini_wagner`): TensorFlow 1's Adam with a step count per sample,
the row helpers the batched loops use, the fast schedule's stall test and the climb of c
of the L∞ and L0 attacks.

Source: Carlini & Wagner, S&P 2017, § VI–VIII, and their reference code
(``nn_robust_attacks``); the fast schedule is evcsa's (the package docstring, "The fast
schedule").
"""

from __future__ import annotations

from typing import Any

import torch

from evcsa.errors import InvalidParameter

TANH_SCALE = 1.0 - 1e-6
#: Adam's ε in the reference code (TensorFlow 1's default).
ADAM_EPS = 1e-8


def to_tanh_space(v: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2.0 * v - 1.0) * TANH_SCALE)


class Adam:
    """Adam (Kingma & Ba, 2015; TensorFlow 1's update rule) with a step count per sample,
    so samples that restart their optimisation at different times stay independent."""

    def __init__(self, like: torch.Tensor, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = ADAM_EPS) -> None:
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(like.shape[0], dtype=torch.int64, device=like.device)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def reset(self, idx: torch.Tensor) -> None:
        self.m[idx] = 0.0
        self.v[idx] = 0.0
        self.t[idx] = 0

    def step(self, param: torch.Tensor, grad: torch.Tensor, ix: torch.Tensor | None) -> torch.Tensor:
        """The updated ``param`` (the rows ``ix`` of the optimised tensor, every row when
        None) after one step."""
        t = rows(self.t, ix) + 1
        m = self.beta1 * rows(self.m, ix) + (1.0 - self.beta1) * grad
        v = self.beta2 * rows(self.v, ix) + (1.0 - self.beta2) * grad * grad
        if ix is None:
            self.t, self.m, self.v = t, m, v
        else:
            self.t[ix] = t
            self.m[ix] = m
            self.v[ix] = v
        tf = t.to(param.dtype)
        lr_t = self.lr * torch.sqrt(1.0 - self.beta2 ** tf) / (1.0 - self.beta1 ** tf)
        lr_t = lr_t.view(-1, *([1] * (param.dim() - 1)))
        return param - lr_t * m / (torch.sqrt(v) + self.eps)


def rows(t: torch.Tensor, ix: torch.Tensor | None) -> torch.Tensor:
    """The rows ``ix`` of ``t``; ``t`` itself (no copy) when ``ix`` is None (every row)."""
    return t if ix is None else t[ix]


def put(t: torch.Tensor, ix: torch.Tensor | None, value: torch.Tensor) -> None:
    """``t[ix] = value`` (every row when ``ix`` is None)."""
    if ix is None:
        t.copy_(value)
    else:
        t[ix] = value


def active_rows(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(positions of the True entries, the same as a row selector: None when all are
    True, so the loops skip gathers and scatters on a full batch)."""
    idx = mask.nonzero().flatten()
    return idx, (None if idx.numel() == mask.numel() else idx)



def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


#: The schedules of the three attacks (see the module docstring, "The fast schedule").
SCHEDULES = ("reference", "fast")
#: Fast schedule: steps between two stall checks of a sample's optimisation.
FAST_CHECK_EVERY = 10
#: Fast schedule: a window's least loss must fall below (1 − this) × the previous
#: window's to count as progress.
FAST_STALL_TOLERANCE = 1e-3
#: Fast schedule (L∞): Adam's ε (the reference's is ``ADAM_EPS``; module docstring).
FAST_ADAM_EPS = 1e-14
#: Fast schedule (L∞): Adam's step when ``learning_rate`` is not given (reference: 5e-3).
FAST_LINF_LEARNING_RATE = 1e-2
#: Reference schedule (L∞): Adam's step when ``learning_rate`` is not given.
LINF_LEARNING_RATE = 5e-3
#: Fast schedule (L0): doublings of c allowed in a round beyond the last successful
#: constant (the reference climbs up to ``largest_const`` = 2e6 before it may stop).
FAST_CLIMB = 10


def check_schedule_name(schedule: Any) -> str:
    if schedule not in SCHEDULES:
        raise InvalidParameter(f"expected schedule in {SCHEDULES}, got {schedule!r}", got=schedule)
    return schedule



class Stall:
    """Per-sample stall detection of the fast schedule: every ``FAST_CHECK_EVERY`` steps
    of one optimisation, a sample whose least loss over the last window is not below
    (1 − ``FAST_STALL_TOLERANCE``) × the previous window's least loss has stalled."""

    def __init__(self, b: int, device: torch.device) -> None:
        self.window = torch.full((b,), float("inf"), dtype=torch.float32, device=device)
        self.previous = torch.full((b,), float("inf"), dtype=torch.float32, device=device)

    def restart(self, idx: torch.Tensor | None) -> None:
        """Forget the history of samples ``idx`` (all when None): a new optimisation."""
        if idx is None:
            self.window.fill_(float("inf"))
            self.previous.fill_(float("inf"))
        else:
            self.window[idx] = float("inf")
            self.previous[idx] = float("inf")

    def update(self, idx: torch.Tensor, ix: torch.Tensor | None, loss: torch.Tensor,
               check: torch.Tensor) -> torch.Tensor:
        """Record ``loss`` of rows ``idx`` (selector ``ix``); where ``check`` (bool, per
        row) close the window. Returns bool per row: stalled."""
        window = torch.minimum(rows(self.window, ix), loss.to(torch.float32))
        previous = rows(self.previous, ix)
        stalled = check & (window > previous * (1.0 - FAST_STALL_TOLERANCE))
        previous = torch.where(check, window, previous)
        window = torch.where(check, torch.full_like(window, float("inf")), window)
        if ix is None:
            self.window, self.previous = window, previous
        else:
            self.window[idx] = window
            self.previous[idx] = previous
        return stalled



class Climb:
    """The schedule of c in the L∞ and L0 attacks: after ``max_iterations`` steps without
    success (fast schedule: or a stall) c grows by ``const_factor``; a sample is done once
    c reaches ``largest_const`` (fast schedule: or exceeds its last successful constant by
    more than ``const_factor ** FAST_CLIMB``, when ``cap``). After a success the next
    round starts at the successful constant (both schedules)."""

    def __init__(self, b: int, device: torch.device, max_iterations: int, initial_const: float,
                 largest_const: float, const_factor: float, fast: bool, cap: bool) -> None:
        self.const = torch.full((b,), initial_const, dtype=torch.float64, device=device)
        self.step = torch.zeros(b, dtype=torch.int64, device=device)
        self.done = self.const >= largest_const
        self.max_iterations, self.largest, self.factor = max_iterations, largest_const, const_factor
        self.stall = Stall(b, device) if fast else None
        self.last_ok = torch.full((b,), float("inf"), dtype=torch.float64, device=device)
        self.cap = const_factor ** FAST_CLIMB if fast and cap else float("inf")

    def succeeded(self, oi: torch.Tensor) -> None:
        """Samples ``oi`` succeeded at their current c: a new optimisation starts there."""
        self.last_ok[oi] = self.const[oi]
        self.step[oi] = 0
        if self.stall is not None:
            self.stall.restart(oi)

    def finished(self, oi: torch.Tensor) -> torch.Tensor:
        """bool per sample of ``oi``: done at its current c."""
        out = self.const[oi] >= self.largest
        if self.cap != float("inf"):
            out = out | (self.const[oi] > self.last_ok[oi] * self.cap)
        return out

    def stepped(self, gi: torch.Tensor, gix: torch.Tensor | None, loss: torch.Tensor | None) -> None:
        """Samples ``gi`` (selector ``gix``) took one step from a point of loss ``loss``
        (read by the fast schedule only)."""
        step = rows(self.step, gix) + 1
        over = step >= self.max_iterations
        if self.stall is not None:
            assert loss is not None, "the fast schedule's callers pass the loss"  # internal invariant
            over = over | self.stall.update(gi, gix, loss, step % FAST_CHECK_EVERY == 0)
        put(self.step, gix, step)
        if bool(over.any()):
            oi = gi[over]
            self.const[oi] = self.const[oi] * self.factor
            self.step[oi] = 0
            if self.stall is not None:
                self.stall.restart(oi)
            self.done[oi] = self.finished(oi)
