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

Modules, by job: :mod:`~evcsa.attacks.carlini_wagner.optimisation` (Adam per sample, the
stall test, the climb of c, the schedules' constants),
:mod:`~evcsa.attacks.carlini_wagner.problem` (the setup every entry point shares: checks,
inputs, tanh space, the margin and its gradient, the fallback, the ending), and one module
per attack: :mod:`~evcsa.attacks.carlini_wagner.l2`, :mod:`~evcsa.attacks.carlini_wagner.linf`,
:mod:`~evcsa.attacks.carlini_wagner.l0`.
"""

from evcsa.attacks.carlini_wagner.l0 import cw_l0
from evcsa.attacks.carlini_wagner.l2 import cw_l2
from evcsa.attacks.carlini_wagner.linf import cw_linf
from evcsa.attacks.carlini_wagner.optimisation import (ADAM_EPS, FAST_ADAM_EPS, FAST_CHECK_EVERY, FAST_CLIMB,
                                                       FAST_LINF_LEARNING_RATE, FAST_STALL_TOLERANCE,
                                                       LINF_LEARNING_RATE, SCHEDULES, Adam, Climb, Stall)

__all__ = [
    "ADAM_EPS", "FAST_ADAM_EPS", "FAST_CHECK_EVERY", "FAST_CLIMB", "FAST_LINF_LEARNING_RATE",
    "FAST_STALL_TOLERANCE", "LINF_LEARNING_RATE", "SCHEDULES", "Adam", "Climb", "Stall",
    "cw_l0", "cw_l2", "cw_linf",
]
