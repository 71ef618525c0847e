"""C&W ``schedule="fast"`` against ``schedule="reference"``: time and strength (issue 11).

On the first N test digits the reference MNIST CNN classifies correctly (the selection of
``scripts/check_attack_strength.py``), each of the six C&W variants of seed 002 Table 1
(L2, L∞, L0 × targets "next" and "least likely", confidence 10, 1,000 iterations per
constant) runs with both schedules, one torch thread, in chunks of ``--chunk`` digits
(each sample's result does not depend on the rest of its batch, so chunking changes the
time, not the result). Per run and chunk one JSON line is appended to ``--out``:
wall seconds, and per digit whether the model still labels it correctly (adversarial
accuracy), the attack's distance (L2, L∞ or L0 on [0, 1]) and whether the targeted
attack succeeded.

``--report`` reads such files and prints, per variant and schedule: the digits measured,
the time, adversarial accuracy with its Clopper–Pearson 95 % interval, mean distortion
with its 95 % t-interval, and whether the fast schedule's two figures lie inside the
reference's intervals; the time ratio fast / reference in process CPU seconds (wall time
moves with the machine's load) over the digits both measured.

Run (the full reference costs about 20–25 min per L∞/L0 variant on 50 digits on one
free core; the fast schedule about a fifth of that or less)::

    OMP_NUM_THREADS=1 python scripts/check_cw_schedule.py --schedule reference --out ref.jsonl
    OMP_NUM_THREADS=1 python scripts/check_cw_schedule.py --schedule fast --out fast.jsonl
    python scripts/check_cw_schedule.py --report ref.jsonl fast.jsonl

``--max-iterations`` shortens every optimisation (a smoke run: the figures then say
nothing about the full settings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Iterable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

VARIANTS = ("cw_l2_next", "cw_l2_ll", "cw_linf_next", "cw_linf_ll", "cw_l0_next", "cw_l0_ll")


def select_samples(n: int):
    """The reference model and the first ``n`` test digits it classifies correctly."""
    import torch

    from evcsa.data import load_mnist
    from evcsa.models import reference_model

    model = reference_model("mnist", progress=False)
    test = load_mnist("test")
    with torch.no_grad():
        pred = model.predict(test.images).cpu()
    idx = (pred == test.labels).nonzero().flatten()[:n]
    return model, test.images[idx].clone(), test.labels[idx].clone()


def measure(variant: str, schedule: str, model: Any, x: Any, y: Any, *, max_iterations: int | None = None
            ) -> dict[str, Any]:
    """One timed run of ``variant`` on (x, y); the per-digit figures of the evaluation."""
    import numpy as np

    from evcsa.attacks import evaluate_attack

    params: dict[str, Any] = {}
    if schedule != "reference":
        params["schedule"] = schedule
    if max_iterations is not None:
        params["max_iterations"] = max_iterations
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate_attack(variant, model, x, y, batch_size=len(y), **params)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    correct = ev.predictions == ev.labels
    return {"variant": variant, "schedule": schedule, "seconds": seconds, "cpu_seconds": cpu, "n": int(len(y)),
            "correct": correct.astype(int).tolist(), "distance": np.asarray(ev.distances, float).tolist(),
            "success": ev.success.astype(int).tolist(), "norm": ev.norm,
            "flagged": int(ev.gradient_flagged.sum()), "failed": int(ev.failed.sum()),
            "gradients": None if ev.health is None else int(ev.health.evaluations.sum())}


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    model, x, y = select_samples(args.n)
    print(f"{len(y)} correctly classified test digits; schedule {args.schedule}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread", flush=True)
    for start in range(0, len(y), args.chunk):
        sl = slice(start, min(len(y), start + args.chunk))
        for variant in args.variants:
            row = measure(variant, args.schedule, model, x[sl], y[sl], max_iterations=args.max_iterations)
            row.update(first=start, max_iterations=args.max_iterations)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{variant:13s} {args.schedule:9s} digits {sl.start}-{sl.stop - 1}: {row['seconds']:8.1f} s, "
                  f"adversarial accuracy {sum(row['correct']) / row['n']:.1%}, mean {row['norm']} "
                  f"{sum(row['distance']) / row['n']:.4f}", flush=True)
    return 0


def _t_interval(values: list[float], alpha: float = 0.05) -> tuple[float, float, float]:
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan"), float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def load(paths: Iterable[str]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The rows of the JSON-lines files keyed by (variant, schedule, first digit); a later
    row for the same key replaces an earlier one."""
    rows = {}
    for path in paths:
        if not os.path.exists(path):
            print(f"{path}: missing, skipped")
            continue
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    if r.get("max_iterations") is None:
                        rows[(r["variant"], r["schedule"], r["first"])] = r
    return rows


