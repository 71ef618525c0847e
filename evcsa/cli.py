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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import pathlib
import sys
import time
from typing import Any, Iterator, Sequence

from evcsa._exits import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Terminated

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evcsa",
        description="Play the EV-CSA security game (evasion under chosen-sample attacks): defenses × "
                    "adversaries, success rates and the advantage Adv(N, τ) with confidence intervals.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def run_options(p: argparse.ArgumentParser) -> None:
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

    demo = sub.add_parser("demo", help="the main job on the embedded MNIST digits (about 5 minutes)",
                          description="Feature squeezing (1-bit depth; 2×2 median), deterministic and "
                                      "randomized (δ = 0.2 / 0.5), against graybox transfer (BIM), greedy "
                                      "A* and BPDA+EOT; N = 25, τ = 1.")
    run_options(demo)
    demo.add_argument("--print-config", action="store_true",
                      help="print the demo's configuration (TOML) and exit")

    play = sub.add_parser("play", help="run the experiment a TOML configuration describes")
    play.add_argument("config", metavar="CONFIG.toml", nargs="?",
                      help="the configuration file (optional with --resume)")
    run_options(play)
    play.add_argument("--check", action="store_true", help="check the configuration and exit")

    show = sub.add_parser("show", help="print a finished run's summary and redraw its figures (no recomputation)",
                          description="Reads DIR/results.json (and examples.npz), prints what made the run and "
                                      "its table, and redraws the figures from the stored numbers.")
    show.add_argument("dir", metavar="DIR", help="a results directory written by play or demo")
    show.add_argument("--figures-dir", metavar="D", help="write the figures there (default: DIR itself)")
    show.add_argument("--no-figures", action="store_true", help="print the summary only")

    train = sub.add_parser("train", help="train a reference model's recipe here, into the cache (or show it)",
                           description="Train evcsa's recipe of a reference model on this machine and cache it; "
                                       "say whether it matches the shipped weights (float32 training differs "
                                       "across CPUs). Runs use the shipped weights; a model trained here is used "
                                       "with [model] architecture and weights = the cached .pt file.")
    train.add_argument("name", nargs="?", default="mnist", help="reference model: mnist (default) or digits")
    train.add_argument("--retrain", action="store_true", help="train even if cached")
    train.add_argument("--cache-dir", metavar="DIR",
                       help="model cache (default: $EVCSA_CACHE or ~/.cache/evcsa)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    from evcsa.reproduction._cli import add_parser as add_reproduce

    add_reproduce(sub)
    from evcsa.evaluation._cli import add_parser as add_evaluate

    add_evaluate(sub)
    return parser


def _version() -> str:
    import evcsa

    return evcsa.__version__


def _apply_overrides(config, args):  # type: ignore[no-untyped-def]
    import attrs

    from evcsa.errors import ConfigError

    changes = {}
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


def _shape(config) -> str:  # type: ignore[no-untyped-def]
    """"2 defenses × 3 adversaries, 4 games each"."""
    from evcsa._text import counted

    return (f"{counted(len(config.defenses), 'defense')} × "
            f"{counted(len(config.adversaries), 'adversary', 'adversaries')}, {counted(config.runs, 'game')} each")


@contextlib.contextmanager
def _naming(source: str) -> Iterator[None]:
    """Puts the configuration's source in front of every ConfigError raised inside (at
    check time and at run time alike: "t.toml: data.samples: expected …")."""
    from evcsa.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        if exc.message.startswith(f"{source}: "):
            raise
        raise ConfigError(f"{source}: {exc.message}", **exc.details) from exc


def _checked(config, source: str):  # type: ignore[no-untyped-def]
    """check_config, with the configuration's source in front of the message."""
    from evcsa.experiments import check_config

    with _naming(source):
        check_config(config)
    return config


#: Rough training times of the reference models (2 CPU cores), for the notice.
_TRAINING_TIME = {"mnist": "about 1–2 minutes", "digits": "a few seconds"}


def _training_notice(name: str, cache_dir: str | None) -> str:
    """The line ``evcsa train`` says before it trains a reference model (play, demo and
    reproduce train nothing: the reference models ship with their weights)."""
    from evcsa.models import resolve_cache_dir

    took = _TRAINING_TIME.get(name, "once")
    return (f"evcsa: training the {name} reference model ({took}, once; then cached in "
            f"{resolve_cache_dir(cache_dir)}) …")


def _run(config, args, out, source: str) -> int:  # type: ignore[no-untyped-def]
    import shutil

    from evcsa._text import printable
    from evcsa.errors import InvalidParameter
    from evcsa.experiments import run_experiment
    from evcsa.report import publish_results
    from evcsa.experiments.store import RunStore
    from evcsa.report import format_table

    config = _checked(_apply_overrides(config, args), source)
    if args.resume is not None and args.output is not None and \
            pathlib.Path(args.resume).resolve() != pathlib.Path(args.output).resolve():
        raise InvalidParameter(f"--output: expected the --resume directory or nothing, got {args.output!r} beside "
                               f"--resume {args.resume!r}")
    if args.resume is not None:
        _check_resumable(args.resume)
    output = pathlib.Path(args.resume or args.output or _default_output(config.name))
    if args.quiet:
        out = _Silent()
    store = RunStore.open(output, config, overwrite=args.overwrite,
                          recompute_corrupt=getattr(args, "recompute_corrupt", False))
    config = store.config  # with the run's master key (drawn now, or the stored one on resume)
    committed = 0
    try:
        progress = False if (args.no_progress or args.quiet) else None
        start = time.perf_counter()
        print(f"evcsa: {printable(config.name)}: {_shape(config)}, N = {config.game.n_chosen}", file=out, flush=True)
        if store.attempt > 1:
            print(f"  resuming {output}/ (attempt {store.attempt}): {len(store.done())} units stored",
                  file=out, flush=True)
        from evcsa.report import reproducibility_notice

        notice = reproducibility_notice(config)
        if notice and not args.quiet:
            print(notice, file=sys.stderr, flush=True)

        def say(line: str) -> None:
            store.log(printable(line))
            print(f"  {printable(line)}", file=out, flush=True)

        with _naming(source):
            result = run_experiment(config, progress=progress, cache_dir=args.cache_dir, log=say, store=store)
        written = publish_results(result, output, command=["evcsa", *sys.argv[1:]] if args.argv is None
                                  else ["evcsa", *args.argv], store=store)
        store.log(f"results written: {', '.join(written)}")
        store.close("complete")
    except BaseException as exc:
        committed = len(store.done()) if store._db is not None else 0
        store.close("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        if committed == 0 and store.created:
            shutil.rmtree(output, ignore_errors=True)  # nothing to resume: leave no directory
        elif isinstance(exc, KeyboardInterrupt):
            print(f"evcsa: interrupted; {committed} finished units kept in {output}/ — rerun the same "
                  f"command (or evcsa play --resume {output}) to finish", file=sys.stderr)
            return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise
    print("", file=out)
    print(format_table(result), file=out)
    print(f"\nresults: {output}/ ({_listing(written)}) — {time.perf_counter() - start:.0f} s",
          file=out, flush=True)
    return 0


class _Silent:
    """Standard output under --quiet."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _listing(names: Sequence[str]) -> str:
    """"results.json, …, summary.txt, 4 figures" (or "…; no figures")."""
    from evcsa._text import counted

    files = [n for n in names if not n.endswith(".png") and n != "SHA256SUMS"]  # the digests: not a result
    pictures = sum(n.endswith(".png") for n in names)
    return ", ".join(files) + (f", {counted(pictures, 'figure')}" if pictures else "; no figures")


def _check_resumable(path: str) -> None:
    """``--resume DIR`` finishes a run: DIR must hold one (a missing directory is an
    error, not a new run).

    Raises:
        InvalidParameter: DIR does not exist or is not an evcsa run directory.
    """
    from evcsa.errors import InvalidParameter
    from evcsa.experiments.store import DATABASE

    where = pathlib.Path(path)
    if not where.exists():
        raise InvalidParameter(f"--resume: expected an evcsa run directory to finish, got {path!r}: no such "
                               "directory (start a new run with -o DIR)", path=path)
    if not (where / DATABASE).is_file():
        raise InvalidParameter(f"--resume: expected an evcsa run directory to finish, got {path!r}: no "
                               f"{DATABASE} in it", path=path)


def _demo(args, out) -> int:  # type: ignore[no-untyped-def]
    from evcsa.config import parse_config
    from evcsa.experiments import DEMO_TOML

    if args.print_config:
        print(DEMO_TOML, end="", file=out)
        return 0
    return _run(parse_config(DEMO_TOML, source="<demo>"), args, out, "<demo>")


def _play(args, out) -> int:  # type: ignore[no-untyped-def]
    from evcsa.config import load_config, parse_config

    if args.config is None:
        from evcsa.experiments.store import RunStore

        _check_resumable(args.resume)
        source = f"{args.resume}/config"
        # the stored copy names its base_dir (the original file's directory); older ones do not
        config = parse_config(RunStore.config_text(args.resume), source=source, base_dir=args.resume)
    else:
        source = args.config
        config = load_config(args.config)
    if args.check:
        checked = _checked(_apply_overrides(config, args), source)
        from evcsa.experiments.checks import check_inputs

        with _naming(source):  # reference models ship their weights: the data is checked against the model
            check_inputs(checked, cache_dir=args.cache_dir)
        print(f"{source}: OK ({_shape(checked)})", file=out)
        return 0
    return _run(config, args, out, source)


def _show(args, out) -> int:  # type: ignore[no-untyped-def]
    from evcsa.report import show

    show(args.dir, figures=not args.no_figures, figures_dir=args.figures_dir,
         out=lambda line: print(line, file=out, flush=True))
    return 0


def _train(args, out) -> int:  # type: ignore[no-untyped-def]
    from evcsa.models import REFERENCE_CONFIGS, check_cache_dir, load_reference, load_shipped, reference_model

    if args.name not in REFERENCE_CONFIGS:
        from evcsa.models import _config_for

        _config_for(args.name)  # raises: the name has no recipe
    config = REFERENCE_CONFIGS[args.name]
    cached = None if args.retrain else load_reference(config, cache_dir=args.cache_dir)
    if cached is None:
        check_cache_dir(args.cache_dir)
        print(_training_notice(args.name, args.cache_dir), file=out, flush=True)
    model = reference_model(config, cache_dir=args.cache_dir, retrain=args.retrain,
                            progress=False if args.no_progress else None)
    info = model.info
    state = "cached" if cached is not None else f"trained in {info['train_seconds']:.0f} s"
    print(f"{args.name}: {info['config']['architecture']}, {info['parameters']:,} parameters, "
          f"test accuracy {100 * info['test_accuracy']:.1f} % on {info['test_set']} ({state})", file=out)
    print(f"cache: {info['weights_path']}", file=out)
    shipped, shipped_info = load_shipped(args.name)
    ours = model.module.state_dict()
    diff = max(float((ours[k].cpu() - v).abs().max()) for k, v in shipped.state_dict().items())
    made = shipped_info.get("origin_details", {})
    where = f"{made.get('threads', '?')} thread(s) on {made.get('cpu', '?')}, torch {made.get('torch', '?')}"
    print(f"shipped weights ({shipped_info['weights_file']}, test accuracy "
          f"{100 * shipped_info['test_accuracy']:.1f} %, trained with {where}): "
          + ("identical" if diff == 0.0 else f"different (largest difference {diff:.2g}; float32 training "
                                             "changes with the CPU and the thread count)"), file=out)
    return 0


class _PipeSafe:
    """Standard output that survives a closed pipe (``evcsa play … | head``): once the reader
    has gone, the rest is dropped and the run goes on to write its results."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_pipe = True
        try:  # so that the interpreter's own flush at exit does not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evcsa`` console script.

    Returns:
        0 on success, 2 for a bad configuration, data or parameter (one line on stderr),
        130 when interrupted.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "play" and args.config is None and args.resume is None:
        parser.error("play: expected CONFIG.toml or --resume DIR")
    args.argv = None if argv is None else list(argv)
    out = _PipeSafe(sys.stdout)
    # Before torch loads: idle OpenMP threads sleep instead of spinning, which keeps a run
    # fast on a machine shared with other work (measured 2-3x faster on 2 loaded cores).
    # An explicit OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from evcsa.errors import EvcsaError, InvalidParameter

    try:
        threads = getattr(args, "threads", None)
        if threads is not None:
            if threads < 1:
                raise InvalidParameter(f"--threads: expected an integer ≥ 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        import signal

        def terminate(signum: int, frame: Any) -> None:
            raise Terminated()

        previous = None
        with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone
            previous = signal.signal(signal.SIGTERM, terminate)
        try:
            if args.command == "demo":
                return _demo(args, out)
            if args.command == "play":
                return _play(args, out)
            if args.command == "show":
                return _show(args, out)
            if args.command == "reproduce":
                from evcsa.reproduction._cli import reproduce

                return reproduce(args, out)
            if args.command == "evaluate":
                from evcsa.evaluation._cli import evaluate_command

                return evaluate_command(args, out)
            return _train(args, out)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except EvcsaError as exc:
        from evcsa._text import printable

        print(f"evcsa: error: {printable(exc.message if hasattr(exc, 'message') else str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print("evcsa: interrupted; no results written", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
