"""``evcsa demo``, ``evcsa play CONFIG.toml`` (``--check``, ``--resume DIR``) and ``evcsa
show DIR``: the parsers and the handlers of the commands that play one configuration in a
run directory, and show a finished one.

The engine (evcsa.experiments, torch) and the report load when a command runs, not for
``evcsa --help``: those imports sit in the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import pathlib
import sys
import time
from typing import Any, Iterator, Sequence

import attrs

from evcsa._exits import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from evcsa._text import counted, printable
from evcsa.cli.output import Silent, TextOutput
from evcsa.config import ExperimentConfig, load_config, parse_config
from evcsa.errors import ConfigError, InvalidParameter

__all__ = ["add_parsers", "add_run_options", "apply_overrides", "demo", "play", "run_config",
           "show"]


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that plays a configuration (demo, play)."""
    p.add_argument("-o", "--output", metavar="DIR",
                   help="run directory (default: results/<name>-<date>-<time>); an unfinished run of the "
                        "same configuration there is resumed")
    p.add_argument("--resume", metavar="DIR",
                   help="finish the run in DIR (its configuration is stored there; finished units are "
                        "not recomputed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in an existing run directory (another configuration's, say); only a "
                        "directory evcsa made is deleted")
    p.add_argument("--recompute-corrupt", action="store_true",
                   help="compute again a finished unit whose stored file turns out corrupt (default: stop with "
                        "an error naming it)")
    p.add_argument("--jobs", type=int, metavar="N", help="run the units on a local pool of N processes")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the units on the Dask cluster at ADDRESS ('local': a LocalCluster; needs "
                        "evcsa[dask])")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"),
                   help="where the model runs (default: the configuration's device, cpu)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors (the run directory's run.log still has every step)")
    p.add_argument("--runs", type=int, metavar="R", help="games per cell (overrides the configuration)")
    p.add_argument("--seed", type=int, metavar="S", help="master seed (overrides the configuration)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache of models trained here (default: $EVCSA_CACHE or ~/.cache/evcsa); the "
                        "reference models ship with their weights and need none")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-figures", action="store_true", help="skip the δ sweep and the figures")
    p.add_argument("--threads", type=int, metavar="T",
                   help="torch threads (default: torch's choice, one per core)")


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``demo``, ``play`` and ``show`` subcommands to ``sub``."""
    demo_p = sub.add_parser("demo", help="the main job on the embedded MNIST digits (about 5 minutes)",
                            description="Feature squeezing (1-bit depth; 2×2 median), deterministic and "
                                        "randomized (δ = 0.2 / 0.5), against graybox transfer (BIM), greedy "
                                        "A* and BPDA+EOT; N = 25, τ = 1.")
    add_run_options(demo_p)
    demo_p.add_argument("--print-config", action="store_true",
                        help="print the demo's configuration (TOML) and exit")

    play_p = sub.add_parser("play", help="run the experiment a TOML configuration describes")
    play_p.add_argument("config", metavar="CONFIG.toml", nargs="?",
                        help="the configuration file (optional with --resume)")
    add_run_options(play_p)
    play_p.add_argument("--check", action="store_true", help="check the configuration and exit")

    show_p = sub.add_parser("show", help="print a finished run's summary and redraw its figures (no recomputation)",
                            description="Reads DIR/results.json (and examples.npz), prints what made the run and "
                                        "its table, and redraws the figures from the stored numbers.")
    show_p.add_argument("dir", metavar="DIR", help="a results directory written by play or demo")
    show_p.add_argument("--figures-dir", metavar="D", help="write the figures there (default: DIR itself)")
    show_p.add_argument("--no-figures", action="store_true", help="print the summary only")


def apply_overrides(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    """``config`` with the command line's overrides (--runs, --seed, --no-figures, --device,
    --jobs, --dask).

    Raises:
        ConfigError: --runs or --jobs below 1, --seed below 0.
    """
    changes: dict[str, Any] = {}
    if args.runs is not None:
        if args.runs < 1:
            raise ConfigError(f"--runs: expected an integer ≥ 1, got {args.runs}", key="runs")
        changes["runs"] = args.runs
    if args.seed is not None:
        if args.seed < 0:
            raise ConfigError(f"--seed: expected an integer ≥ 0, got {args.seed}", key="seed")
        changes["seed"] = args.seed
    if args.no_figures:
        changes["figures"] = attrs.evolve(config.figures, enabled=False)
    if getattr(args, "device", None):
        changes["device"] = args.device
    if getattr(args, "jobs", None) is not None:
        if args.jobs < 1:
            raise ConfigError(f"--jobs: expected an integer ≥ 1, got {args.jobs}", key="jobs")
        changes["executor"], changes["jobs"] = ("processes", args.jobs) if args.jobs > 1 else ("serial", None)
    if getattr(args, "dask", None):
        changes["executor"] = "dask"
        changes["dask_address"] = None if args.dask == "local" else args.dask
    return attrs.evolve(config, **changes) if changes else config


def _default_output(name: str) -> pathlib.Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("results") / f"{name}-{stamp}"


def _shape(config: ExperimentConfig) -> str:
    """"2 defenses × 3 adversaries, 4 games each"."""
    return (f"{counted(len(config.defenses), 'defense')} × "
            f"{counted(len(config.adversaries), 'adversary', 'adversaries')}, {counted(config.runs, 'game')} each")


@contextlib.contextmanager
def _naming(source: str) -> Iterator[None]:
    """Puts the configuration's source in front of every ConfigError raised inside (at
    check time and at run time alike: "t.toml: data.samples: expected …")."""
    try:
        yield
    except ConfigError as exc:
        if exc.message.startswith(f"{source}: "):
            raise
        raise ConfigError(f"{source}: {exc.message}", **exc.details) from exc


def _checked(config: ExperimentConfig, source: str) -> ExperimentConfig:
    """check_config, with the configuration's source in front of the message."""
    from evcsa.experiments import check_config  # the engine (torch): not for --help

    with _naming(source):
        check_config(config)
    return config


