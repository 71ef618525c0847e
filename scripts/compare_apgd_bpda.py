"""APGD-EOT vs BPDA+EOT against randomized median 2×2 (δ 0.5) at equal model evaluations.

    OMP_NUM_THREADS=1 python scripts/compare_apgd_bpda.py [--digits 100] [--draws 400] [--seeds 5]

Setting: the demo's (reference CNN, X_D = the first 100 correctly classified test digits,
ε = 0.3 L∞). Every attack runs through the whitebox twin (the adversary's own keys), BPDA
for the median, EOT over the noise, at about 400 gradient evaluations per digit:

- BPDA+EOT with the demo's settings: 40 signed steps of 2.5ε/40, 10 EOT draws a step;
- APGD-CE (Croce & Hein 2020) with η⁽⁰⁾ = ε/2 at 10 steps × 40 EOT draws (Table 3's
  setting in ``evcsa reproduce``; APGD takes one EOT gradient at its start, so this is 440
  evaluations) and at 9 × 40 (exactly 400), and with AutoAttack's η⁽⁰⁾ = 2ε at 40 steps ×
  10 draws (410).

Each attack is crafted ``--seeds`` times (the adversary's randomness: its random start and
its twin's keys), and each crafted sample's success probability pᵢ is measured on the
defense itself with ``--draws`` fresh-key classifications (:func:`evcsa.games.rejudge`).
Printed per attack and seed: mean pᵢ over the digits (= 1 − the expected adversarial
accuracy); then, against BPDA+EOT, the paired difference of the per-digit pᵢ averaged over
the seeds with its 95 % t interval over the digits. "at least as strong" means the
difference is ≥ 0; a negative difference whose interval holds 0 is printed as "not
distinguishable".
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from _demo_setting import EPSILON, N_CHOSEN, demo_inputs  # noqa: E402

from evcsa.adversaries import BPDAEOT  # noqa: E402
from evcsa.defenses import MedianSmoothing, RandomizedSqueezing  # noqa: E402
from evcsa.games import EVCSA, Rules, rejudge  # noqa: E402
from evcsa.randomness import DerivedKeys  # noqa: E402

BASE = "BPDA+EOT (demo: 40 steps × 10 draws)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=100)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=5, help="crafting repetitions per attack (default 5)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, x, y = demo_inputs(args.digits)
    defense = RandomizedSqueezing(model, MedianSmoothing(2), 0.5, DerivedKeys.from_seed(2024))
    rules = Rules(n_chosen=N_CHOSEN, epsilon=EPSILON, norm="linf", knowledge="whitebox")
    game = EVCSA.from_rules(defense, x, y, rules)
    attacks = {
        BASE: BPDAEOT(steps=40, eot_samples=10, n_candidates=len(x)),
        "APGD-CE-EOT (10 × 40, η⁽⁰⁾ = ε/2: Table 3)": BPDAEOT(method="apgd", loss="ce", steps=10, eot_samples=40,
                                                              step_size=EPSILON / 2, n_candidates=len(x)),
        "APGD-CE-EOT (9 × 40, η⁽⁰⁾ = ε/2: 400 evaluations)": BPDAEOT(method="apgd", loss="ce", steps=9,
                                                                    eot_samples=40, step_size=EPSILON / 2,
                                                                    n_candidates=len(x)),
        "APGD-CE-EOT (40 × 10, η⁽⁰⁾ = 2ε: AutoAttack's)": BPDAEOT(method="apgd", loss="ce", steps=40,
                                                                  eot_samples=10, n_candidates=len(x)),
    }
    print(f"randomized median 2x2 δ 0.5, {len(x)} digits, ε = {EPSILON} L∞; {args.seeds} crafts per attack, p from "
          f"{args.draws} fresh-key classifications of each sample")
    p_of: dict[str, np.ndarray] = {}
    for label, adversary in attacks.items():
        runs = []
        for seed in range(args.seeds):
            t = time.perf_counter()
            cand = adversary.prepare(game.knowledge(100 + seed)).candidates
            elapsed = time.perf_counter() - t
            idx = torch.as_tensor(cand.sources)
            if not np.array_equal(cand.sources, np.arange(len(x))):
                raise SystemExit(f"{label}: expected the candidates in X_D's order, got {cand.sources[:5]}…")
            k = rejudge(defense, cand.x_adv, x[idx], y[idx], rules, draws=args.draws,
                        keys=DerivedKeys.from_seed(77).derive(f"{label}/{seed}"))
            runs.append(k / args.draws)
            evals = int(cand.health.evaluations.mean()) * adversary.eot_samples
            print(f"  {label:48} seed {seed}: {evals} evaluations, mean p {runs[-1].mean():.4f}, "
                  f"{int((runs[-1] < 0.5).sum())} digits with p < 0.5, {elapsed:.0f} s", flush=True)
        p_of[label] = np.mean(runs, axis=0)
    base = p_of[BASE]
    print(f"{'attack':48} {'mean p':>7} {'adv. acc.':>9}  {'vs BPDA+EOT: Δ mean p [95 % CI]':>32}")
    for label, p in p_of.items():
        if label == BASE:
            print(f"{label:48} {p.mean():7.4f} {1 - p.mean():9.2%}")
            continue
        d = p - base
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if d.std() > 0 else 0.0
        verdict = ("at least as strong" if d.mean() >= 0 else
                   "not distinguishable" if d.mean() + half >= 0 else "WEAKER")
        print(f"{label:48} {p.mean():7.4f} {1 - p.mean():9.2%}  {d.mean():+.4f} [{d.mean() - half:+.4f}, "
              f"{d.mean() + half:+.4f}]  {verdict}")
    print("digits some attack fools in fewer than half of the draws (mean p < 0.5): "
          f"{sorted(set().union(*(np.flatnonzero(p < 0.5).tolist() for p in p_of.values())))}")


if __name__ == "__main__":
    main()
