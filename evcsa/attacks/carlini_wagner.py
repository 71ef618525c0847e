"""Carlini–Wagner attacks for the L2, L∞ and L0 distances.

Source: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE
S&P 2017, § V (objective f₆, change of variables to tanh space), § VI (L2: binary search
over c), § VII (L0: shrink the set of pixels allowed to change) and § VIII (L∞: shrink
the threshold τ); the algorithms follow the authors' reference code
(``nn_robust_attacks``), run batched with every piece of state kept per sample: each
sample has its own constant c, its own Adam moments and step count, its own τ or pixel
set and its own early abort, so its result does not depend on the rest of the batch.
Seed 002 § 2.3 summarises the attack.

Defaults are the MNIST settings of the feature-squeezing evaluation (Xu et al., NDSS
2018; EvadeML-Zoo ``Reproduce_FeatureSqueezing.md``): confidence κ = 10, at most 1000
iterations per optimisation; the rest are the reference code's defaults.

Differences from the reference code, each deliberate:

- The image is x′ = clip(x + (tanh(s + m) − tanh(w_x))/2, 0, 1) with w_x, s the tanh-space
  images of x and of the start, so x′ = x exactly where the modifier m is 0 (the
  reference's tanh round trip moves every pixel by up to 5e-7).
- The objective f is the margin with the label's logit set to −∞ among the others
  (:func:`~evcsa.attacks.cw_margin`; with logits (−1, −2, −3) and label 0 the margin is 1,
  where a one-hot mask gives 0).
- Early abort and success checks are per sample; the success test of an iterate is made
  on that iterate (the reference mixes the pre- and post-update points).
- A sample for which no point with confidence κ was found is returned as the closest
  iterate (in the attack's own distance) that reaches the goal at all — the targeted
  class on top, or any class but y — and as x itself when there is none; never as the
  reference's all-grey zero image. κ-confident points are always preferred, so this only
  turns the reference's failures into low-confidence successes where it can.

The fast schedule (``schedule="fast"``; the default ``"reference"`` is the reference
code's schedule, bit for bit what evcsa ran before). A departure from the reference code,
each part per sample:

- stall stop: every ``FAST_CHECK_EVERY`` (10) steps of one optimisation, a sample whose
  least loss over the window is not below (1 − ``FAST_STALL_TOLERANCE``) × the previous
  window's has stalled: L2 ends that binary-search step (the reference checks every
  ``max_iterations // 10`` steps); L∞ and L0 move to the next constant at once instead of
  running out the ``max_iterations`` steps of the stalled one (the modifier is kept, as
  when the steps run out);
- warm start: each round (L0: a smaller pixel set; L∞: a smaller τ) starts its constant
  search from the last successful constant — the reference's own rule (its ``doit``
  returns the constant), which both schedules keep;
- Adam's ε (L∞): ``FAST_ADAM_EPS`` (1e-14) instead of 1e-8. Why: the L∞ climb starts at
  c = 1e-5, and most of an MNIST digit is background at 0 or 1, where the tanh space is
  saturated (∂x′/∂m ≈ 1e-6); there the gradient of c·max(f + κ, 0) is about 1e-12, far
  below ε = 1e-8, so Adam hardly moves those pixels and the reference waits for c to
  grow — up to 1,000 steps per doubling — before they take part. With ε below the
  gradients Adam steps every pixel at its own scale whatever c is. (Measured on the
  first 10 digits: this alone cut the earlier fast schedule's gradient evaluations by
  47 % and made it stronger, not weaker);
- Adam's step (L∞): ``learning_rate`` defaults to ``FAST_LINF_LEARNING_RATE`` (1e-2, the
  reference's step for L2 and L0) instead of 5e-3;
- capped climb (L0): a round may raise c at most ``FAST_CLIMB`` (10) doublings above
  the last successful constant before the sample stops with its last solution; the
  reference climbs to ``largest_const`` = 2e6 (about 30 doublings) before it may stop.

Its strength and time against the reference at full scale are measured by
``scripts/check_cw_schedule.py`` (and its slow test); docs/performance.md has the figures.
Measured (issue 11, one thread, process CPU seconds; docs/performance.md has the tables):
on 50 MNIST digits, target "next", L0 fast keeps the reference's strength (mean L0 97.9
against 102.2 [76.3, 128.0]) at 0.090 of its time; L∞ fast keeps it too (mean L∞ 0.416
against 0.402 [0.348, 0.455]; least likely 0.393 against 0.384 [0.349, 0.419]) at 0.146
(least likely 0.139) of its time.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evcsa._validation import check_positive_int
from evcsa.attacks._common import check_generator, check_number, input_gradient, prepare_inputs, to_uint8_grid
from evcsa.attacks.gradients import GradientMonitor
from evcsa.defenses.base import Classifier
from evcsa.errors import InvalidParameter

__all__ = ["cw_l0", "cw_l2", "cw_linf"]

_TANH_SCALE = 1.0 - 1e-6
#: Adam's ε in the reference code (TensorFlow 1's default).
ADAM_EPS = 1e-8


def _to_tanh_space(v: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2.0 * v - 1.0) * _TANH_SCALE)


class _Adam:
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
        t = _rows(self.t, ix) + 1
        m = self.beta1 * _rows(self.m, ix) + (1.0 - self.beta1) * grad
        v = self.beta2 * _rows(self.v, ix) + (1.0 - self.beta2) * grad * grad
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


def _rows(t: torch.Tensor, ix: torch.Tensor | None) -> torch.Tensor:
    """The rows ``ix`` of ``t``; ``t`` itself (no copy) when ``ix`` is None (every row)."""
    return t if ix is None else t[ix]


def _put(t: torch.Tensor, ix: torch.Tensor | None, value: torch.Tensor) -> None:
    """``t[ix] = value`` (every row when ``ix`` is None)."""
    if ix is None:
        t.copy_(value)
    else:
        t[ix] = value


def _active(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(positions of the True entries, the same as a row selector: None when all are
    True, so the loops skip gathers and scatters on a full batch)."""
    idx = mask.nonzero().flatten()
    return idx, (None if idx.numel() == mask.numel() else idx)


