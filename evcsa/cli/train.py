"""``evcsa train [NAME]``: train a reference model's recipe here, into the cache (or show the
cached one), and say whether it matches the shipped weights.

The models (torch) load when the command runs, not for ``evcsa --help``: that import sits in
the handler.
"""

from __future__ import annotations

import argparse

from evcsa.cli.output import TextOutput

__all__ = ["add_parser", "train", "training_notice"]

#: Rough training times of the reference models (2 CPU cores), for the notice.
TRAINING_TIME = {"mnist": "about 1–2 minutes", "digits": "a few seconds"}


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``sub``."""
    p = sub.add_parser("train", help="train a reference model's recipe here, into the cache (or show it)",
                       description="Train evcsa's recipe of a reference model on this machine and cache it; "
                                   "say whether it matches the shipped weights (float32 training differs "
                                   "across CPUs). Runs use the shipped weights; a model trained here is used "
                                   "with [model] architecture and weights = the cached .pt file.")
    p.add_argument("name", nargs="?", default="mnist", help="reference model: mnist (default) or digits")
    p.add_argument("--retrain", action="store_true", help="train even if cached")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="model cache (default: $EVCSA_CACHE or ~/.cache/evcsa)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def training_notice(name: str, cache_dir: str | None) -> str:
    """The line ``evcsa train`` says before it trains a reference model (play, demo and
    reproduce train nothing: the reference models ship with their weights)."""
    from evcsa.models import resolve_cache_dir  # torch: not for --help

    took = TRAINING_TIME.get(name, "once")
    return (f"evcsa: training the {name} reference model ({took}, once; then cached in "
            f"{resolve_cache_dir(cache_dir)}) …")


def train(args: argparse.Namespace, out: TextOutput) -> int:
    """``evcsa train``: the cached model of the recipe (or train it, ``--retrain`` always),
    its size and test accuracy, and how it compares with the shipped weights.

    Raises:
        InvalidParameter: a name with no recipe; a cache directory where nothing can be cached.
    """
    from evcsa import models  # torch: not for --help

    if args.name not in models.REFERENCE_CONFIGS:
        models.is_cached(args.name)  # raises: the name has no recipe
    config = models.REFERENCE_CONFIGS[args.name]
    cached = None if args.retrain else models.load_reference(config, cache_dir=args.cache_dir)
    if cached is None:
        models.check_cache_dir(args.cache_dir)
        print(training_notice(args.name, args.cache_dir), file=out, flush=True)
    model = models.reference_model(config, cache_dir=args.cache_dir, retrain=args.retrain,
                                   progress=False if args.no_progress else None)
    info = model.info
    state = "cached" if cached is not None else f"trained in {info['train_seconds']:.0f} s"
    print(f"{args.name}: {info['config']['architecture']}, {info['parameters']:,} parameters, "
          f"test accuracy {100 * info['test_accuracy']:.1f} % on {info['test_set']} ({state})", file=out)
    print(f"cache: {info['weights_path']}", file=out)
    shipped, shipped_info = models.load_shipped(args.name)
    ours = model.module.state_dict()
    diff = max(float((ours[k].cpu() - v).abs().max()) for k, v in shipped.state_dict().items())
    made = shipped_info.get("origin_details", {})
    where = f"{made.get('threads', '?')} thread(s) on {made.get('cpu', '?')}, torch {made.get('torch', '?')}"
    print(f"shipped weights ({shipped_info['weights_file']}, test accuracy "
          f"{100 * shipped_info['test_accuracy']:.1f} %, trained with {where}): "
          + ("identical" if diff == 0.0 else f"different (largest difference {diff:.2g}; float32 training "
                                             "changes with the CPU and the thread count)"), file=out)
    return 0
