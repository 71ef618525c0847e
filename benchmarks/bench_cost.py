"""The cost model checked against measured full runs (issue 11).

    python benchmarks/bench_cost.py [--samples 100] [--probe 10] [--threads 1]

On the reference MNIST CNN and the first ``--samples`` correctly classified test digits:
for each attack, :func:`evcsa.attacks.cost.estimate_attack_time` predicts the full run's
time from a probe of ``--probe`` digits, then the full run (one batch of 100, as the
reproduction crafts) is timed; printed: predicted, measured, and their ratio (target
within 0.67–1.5×). Both run under the same load.
"""

from __future__ import annotations

import argparse
import sys
import time

import _shared  # noqa: F401  (puts evcsa on sys.path)

import torch  # noqa: E402

from evcsa.attacks import run_attack  # noqa: E402
from evcsa.attacks.cost import estimate_attack_time  # noqa: E402
from evcsa.data import load_mnist  # noqa: E402
from evcsa.models import reference_model  # noqa: E402

ATTACKS = {"bim": {}, "deepfool": {}, "jsma_next": {}, "cw_l2_next": {"schedule": "fast", "max_iterations": 200}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--probe", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = reference_model("mnist", progress=False)
    test = load_mnist("test")
    with torch.no_grad():
        idx = (model.predict(test.images).cpu() == test.labels).nonzero().flatten()[:args.samples]
    x, y = test.images[idx], test.labels[idx]
    run_attack("fgsm", model, x[:10], y[:10])  # warm-up
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(y)} digits, probe {args.probe}")
    for name, params in ATTACKS.items():
        if args.only and name not in args.only:
            continue
        cost = estimate_attack_time(name, model, x, y, samples=len(y), probe=args.probe, **params)
        t0 = time.perf_counter()
        run_attack(name, model, x, y, batch_size=100, **params)
        measured = time.perf_counter() - t0
        ratio = cost.predicted_seconds / measured
        verdict = "ok" if 0.67 <= ratio <= 1.5 else "MISSED"
        print(f"{name:11s} {params or ''} predicted {cost.predicted_seconds:7.1f} s  measured {measured:7.1f} s  "
              f"predicted/measured {ratio:5.2f} (target 0.67-1.5) {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
