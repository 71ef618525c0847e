"""The ``evcsa`` command.

::

    evcsa demo                  the main job: feature squeezing vs three adversaries on MNIST
    evcsa play CONFIG.toml      one experiment from a TOML configuration
    evcsa train [NAME]          train a reference model's recipe here (or show the cached one)
    evcsa show DIR              a finished run's summary, and its figures redrawn from its results
    evcsa reproduce PAPER       a seed paper's evaluation beside its numbers (evcsa.reproduction)
    evcsa evaluate DEFENSE      a defense against the standard suite: worst-case Adv, checks (evcsa.evaluation)

Every run works in a run directory (``--output``, default ``results/<name>-<time>``): its
store (:mod:`evcsa.experiments.store`) commits each unit of work as it finishes, and the
results files are written there when all are done. A run that is killed (even by SIGKILL)
or interrupted (Ctrl-C, SIGTERM) keeps its finished units: rerunning the same command, or
``evcsa play --resume DIR``, finishes it without recomputing them and gives the same
numbers. A run stopped before any unit finished leaves no directory. A directory holding
another configuration's run, a directory evcsa did not create, and a directory another run
is writing are refused; ``--overwrite`` replaces another configuration's run, and deletes
only a directory evcsa made (never the working directory, a parent of it, home or root). A
damaged store is reported, never replaced (``--recompute-corrupt`` computes a unit whose file
is corrupt again). Errors in the configuration, the data, the parameters or a plugin are
reported on one line, naming the file and the key (or the plugin and the cell), with exit
status 2.

Modules, one per command group: :mod:`~evcsa.cli.play` (demo, play, ``play --check``,
show), :mod:`~evcsa.cli.train`, :mod:`~evcsa.cli.reproduce`, :mod:`~evcsa.cli.evaluate`;
:mod:`~evcsa.cli.output` (where they print). The parser imports no torch of its own: the
engine, the models, the report and the evaluation load in the handlers, when a command
runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from types import FrameType
from typing import Sequence

from evcsa import __version__
from evcsa._exits import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Terminated
from evcsa._text import printable
from evcsa.cli import evaluate, play, reproduce, train
from evcsa.cli.output import PipeSafe
from evcsa.errors import EvcsaError, InvalidParameter

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``evcsa`` command's parser: its subcommands demo, play, show, train, reproduce and
    evaluate, in that order."""
    parser = argparse.ArgumentParser(
        prog="evcsa",
        description="Play the EV-CSA security game (evasion under chosen-sample attacks): defenses × "
                    "adversaries, success rates and the advantage Adv(N, τ) with confidence intervals.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    play.add_parsers(sub)
    train.add_parser(sub)
    reproduce.add_parser(sub)
    evaluate.add_parser(sub)
    return parser


def _dispatch(args: argparse.Namespace, out: PipeSafe) -> int:
    if args.command == "demo":
        return play.demo(args, out)
    if args.command == "play":
        return play.play(args, out)
    if args.command == "show":
        return play.show(args, out)
    if args.command == "reproduce":
        return reproduce.reproduce(args, out)
    if args.command == "evaluate":
        return evaluate.evaluate_command(args, out)
    return train.train(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evcsa`` console script.

    Returns:
        0 on success, 2 for a bad configuration, data or parameter (one line on stderr),
        130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "play" and args.config is None and args.resume is None:
        parser.error("play: expected CONFIG.toml or --resume DIR")
    args.argv = None if argv is None else list(argv)
    out = PipeSafe(sys.stdout)
    # Before torch loads: idle OpenMP threads sleep instead of spinning, which keeps a run
    # fast on a machine shared with other work (measured 2-3x faster on 2 loaded cores).
    # An explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        threads = getattr(args, "threads", None)
        if threads is not None:
            if threads < 1:
                raise InvalidParameter(f"--threads: expected an integer ≥ 1, got {threads}")
            import torch  # after OMP_WAIT_POLICY is set, and never for --help

            torch.set_num_threads(threads)

        def terminate(signum: int, frame: FrameType | None) -> None:
            raise Terminated()

        previous = None
        with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone
            previous = signal.signal(signal.SIGTERM, terminate)
        try:
            return _dispatch(args, out)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except EvcsaError as exc:
        print(f"evcsa: error: {printable(exc.message if hasattr(exc, 'message') else str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print("evcsa: interrupted; no results written", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