def _raw_margin(labels: torch.Tensor, targeted: bool):
    """The C&W margin without its floor: max_{j≠t} z_j − z_t (targeted) or
    z_y − max_{j≠y} z_j (untargeted); the attack succeeds with confidence κ at ≤ −κ."""
    def fn(z: torch.Tensor) -> torch.Tensor:
        label_logit = z.gather(1, labels[:, None]).squeeze(1)
        mask = torch.nn.functional.one_hot(labels, z.shape[1]).to(torch.bool)
        other = z.masked_fill(mask, float("-inf")).amax(dim=1)
        return other - label_logit if targeted else label_logit - other
    return fn


class _Problem:
    """The quantities shared by the three C&W attacks for one batch."""

    def __init__(self, clf: Classifier, x: torch.Tensor, labels: torch.Tensor, targeted: bool,
                 confidence: float, monitor: GradientMonitor) -> None:
        self.clf, self.x, self.labels, self.targeted = clf, x, labels, targeted
        self.kappa = confidence
        self.monitor = monitor
        self.w_x = _to_tanh_space(x)
        self.tanh_w_x = torch.tanh(self.w_x)
        self.fallback = x.clone()
        self.fallback_dist = torch.full((x.shape[0],), float("inf"), dtype=torch.float32, device=x.device)

    def evaluate(self, ix: torch.Tensor | None, start_w: torch.Tensor, modifier: torch.Tensor,
                 valid: torch.Tensor | None = None):
        """x′, logits, margin, the margin's input gradient and ∂x′/∂m for the rows ``ix``
        (every row when None)."""
        x = _rows(self.x, ix)
        tw = torch.tanh(start_w + modifier)
        u = x + (tw - _rows(self.tanh_w_x, ix)) / 2.0
        inside = ((u >= 0.0) & (u <= 1.0)).to(x.dtype)
        x_adv = u.clamp(0.0, 1.0)
        dxdm = inside * (1.0 - tw * tw) / 2.0
        if valid is not None:
            x_adv = torch.where(valid, x_adv, x)
            dxdm = dxdm * valid.to(x.dtype)
        grad, logits, margin = input_gradient(self.clf, x_adv, _raw_margin(_rows(self.labels, ix), self.targeted),
                                              monitor=self.monitor, index=ix)
        return x_adv, logits, margin, grad, dxdm

    def hits(self, ix: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        """The goal reached at all: top class = t (targeted) or ≠ y (untargeted)."""
        pred = logits.argmax(dim=1)
        labels = _rows(self.labels, ix)
        return pred == labels if self.targeted else pred != labels

    def succeeded(self, ix: torch.Tensor | None, logits: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        """The goal reached with confidence κ (margin ≤ −κ)."""
        return (margin + self.kappa <= 0.0) & self.hits(ix, logits)

    def track_fallback(self, idx: torch.Tensor, ix: torch.Tensor | None, x_adv: torch.Tensor,
                       logits: torch.Tensor, dist: torch.Tensor) -> None:
        """Keep, per sample, the closest iterate that reaches the goal without the
        confidence margin: returned only when no κ-confident point is ever found.
        ``idx`` are the rows' positions, ``ix`` the same as a selector (None: all)."""
        better = self.hits(ix, logits) & (dist < _rows(self.fallback_dist, ix))
        if bool(better.any()):
            bi = idx[better]
            self.fallback_dist[bi] = dist[better]
            self.fallback[bi] = x_adv[better]

    def result(self, found: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """``best`` where a κ-confident point was found, else the fallback, else x."""
        use_fallback = ~found & torch.isfinite(self.fallback_dist)
        out = torch.where(_view(found, best), best, self.x)
        return torch.where(_view(use_fallback, best), self.fallback, out)

    def hinge_grad(self, margin: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """∂ max(margin + κ, 0) / ∂x′."""
        active = (margin + self.kappa > 0.0).to(grad.dtype).view(-1, *([1] * (grad.dim() - 1)))
        return grad * active


def _setup(model: Any, x: Any, y: Any, target: Any, confidence: float, generator: Any,
           monitor: GradientMonitor | None) -> tuple[_Problem, bool]:
    check_generator(generator)
    confidence = check_number(confidence, "confidence", minimum=0.0)
    clf, x, y, target = prepare_inputs(model, x, y, target)
    own = monitor is None
    monitor = GradientMonitor(x.shape[0]) if own else monitor
    labels = y if target is None else target
    return _Problem(clf, x, labels, target is not None, confidence, monitor), own


def _check_schedule(learning_rate: Any, max_iterations: Any, initial_const: Any, largest_const: Any,
                    const_factor: Any) -> tuple[float, int, float, float, float]:
    """Check the Adam step and the c schedule of the L∞ and L0 attacks (c grows by
    ``const_factor`` from ``initial_const`` until ``largest_const``); raises InvalidParameter."""
    return (check_number(learning_rate, "learning_rate", minimum=0.0, open_low=True),
            check_positive_int(max_iterations, "max_iterations"),
            check_number(initial_const, "initial_const", minimum=0.0, open_low=True),
            check_number(largest_const, "largest_const", minimum=0.0, open_low=True),
            check_number(const_factor, "const_factor", minimum=1.0, open_low=True))


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
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


def _check_schedule_name(schedule: Any) -> str:
    if schedule not in SCHEDULES:
        raise InvalidParameter(f"expected schedule in {SCHEDULES}, got {schedule!r}", got=schedule)
    return schedule


class _Stall:
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
        window = torch.minimum(_rows(self.window, ix), loss.to(torch.float32))
        previous = _rows(self.previous, ix)
        stalled = check & (window > previous * (1.0 - FAST_STALL_TOLERANCE))
        previous = torch.where(check, window, previous)
        window = torch.where(check, torch.full_like(window, float("inf")), window)
        if ix is None:
            self.window, self.previous = window, previous
        else:
            self.window[idx] = window
            self.previous[idx] = previous
        return stalled


def _l0_loss(diff: torch.Tensor, c: torch.Tensor, margin: torch.Tensor, kappa: float) -> torch.Tensor:
    """The L0 attack's per-sample objective ‖x′ − x‖₂² + c·max(f + κ, 0) (its stall test)."""
    return diff.flatten(1).pow(2).sum(dim=1) + c * torch.clamp(margin + kappa, min=0.0)


class _Climb:
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
        self.stall = _Stall(b, device) if fast else None
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
        step = _rows(self.step, gix) + 1
        over = step >= self.max_iterations
        if self.stall is not None:
            over = over | self.stall.update(gi, gix, loss, step % FAST_CHECK_EVERY == 0)
        _put(self.step, gix, step)
        if bool(over.any()):
            oi = gi[over]
            self.const[oi] = self.const[oi] * self.factor
            self.step[oi] = 0
            if self.stall is not None:
                self.stall.restart(oi)
            self.done[oi] = self.finished(oi)


def cw_l2(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, binary_search_steps: int = 9, max_iterations: int = 1000,
          abort_early: bool = True, initial_const: float = 1e-3, round_to_grid: bool = False,
          schedule: str = "reference", generator: torch.Generator | None = None,
          monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L2 attack (Carlini & Wagner, S&P 2017, § VI).

    Minimises ‖x′ − x‖₂² + c·max(f(x′) + κ, 0) over tanh-space modifiers with Adam, for
    ``binary_search_steps`` values of c per sample (start ``initial_const``; ×10 until a
    first success, then bisection), and returns the adversarial point of least L2 distance
    found (success: margin ≤ −κ and the predicted class right). From the 10th binary
    search step on, the last step reruns with c at its upper bound, as the reference does.
    Early abort per sample: every ``max_iterations // 10`` iterations, a sample whose loss
    has not dropped below 0.9999× its value at the previous check stops for this c.
    ``schedule="fast"`` checks every 10 iterations instead (module docstring).

    Args:
        model: Classifier (gradients via ``surrogate_logits``) or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] (the reference setting is targeted: next or least
            likely) or None (untargeted: any class but y).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default 1e-2).
        binary_search_steps: values of c tried (default 9).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: stop a sample's optimisation when it stalls (default True).
        initial_const: the first c (default 1e-3).
        round_to_grid: round x′ to the uint8 grid (no ε here: the attack is unbounded).
        schedule: "reference" (default: the reference code's schedule) or "fast" (the
            stall stop of the module docstring, a departure from the reference).
        generator: unused (deterministic); accepted for a uniform signature.
        monitor: receives the gradient health; without one, flagged samples warn.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    learning_rate = check_number(learning_rate, "learning_rate", minimum=0.0, open_low=True)
    binary_search_steps = check_positive_int(binary_search_steps, "binary_search_steps")
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    initial_const = check_number(initial_const, "initial_const", minimum=0.0, open_low=True)
    fast = _check_schedule_name(schedule) == "fast"
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b = x.shape[0]
    dev = x.device
    const = torch.full((b,), initial_const, dtype=torch.float32, device=dev)
    lower = torch.zeros(b, dtype=torch.float32, device=dev)
    upper = torch.full((b,), 1e10, dtype=torch.float32, device=dev)
    best_l2 = torch.full((b,), float("inf"), dtype=torch.float32, device=dev)
    best = x.clone()
    repeat = binary_search_steps >= 10
    check_every = max(1, max_iterations // 10)
    stall = _Stall(b, dev) if fast else None
    fast_every = min(FAST_CHECK_EVERY, check_every)
    for search in range(binary_search_steps):
        if repeat and search == binary_search_steps - 1:
            const = upper.clone()
        modifier = torch.zeros_like(x)
        adam = _Adam(x, learning_rate)
        prev = torch.full((b,), float("inf"), dtype=torch.float32, device=dev)
        active = torch.ones(b, dtype=torch.bool, device=dev)
        hit_this = torch.zeros(b, dtype=torch.bool, device=dev)
        if stall is not None:
            stall.restart(None)
        for it in range(max_iterations):
            idx, ix = _active(active)
            if idx.numel() == 0:
                break
            x_adv, logits, margin, grad, dxdm = p.evaluate(ix, _rows(p.w_x, ix), _rows(modifier, ix))
            diff = x_adv - _rows(x, ix)
            l2 = diff.flatten(1).pow(2).sum(dim=1)
            c = _rows(const, ix)
            loss = l2 + c * torch.clamp(margin + p.kappa, min=0.0)
            ok = p.succeeded(ix, logits, margin)
            p.track_fallback(idx, ix, x_adv, logits, l2)
            hit_this[idx[ok]] = True
            better = ok & (l2 < _rows(best_l2, ix))
            if bool(better.any()):
                bi = idx[better]
                best_l2[bi] = l2[better]
                best[bi] = x_adv[better]
            keep = None
            if abort_early and stall is not None:
                if it % fast_every == 0:
                    check = torch.full_like(ok, it > 0)
                else:
                    check = torch.zeros_like(ok)
                keep = ~stall.update(idx, ix, loss, check)
            elif abort_early and it % check_every == 0:
                prev_rows = _rows(prev, ix)
                keep = ~(loss > prev_rows * 0.9999)
                _put(prev, ix, torch.where(keep, loss, prev_rows))
            if keep is not None and not bool(keep.all()):
                active[idx[~keep]] = False
                if not bool(keep.any()):
                    continue
                ki = idx[keep]
                grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
                grad_m = grad_x * dxdm
                modifier[ki] = adam.step(modifier[ki], grad_m[keep], ki)
                continue
            grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
            grad_m = grad_x * dxdm
            _put(modifier, ix, adam.step(_rows(modifier, ix), grad_m, ix))
        # the binary search over c, per sample (reference: 1e9 marks "no upper bound yet")
        upper = torch.where(hit_this, torch.minimum(upper, const), upper)
        lower = torch.where(hit_this, lower, torch.maximum(lower, const))
        bounded = upper < 1e9
        const = torch.where(bounded, (lower + upper) / 2.0, torch.where(hit_this, const, const * 10.0))
    best = p.result(torch.isfinite(best_l2), best)
    if round_to_grid:
        best = to_uint8_grid(best)
    if own:
        p.monitor.health().warn("cw_l2")
    return best


def cw_linf(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
            learning_rate: float | None = None, max_iterations: int = 1000, abort_early: bool = True,
            initial_const: float = 1e-5, largest_const: float = 20.0, const_factor: float = 2.0,
            decrease_factor: float = 0.9, reduce_const: bool = False, round_to_grid: bool = False,
            schedule: str = "reference", generator: torch.Generator | None = None,
            monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L∞ attack (Carlini & Wagner, S&P 2017, § VIII).

    For a threshold τ (start 1), minimise c·max(f(x′) + κ, 0) + Σᵢ max(|x′ᵢ − xᵢ| − τ, 0)
    with Adam from the last solution; an optimisation succeeds when the loss falls below
    1e-4·c with the class right. On success τ ← min(τ, ‖x′ − x‖∞)·``decrease_factor`` and
    the search goes on from x′; after ``max_iterations`` steps without success c doubles
    (``const_factor``) and the optimisation continues; once c reaches ``largest_const``
    (or τ falls below 1/256) the sample stops and its last success is returned. Each
    sample runs this loop on its own.

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] or None (untargeted).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default: 5e-3, the reference's; 1e-2 under the fast
            schedule).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: accept the first successful iterate (default True; False runs all
            ``max_iterations`` steps of each c as the reference's ``step == CONST-1``
            test effectively does).
        initial_const, largest_const, const_factor: c starts at 1e-5, doubles, gives up
            at 20 (the reference values).
        decrease_factor: τ's shrink factor in (0, 1) (default 0.9).
        reduce_const: halve c after each success (default False).
        round_to_grid: round x′ to the uint8 grid.
        schedule: "reference" (default: the reference code's schedule) or "fast" (stall
            stop, Adam's ε 1e-14 and step 1e-2; a departure from the reference: module
            docstring).
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    fast = _check_schedule_name(schedule) == "fast"
    if learning_rate is None:
        learning_rate = FAST_LINF_LEARNING_RATE if fast else LINF_LEARNING_RATE
    learning_rate, max_iterations, initial_const, largest_const, const_factor = _check_schedule(
        learning_rate, max_iterations, initial_const, largest_const, const_factor)
    decrease_factor = check_number(decrease_factor, "decrease_factor", minimum=0.0, maximum=1.0, open_low=True)
    if decrease_factor == 1.0:
        raise InvalidParameter("expected decrease_factor < 1 (τ must shrink after each success), got 1.0")
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b = x.shape[0]
    dev = x.device
    tau = torch.ones(b, dtype=torch.float32, device=dev)
    climb = _Climb(b, dev, max_iterations, initial_const, largest_const, const_factor, fast, cap=False)
    const = climb.const
    prev = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = _Adam(x, learning_rate, eps=FAST_ADAM_EPS if fast else ADAM_EPS)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    while True:
        idx, ix = _active(~climb.done)
        if idx.numel() == 0:
            break
        x_adv, logits, margin, grad, dxdm = p.evaluate(ix, _rows(start_w, ix), _rows(modifier, ix))
        c = _rows(const, ix).to(torch.float32)
        diff = x_adv - _rows(x, ix)
        adiff = diff.abs()
        excess = adiff - _view(_rows(tau, ix), diff)
        loss = c * torch.clamp(margin + p.kappa, min=0.0) + excess.clamp(min=0.0).flatten(1).sum(dim=1)
        p.track_fallback(idx, ix, x_adv, logits, adiff.flatten(1).amax(dim=1))
        ok = p.succeeded(ix, logits, margin) & (loss < 1e-4 * c)
        if not abort_early:
            ok = ok & (_rows(climb.step, ix) == max_iterations - 1)
        any_ok = bool(ok.any())
        if any_ok:
            oi = idx[ok]
            found = x_adv[ok]
            prev[oi] = found
            succeeded[oi] = True
            actual = (found - x[oi]).abs().flatten(1).amax(dim=1)
            tau[oi] = torch.minimum(tau[oi], actual) * decrease_factor
            climb.succeeded(oi)
            if reduce_const:
                const[oi] = const[oi] / 2.0
            start_w[oi] = _to_tanh_space(found)
            modifier[oi] = 0.0
            adam.reset(oi)
            climb.done[oi] = (tau[oi] <= 1.0 / 256.0) | climb.finished(oi)
        grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + diff.sign() * (excess > 0).to(diff.dtype)
        grad_m = grad_x * dxdm
        if not any_ok:
            _put(modifier, ix, adam.step(_rows(modifier, ix), grad_m, ix))
            climb.stepped(idx, ix, loss)
            continue
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            modifier[gi] = adam.step(modifier[gi], grad_m[go], gi)
            climb.stepped(gi, gi, loss[go])
    prev = p.result(succeeded, prev)
    if round_to_grid:
        prev = to_uint8_grid(prev)
    if own:
        p.monitor.health().warn("cw_linf")
    return prev


def cw_l0(model: Any, x: Any, y: Any, *, target: Any = None, confidence: float = 10.0,
          learning_rate: float = 1e-2, max_iterations: int = 1000, abort_early: bool = True,
          initial_const: float = 1e-3, largest_const: float = 2e6, const_factor: float = 2.0,
          reduce_const: bool = False, independent_channels: bool = False, round_to_grid: bool = False,
          schedule: str = "reference", generator: torch.Generator | None = None,
          monitor: GradientMonitor | None = None) -> torch.Tensor:
    """Carlini–Wagner L0 attack (Carlini & Wagner, S&P 2017, § VII).

    Repeatedly solve the L2 problem ‖x′ − x‖₂² + c·max(f(x′) + κ, 0) restricted to a set
    of pixels allowed to change (start: all), warm-started from the last solution; after
    each success, freeze the pixels with the least total change |Σ_c δ|·Σ_c|∂loss/∂m|:
    in increasing order, up to ⌈0.3·√(changed pixels)⌉ of them, stopping after the first
    whose total change exceeds 0.01. When an optimisation fails (c reached
    ``largest_const`` by doubling after every ``max_iterations`` steps), the last
    solution is returned. A pixel's channels change together unless
    ``independent_channels``.

    Args:
        model: Classifier or nn.Module.
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].
        target: target labels [B] or None (untargeted).
        confidence: κ ≥ 0 (default 10).
        learning_rate: Adam's step (default 1e-2).
        max_iterations: Adam steps per value of c (default 1000).
        abort_early: accept the first successful iterate (default True).
        initial_const, largest_const, const_factor: c starts at 1e-3, doubles, gives up
            at 2e6 (the reference values).
        reduce_const: halve c after each success (default False).
        independent_channels: freeze channels rather than pixels.
        round_to_grid: round x′ to the uint8 grid.
        schedule: "reference" (default: the reference code's schedule) or "fast" (stall
            stop and capped climb of c, a departure from the reference: module docstring).
        generator: unused; accepted for a uniform signature.
        monitor: receives the gradient health.

    Returns:
        float32 [B, C, H, W] in [0, 1]; where no κ-confident point was found, the closest
        iterate that reaches the goal without the margin, else x itself.

    Raises:
        InvalidParameter: malformed inputs or parameters.
    """
    learning_rate, max_iterations, initial_const, largest_const, const_factor = _check_schedule(
        learning_rate, max_iterations, initial_const, largest_const, const_factor)
    fast = _check_schedule_name(schedule) == "fast"
    p, own = _setup(model, x, y, target, confidence, generator, monitor)
    x = p.x
    b, ch = x.shape[0], x.shape[1]
    dev = x.device
    mask_shape = (b, ch if independent_channels else 1, *x.shape[2:])
    valid = torch.ones(mask_shape, dtype=torch.bool, device=dev)
    climb = _Climb(b, dev, max_iterations, initial_const, largest_const, const_factor, fast, cap=True)
    const = climb.const
    solution = x.clone()
    start_w = p.w_x.clone()
    modifier = torch.zeros_like(x)
    adam = _Adam(x, learning_rate)
    succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
    while True:
        idx, ix = _active(~climb.done)
        if idx.numel() == 0:
            break
        x_adv, logits, margin, grad, dxdm = p.evaluate(ix, _rows(start_w, ix), _rows(modifier, ix),
                                                       valid=_rows(valid, ix))
        c = _rows(const, ix).to(torch.float32)
        diff = x_adv - _rows(x, ix)
        ok = p.succeeded(ix, logits, margin)
        p.track_fallback(idx, ix, x_adv, logits,
                         (diff.abs() > 1e-6).any(dim=1).flatten(1).sum(dim=1).to(torch.float32))
        if not abort_early:
            ok = ok & (_rows(climb.step, ix) == max_iterations - 1)
        grad_x = _view(c, grad) * p.hinge_grad(margin, grad) + 2.0 * diff
        grad_m = grad_x * dxdm
        loss = _l0_loss(diff, c, margin, p.kappa) if fast else None
        any_ok = bool(ok.any())
        if any_ok:
            for j in ok.nonzero().flatten().tolist():
                i = int(idx[j])
                if not bool(valid[i].any()):
                    # nothing may change and it is adversarial already: x itself
                    solution[i] = x[i]
                    succeeded[i] = True
                    climb.done[i] = True
                    continue
                delta = diff[j]
                changed = int(((delta.abs() >= 1e-4).any(dim=0)).sum())
                if independent_channels:
                    total = (delta.abs() * grad_m[j].abs()).flatten()
                else:
                    total = (delta.sum(dim=0).abs() * grad_m[j].abs().sum(dim=0)).flatten()
                v = valid[i].flatten()
                order = torch.argsort(total, stable=True)
                cand = order[v[order]]
                limit = max(1, math.ceil(0.3 * math.sqrt(changed)))
                big = (total[cand] > 0.01).nonzero().flatten()
                count = min(limit, int(big[0]) + 1 if big.numel() else cand.numel(), cand.numel())
                v[cand[:count]] = False
                valid[i] = v.view(valid[i].shape)
                solution[i] = x_adv[j]
                succeeded[i] = True
                start_w[i] = _to_tanh_space(x_adv[j])
                modifier[i] = 0.0
                one = idx[j:j + 1]
                adam.reset(one)
                climb.succeeded(one)
                if reduce_const:
                    const[i] = const[i] / 2.0
                climb.done[one] = climb.finished(one)
        if not any_ok:
            _put(modifier, ix, adam.step(_rows(modifier, ix), grad_m, ix))
            climb.stepped(idx, ix, loss)
            continue
        go = ~ok
        if bool(go.any()):
            gi = idx[go]
            modifier[gi] = adam.step(modifier[gi], grad_m[go], gi)
            climb.stepped(gi, gi, None if loss is None else loss[go])
    solution = p.result(succeeded, solution)
    if round_to_grid:
        solution = to_uint8_grid(solution)
    if own:
        p.monitor.health().warn("cw_l0")
    return solution
