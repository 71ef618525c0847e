"""``evcsa reproduce {mix-n-squeeze,randomized-squeezing} [--quick] [--estimate] [-o DIR]``:
the parser and the handler (evcsa.cli adds and dispatches them)."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from evcsa.reproduction.plans import PLANS

__all__ = ["add_parser", "reproduce"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("reproduce", help="a seed paper's evaluation, its tables beside the paper's numbers",
                       description="Run seed 002's (mix-n-squeeze: Tables 1-3, Figures 5-7) or seed 000's "
                                   "(randomized-squeezing) evaluation on the embedded MNIST digits and print "
                                   "each table beside the paper's numbers: ours with its 95 % interval, the "
                                   "paper's, the difference, and whether the paper's value lies in our interval.")
    p.add_argument("paper", choices=tuple(PLANS), help="which evaluation")
    p.add_argument("--quick", action="store_true",
                   help="a few samples and runs, cut-down attacks: checks the pipeline in seconds (numbers not "
                        "comparable to the paper's)")
    p.add_argument("--estimate", action="store_true",
                   help="predict the run's time on this machine from a short timed run, and exit")
    p.add_argument("-o", "--output", metavar="DIR", help="write the results there (default: nothing written)")
    p.add_argument("--part", action="append", metavar="ID",
                   help="run only this part (table1, table2, table3, figures; graybox, whitebox); repeatable")
    p.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                   help="mnist (default: the papers' setting) or digits (8×8, the small model: a smoke test)")
    p.add_argument("--reference-schedule", action="store_true",
                   help="craft C&W with Carlini's reference schedule (default: schedule='fast')")
    p.add_argument("--cache-dir", metavar="DIR", help="model cache (default: $EVCSA_CACHE or ~/.cache/evcsa)")
    return p


def reproduce(args: argparse.Namespace, out: Any) -> int:
    """Run (or estimate) the plan ``args`` describes; print the tables to ``out``.

    Raises:
        EvcsaError: a bad part name, configuration or data (the CLI prints one line).
    """
    from evcsa.reproduction.plans import build_plan
    from evcsa.reproduction.run import estimate_plan, format_estimate, format_result, run_plan

    plan = build_plan(args.paper, scale="quick" if args.quick else "full", data=args.data,
                      cw_schedule="reference" if args.reference_schedule else None)
    if args.part:
        for p in args.part:
            plan.part(p)
    from evcsa.models import is_cached

    if not is_cached(plan.data, cache_dir=args.cache_dir):
        from evcsa.cli import _training_notice

        print(_training_notice(plan.data, args.cache_dir), file=sys.stderr, flush=True)
    say = lambda line: print(line, file=out, flush=True)  # noqa: E731
    if args.estimate:
        say(format_estimate(plan, estimate_plan(plan, cache_dir=args.cache_dir, log=say)))
        return 0
    say(f"evcsa reproduce {plan.name}: seed {plan.paper}, scale {plan.scale.name}, data {plan.data}, "
        f"{len(args.part or plan.parts)} part(s)")
    result = run_plan(plan, output=args.output, cache_dir=args.cache_dir, parts=args.part, log=say)
    say("")
    say(format_result(result))
    if args.output:
        say(f"\nresults: {pathlib.Path(args.output)}/ (reproduction.txt, <part>.json, the tables' results "
            f"directories)")
    return 0