def run_config(config: ExperimentConfig, args: argparse.Namespace, out: TextOutput, source: str) -> int:
    """Play ``config`` (with the command line's overrides) in its run directory: open or
    resume it, run, publish the results, print the table to ``out``; an interrupted run
    keeps its finished units (exit 130, or 143 for SIGTERM), a run stopped before any unit
    finished leaves no directory.

    Raises:
        EvcsaError: a bad configuration, option, directory or plugin (the CLI prints one line).
    """
    from evcsa import experiments  # the engine (torch): not for --help
    from evcsa.experiments.rundir import RunDirectory, check_resumable
    from evcsa.report import format_table, publish_results, reproducibility_notice

    config = _checked(apply_overrides(config, args), source)
    if args.resume is not None and args.output is not None and \
            pathlib.Path(args.resume).resolve() != pathlib.Path(args.output).resolve():
        raise InvalidParameter(f"--output: expected the --resume directory or nothing, got {args.output!r} beside "
                               f"--resume {args.resume!r}")
    if args.resume is not None:
        check_resumable(args.resume)  # named as given in the message
    output = pathlib.Path(args.resume or args.output or _default_output(config.name))
    if args.quiet:
        out = Silent()
    # --resume DIR must hold a run; a run stopped before any unit finished leaves no directory
    run = RunDirectory(output, config, overwrite=args.overwrite, must_exist=args.resume is not None,
                       recompute_corrupt=getattr(args, "recompute_corrupt", False), discard_if_empty=True).open()
    config = run.config  # with the run's master key (drawn now, or the stored one on resume)
    store = run.store
    try:
        progress = False if (args.no_progress or args.quiet) else None
        start = time.perf_counter()
        print(f"evcsa: {printable(config.name)}: {_shape(config)}, N = {config.game.n_chosen}", file=out, flush=True)
        if run.resumed:
            print(f"  resuming {output}/ (attempt {run.attempt}): {run.stored} units stored",
                  file=out, flush=True)
        notice = reproducibility_notice(config)
        if notice and not args.quiet:
            print(notice, file=sys.stderr, flush=True)

        def say(line: str) -> None:
            store.log(printable(line))
            print(f"  {printable(line)}", file=out, flush=True)

        with _naming(source):
            result = experiments.run_experiment(config, progress=progress, cache_dir=args.cache_dir, log=say,
                                                store=store)
        written = publish_results(result, output, command=["evcsa", *sys.argv[1:]] if args.argv is None
                                  else ["evcsa", *args.argv], store=store)
        store.log(f"results written: {', '.join(written)}")
        run.close("complete")
    except BaseException as exc:
        run.close("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        if isinstance(exc, KeyboardInterrupt) and not run.removed:
            print(f"evcsa: interrupted; {run.committed} finished units kept in {output}/ — rerun the same "
                  f"command (or evcsa play --resume {output}) to finish", file=sys.stderr)
            return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise
    print("", file=out)
    print(format_table(result), file=out)
    print(f"\nresults: {output}/ ({_listing(written)}) — {time.perf_counter() - start:.0f} s",
          file=out, flush=True)
    return 0


def _listing(names: Sequence[str]) -> str:
    """"results.json, …, summary.txt, 4 figures" (or "…; no figures")."""
    files = [n for n in names if not n.endswith(".png") and n != "SHA256SUMS"]  # the digests: not a result
    pictures = sum(n.endswith(".png") for n in names)
    return ", ".join(files) + (f", {counted(pictures, 'figure')}" if pictures else "; no figures")


def demo(args: argparse.Namespace, out: TextOutput) -> int:
    """``evcsa demo``: print the demo's configuration (``--print-config``) or play it."""
    from evcsa.experiments import DEMO_TOML  # the engine (torch): not for --help

    if args.print_config:
        print(DEMO_TOML, end="", file=out)
        return 0
    return run_config(parse_config(DEMO_TOML, source="<demo>"), args, out, "<demo>")


def play(args: argparse.Namespace, out: TextOutput) -> int:
    """``evcsa play``: check (``--check``: the configuration, its data against its model) or
    play the configuration file, or finish the run in ``--resume DIR`` from its stored copy."""
    from evcsa.experiments.checks import check_inputs  # the engine (torch): not for --help
    from evcsa.experiments.rundir import check_resumable
    from evcsa.experiments.store import RunStore

    if args.config is None:
        check_resumable(args.resume)
        source = f"{args.resume}/config"
        # the stored copy names its base_dir (the original file's directory); older ones do not
        config = parse_config(RunStore.config_text(args.resume), source=source, base_dir=args.resume)
    else:
        source = args.config
        config = load_config(args.config)
    if args.check:
        checked = _checked(apply_overrides(config, args), source)
        with _naming(source):  # reference models ship their weights: the data is checked against the model
            check_inputs(checked, cache_dir=args.cache_dir)
        print(f"{source}: OK ({_shape(checked)})", file=out)
        return 0
    return run_config(config, args, out, source)


def show(args: argparse.Namespace, out: TextOutput) -> int:
    """``evcsa show DIR``: a finished run's summary, its figures redrawn from its results."""
    from evcsa.report import show as show_run  # the report (torch): not for --help

    show_run(args.dir, figures=not args.no_figures, figures_dir=args.figures_dir,
             out=lambda line: print(line, file=out, flush=True))
    return 0
