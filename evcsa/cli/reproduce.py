"""``evcsa reproduce {mix-n-squeeze,randomized-squeezing} [--quick] [--estimate] [--model NAME] [-o DIR] [--jobs J]``:
the parser and the handler of a seed paper's evaluation beside its numbers (evcsa.reproduction).

The engine (torch) loads when the command runs, not for ``evcsa --help``: those imports sit
in the handler.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import TYPE_CHECKING

from evcsa._exits import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from evcsa.cli.output import TextOutput
from evcsa.errors import InvalidParameter
from evcsa.reproduction.plans import PLANS, Plan, build_plan
from evcsa.shipped import PAPER_MODEL, REFERENCE_MODELS, default_model

if TYPE_CHECKING:  # the engine (torch): named for the types only, not loaded for --help
    from evcsa.experiments.seams import Executor

__all__ = ["add_parser", "default_output", "reproduce"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
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
    p.add_argument("-o", "--output", metavar="DIR",
                   help="the reproduction's directory (default: ./reproduce-PAPER[-quick][-digits]); rerunning the "
                        "same command on it resumes: finished units are kept")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the reproduction the directory holds and start over (never while it runs)")
    p.add_argument("--recompute-corrupt", action="store_true",
                   help="compute again a finished unit whose stored file turns out corrupt")
    p.add_argument("--jobs", type=int, metavar="J",
                   help="run the units in J local worker processes (default: this process)")
    p.add_argument("--dask", metavar="ADDRESS", nargs="?", const="",
                   help="run the units on a Dask cluster (scheduler ADDRESS; without one, a local cluster of "
                        "--jobs workers)")
    p.add_argument("--part", action="append", metavar="ID",
                   help="run only this part (table1, table2, table3, figures; graybox, whitebox); repeatable")
    p.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                   help="mnist (default: the papers' setting) or digits (8×8, the small model: a smoke test)")
    p.add_argument("--model", choices=REFERENCE_MODELS, metavar="NAME",
                   help=f"the reference model, one of {', '.join(REFERENCE_MODELS)} (default: on mnist the seeds' "
                        f"model, {PAPER_MODEL}: Carlini's CNN as EvadeML-Zoo published it; 'mnist' is evcsa's own "
                        "CNN trained on the embedded digits)")
    p.add_argument("--reference-schedule", action="store_true",
                   help="craft C&W with Carlini's reference schedule (default: schedule='fast')")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where the model, defenses and attacks run (default: cpu; auto: cuda when available)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache of models trained here (default: $EVCSA_CACHE or ~/.cache/evcsa); the reference "
                        "models ship with their weights and need none")
    return p


def reproduce(args: argparse.Namespace, out: TextOutput) -> int:
    """Run (or estimate) the plan ``args`` describes; print the tables to ``out``. Interrupted
    (Ctrl-C, SIGTERM), the finished units are kept and the exit status is 130 (143).

    Raises:
        EvcsaError: a bad part name, configuration or data (the CLI prints one line).
    """
    # the engine (torch) loads when the command runs, not for --help
    from evcsa.reproduction.run import estimate_plan, format_estimate, format_result, run_plan

    if args.jobs is not None and args.jobs < 1:
        raise InvalidParameter(f"--jobs: expected a positive number of workers, got {args.jobs}", got=args.jobs)
    plan = build_plan(args.paper, scale="quick" if args.quick else "full", data=args.data, model=args.model,
                      cw_schedule="reference" if args.reference_schedule else None,
                      device=getattr(args, "device", "cpu"))
    if args.part:
        for p in args.part:
            plan.part(p)
    say = lambda line: print(line, file=out, flush=True)  # noqa: E731
    if args.estimate:
        jobs = args.jobs or 1
        if jobs > 1:  # time each piece at a worker's share of the cores, as the pool will run it
            import torch  # loaded with the engine above; named here for set_num_threads

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
        say(format_estimate(plan, estimate_plan(plan, cache_dir=args.cache_dir, log=say), jobs=jobs))
        return 0
    output = pathlib.Path(args.output or default_output(plan))
    executor = _executor(args)
    say(f"evcsa reproduce {plan.name}: seed {plan.paper}, scale {plan.scale.name}, data {plan.data}, "
        f"model {plan.model}, device {plan.parts[0].configs[0].device}, "
        f"{len(args.part or plan.parts)} part(s), {getattr(executor, 'workers', 1)} worker(s), in {output}/")
    try:
        if hasattr(executor, "warm"):
            executor.warm(plan.parts[0].configs[0], args.cache_dir)
        result = run_plan(plan, output=output, cache_dir=args.cache_dir, parts=args.part, log=say,
                          executor=executor, overwrite=args.overwrite,
                          recompute_corrupt=getattr(args, "recompute_corrupt", False))
    except KeyboardInterrupt as exc:
        executor.close(cancel=True)
        print(f"evcsa: interrupted; the finished units are kept in {output}/ — rerun the same command to "
              "finish", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BaseException:
        executor.close(cancel=True)
        raise
    executor.close()
    say("")
    say(format_result(result))
    say(f"\nresults: {output}/ (reproduction.txt, <part>.json, one run directory per configuration)")
    return 0


def default_output(plan: Plan) -> str:
    """``reproduce-<name>`` with ``-quick`` and ``-digits`` where the plan is reduced, and
    ``-<model>`` where the model is not the data's default (``--model mnist``)."""
    return "reproduce-" + plan.name + ("-quick" if plan.scale.name == "quick" else "") + \
        ("-digits" if plan.data == "digits" else "") + \
        (f"-{plan.model}" if plan.model != default_model(plan.data) else "")


def _executor(args: argparse.Namespace) -> Executor:
    """The executor ``--jobs`` / ``--dask`` name (:func:`evcsa.experiments.executors.make_executor`)."""
    from evcsa.experiments.executors import make_executor  # the engine (torch): not for --help

    if args.dask is not None:
        return make_executor("dask", jobs=args.jobs, address=args.dask or None)
    if args.jobs is not None and args.jobs > 1:
        return make_executor("processes", jobs=args.jobs)
    return make_executor("serial")
