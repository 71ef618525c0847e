"""APGD-EOT vs BPDA+EOT against randomized median 2×2 (δ 0.5) at equal model evaluations.

    OMP_NUM_THREADS=1 python scripts/compare_apgd_bpda.py [--digits 100] [--draws 200]

Setting: the demo's (reference CNN, X_D = the first 100 correctly classified test digits,
ε = 0.3 L∞). Both attacks run through the whitebox twin (the adversary's own keys), BPDA
for the median, EOT over the noise:

- BPDA+EOT with the demo's settings: 40 signed steps of 2.5ε/40, 10 EOT draws a step
  (400 gradient evaluations per digit, plus 10 draws to pick among restarts);
- APGD-CE and APGD-DLR (Croce & Hein 2020) with 40 steps × 10 EOT draws (400 + 10 for
  the start: equal evaluations), and AutoAttack's randomized setting 20 steps × 20 draws.

Each crafted sample's success probability pᵢ is then measured on the defense itself with
``--draws`` fresh-key classifications (:func:`evcsa.games.rejudge`). Printed per attack:
mean pᵢ over the digits, digits with pᵢ ≥ 0.5, and the expected advantage Π pᵢ (τ = 1,
N = 25) of the 25 best samples with its Bonferroni–Clopper–Pearson interval
(:func:`evcsa.stats.expected_advantage`). Target: APGD-EOT at least as strong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _demo_setting import EPSILON, N_CHOSEN, demo_inputs  # noqa: E402

from evcsa.adversaries import BPDAEOT  # noqa: E402
from evcsa.defenses import MedianSmoothing, RandomizedSqueezing  # noqa: E402
from evcsa.games import EVCSA, Rules, rejudge  # noqa: E402
from evcsa.randomness import DerivedKeys  # noqa: E402
from evcsa.stats import expected_advantage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=100)
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, x, y = demo_inputs(args.digits)
    defense = RandomizedSqueezing(model, MedianSmoothing(2), 0.5, DerivedKeys.from_seed(2024))
    rules = Rules(n_chosen=N_CHOSEN, epsilon=EPSILON, norm="linf", knowledge="whitebox")
    game = EVCSA.from_rules(defense, x, y, rules)
    attacks = {
        "BPDA+EOT (demo: 40 steps × 10 draws)": BPDAEOT(steps=40, eot_samples=10, n_candidates=len(x),
                                                        selection="offline", estimate_draws=1),
        "APGD-CE-EOT (40 steps × 10 draws)": BPDAEOT(method="apgd", loss="ce", steps=40, eot_samples=10,
                                                      n_candidates=len(x), selection="offline", estimate_draws=1),
        "APGD-DLR-EOT (40 steps × 10 draws)": BPDAEOT(method="apgd", loss="dlr", steps=40, eot_samples=10,
                                                       n_candidates=len(x), selection="offline", estimate_draws=1),
        "APGD-CE-EOT (40 × 10, η⁽⁰⁾ = ε/2, not the default)": BPDAEOT(
            method="apgd", loss="ce", steps=40, eot_samples=10, step_size=EPSILON / 2, n_candidates=len(x),
            selection="offline", estimate_draws=1),
        "APGD-CE-EOT (10 × 40, η⁽⁰⁾ = ε/2, not the default)": BPDAEOT(
            method="apgd", loss="ce", steps=10, eot_samples=40, step_size=EPSILON / 2, n_candidates=len(x),
            selection="offline", estimate_draws=1),
        "APGD-CE-EOT (AutoAttack rand: 20 steps × 20 draws)": BPDAEOT(
            method="apgd", loss="ce", steps=20, eot_samples=20, n_candidates=len(x), selection="offline",
            estimate_draws=1),
    }
    print(f"randomized median 2x2 δ 0.5, {len(x)} digits, ε = {EPSILON} L∞; p from {args.draws} fresh-key "
          f"draws each")
    print(f"{'attack':52} {'evals':>6} {'mean p':>7} {'p≥0.5':>6}  {'Π p (top 25) [95 % CI]':>26} {'time':>6}")
    results = {}
    for label, adversary in attacks.items():
        t = time.perf_counter()
        cand = adversary.prepare(game.knowledge(5)).candidates
        elapsed = time.perf_counter() - t
        idx = torch.as_tensor(cand.sources)
        k = rejudge(defense, cand.x_adv, x[idx], y[idx], rules, draws=args.draws,
                    keys=DerivedKeys.from_seed(77).derive(label))
        p = k / args.draws
        top = np.argsort(-p, kind="stable")[:N_CHOSEN]
        adv = expected_advantage(k[top], args.draws, 1.0)
        evals = int(cand.health.evaluations.mean()) * adversary.eot_samples
        results[label] = p
        print(f"{label:52} {evals:6d} {p.mean():7.3f} {int((p >= 0.5).sum()):6d}  {str(adv):>26} {elapsed:5.0f}s")
    base = results["BPDA+EOT (demo: 40 steps × 10 draws)"]
    union = np.maximum(results["APGD-CE-EOT (40 steps × 10 draws)"], results["APGD-DLR-EOT (40 steps × 10 draws)"])
    print(f"{'APGD CE ∪ DLR (per digit the better; 2× evals)':52} {'':6} {union.mean():7.3f} "
          f"{int((union >= 0.5).sum()):6d}")
    for label in ("APGD-CE-EOT (40 steps × 10 draws)", "APGD-CE-EOT (40 × 10, η⁽⁰⁾ = ε/2, not the default)",
                  "APGD-CE-EOT (10 × 40, η⁽⁰⁾ = ε/2, not the default)"):
        ce = results[label]
        verdict = "at least as strong" if ce.mean() >= base.mean() else "WEAKER"
        print(f"RESULT: {label}: mean p {ce.mean():.4f} vs BPDA+EOT {base.mean():.4f} at equal evaluations: "
              f"{verdict}")


if __name__ == "__main__":
    main()
