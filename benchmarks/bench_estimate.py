"""The reproduction's estimate against the run it predicts (issue 25 item 5).

    python benchmarks/bench_estimate.py [--plan randomized-squeezing] [--data mnist]
        [--samples 20] [--runs 50] [--jobs 2] [--parts graybox]

A small plan run end to end (not the full run): the plan's ``--quick`` scale (its cut-down
attack schedules, axes and draws) with |X_D| = ``--samples`` and R = ``--runs`` games per
cell. First ``estimate_plan`` at the threads of one of ``--jobs`` workers (what
``evcsa reproduce … --estimate --jobs J`` prints, :func:`~evcsa.reproduction.run.format_estimate`'s
"with --jobs J" figure: the work shared evenly, at least the longest item), then
``run_plan`` with a pool of ``--jobs`` workers into a fresh directory, timed from the call
to its return (the workers' start included). Printed: predicted, measured and
predicted / measured (target 0.75–1.25). The collapse of determined work is on, in both
(set ``EVCSA_COLLAPSE=0`` to compare with it off). Not the papers' setting: the numbers it
computes are not printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _shared  # noqa: F401,I001  (puts evcsa on sys.path)

import attrs
import torch

from evcsa.experiments.executors import PoolExecutor
from evcsa.reproduction.plans import PLANS, SCALES, Plan
from evcsa.reproduction.run import estimate_plan, format_estimate, run_plan
from evcsa.shipped import default_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="randomized-squeezing", choices=sorted(PLANS))
    parser.add_argument("--data", default="mnist", choices=("mnist", "digits"))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--parts", default=None, help="comma-separated part ids (default: all)")
    args = parser.parse_args(argv)

    scale = attrs.evolve(SCALES["quick"], name="bench", samples=args.samples, runs=args.runs)
    paper, builder = PLANS[args.plan]
    model = default_model(args.data)
    plan = Plan(name=args.plan, paper=paper, scale=scale, data=args.data, parts=builder(scale, args.data, model),
                gaps=(), model=model)
    parts = args.parts.split(",") if args.parts else None
    if parts is not None:
        plan = attrs.evolve(plan, parts=tuple(p for p in plan.parts if p.id in parts))

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))  # as --estimate --jobs J times it
    estimate = estimate_plan(plan)
    torch.set_num_threads(threads)
    rows = estimate.items
    longest = max(each for _, _, each, _ in rows)
    predicted = max(estimate.total / args.jobs, longest) if args.jobs > 1 else estimate.total
    print(format_estimate(plan, estimate, jobs=args.jobs))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_plan(plan, output=os.path.join(tmp, "run"), executor=PoolExecutor(args.jobs) if args.jobs > 1 else None)
        measured = time.perf_counter() - start
    print(f"{args.plan} ({', '.join(p.id for p in plan.parts)}), data {args.data}, |X_D| = {args.samples}, "
          f"R = {args.runs}, --jobs {args.jobs}, collapse {'off' if os.environ.get('EVCSA_COLLAPSE') == '0' else 'on'}")
    print(f"  predicted {predicted:.1f} s, measured {measured:.1f} s: predicted / measured = "
          f"{predicted / measured:.2f} (target 0.75–1.25)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