def report(paths: list[str], out: Any = print) -> dict[str, dict[str, Any]]:
    """Per variant: both schedules over the chunks both measured; see the module docstring."""
    from evcsa.stats import clopper_pearson

    rows = load(paths)
    summary: dict[str, dict[str, Any]] = {}
    out(f"{'variant':13s} {'schedule':9s} {'digits':>6s} {'time s':>9s} {'adv. acc. [95% CI]':>22s} "
        f"{'mean dist. [95% CI]':>30s} {'CPU s':>8s}  fast inside ref CI / CPU-time ratio")
    for variant in VARIANTS:
        firsts = sorted({k[2] for k in rows if k[0] == variant and k[1] == "reference"}
                        & {k[2] for k in rows if k[0] == variant and k[1] == "fast"})
        if not firsts:
            continue
        figs = {}
        for schedule in ("reference", "fast"):
            sel = [rows[(variant, schedule, f)] for f in firsts]
            correct = [c for r in sel for c in r["correct"]]
            dist = [d for r in sel for d in r["distance"]]
            n = len(correct)
            k = int(sum(correct))
            lo, hi = clopper_pearson(k, n)
            mean, mlo, mhi = _t_interval(dist)
            seconds = sum(r["seconds"] for r in sel)
            cpu = sum(r.get("cpu_seconds", r["seconds"]) for r in sel)
            figs[schedule] = {"n": n, "seconds": seconds, "cpu_seconds": cpu, "adv_acc": k / n, "adv_acc_ci": [lo, hi],
                              "mean_distance": mean, "mean_distance_ci": [mlo, mhi], "norm": sel[0]["norm"]}
        ref, fast = figs["reference"], figs["fast"]
        acc_ok = ref["adv_acc_ci"][0] <= fast["adv_acc"] <= ref["adv_acc_ci"][1]
        dist_ok = ref["mean_distance_ci"][0] <= fast["mean_distance"] <= ref["mean_distance_ci"][1]
        ratio = fast["cpu_seconds"] / ref["cpu_seconds"]
        summary[variant] = {"reference": ref, "fast": fast, "accuracy_inside": acc_ok, "distance_inside": dist_ok,
                            "time_ratio": ratio}
        for schedule, f in figs.items():
            verdict = (f"acc {'yes' if acc_ok else 'NO'}, dist {'yes' if dist_ok else 'NO'}; "
                       f"{ratio:.3f} ({1 / ratio:.1f}x faster)") if schedule == "fast" else ""
            out(f"{variant:13s} {schedule:9s} {f['n']:6d} {f['seconds']:9.1f} "
                f"{f['adv_acc']:6.1%} [{f['adv_acc_ci'][0]:5.1%}, {f['adv_acc_ci'][1]:5.1%}] "
                f"{f['norm']:>4s} {f['mean_distance']:8.4f} [{f['mean_distance_ci'][0]:.4f}, "
                f"{f['mean_distance_ci'][1]:.4f}] {f['cpu_seconds']:8.1f}  {verdict}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", choices=("reference", "fast"), default="fast")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--n", type=int, default=50, help="digits (default 50)")
    parser.add_argument("--chunk", type=int, default=25, help="digits per attack call (default 25)")
    parser.add_argument("--max-iterations", type=int, default=None, help="smoke runs only")
    parser.add_argument("--out", default="cw_schedule.jsonl", help="JSON lines appended here")
    parser.add_argument("--report", nargs="+", metavar="JSONL", help="summarise these files and exit")
    args = parser.parse_args(argv)
    if args.report:
        summary = report(args.report)
        return 0 if summary else 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
