"""``evcsa evaluate DEFENSE [KEY=VALUE …] [--budget quick|standard|FILE.toml] [--estimate] [-o DIR]``:
the parser and the handler of a defense's evaluation against the standard suite
(evcsa.evaluation).

The evaluation (torch) loads when the command runs, not for ``evcsa --help``: that import
sits in the handler.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import re
import sys
import warnings
from typing import Any

from evcsa.cli.output import TextOutput
from evcsa.errors import ConfigError, EvaluationWarning

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["add_parser", "evaluate_command", "parse_params"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "evaluate", help="evaluate a defense: the standard adversary suite, the worst-case advantage, the checks",
        description="Play the standard suite chosen from what the defense declares (graybox transfer of the "
                    "strongest attacks, A*, BPDA+EOT where it is differentiable, EOT where it is randomized, "
                    "DiscreteSearch where it quantizes) and the ensemble of all of it; write report.md, the figures "
                    "and results.json into the run directory and print a short summary, with a named warning for "
                    "each check that says the evaluation cannot be trusted.")
    p.add_argument("defense", metavar="DEFENSE",
                   help="a defense kind (none, feature_squeezing, randomized_squeezing, cropping_rescaling, "
                        "region_based) or your own as package.module:Name (a .py file in the current directory is "
                        "found)")
    p.add_argument("params", metavar="KEY=VALUE", nargs="*",
                   help="the defense's parameters, values in TOML (delta=0.5 squeezer=median-2x2)")
    p.add_argument("--model", metavar="M", help="the undefended model: mnist (default), digits, or package.module:Name")
    p.add_argument("--data", metavar="D",
                   help="mnist (default, embedded), digits, a .npz file or package.module:Name")
    p.add_argument("--split", default="test", help="split of the embedded data (default: test)")
    p.add_argument("--budget", default="standard", metavar="B",
                   help="quick (seconds on digits), standard (the seed's settings; default) or a TOML file of "
                        "budget fields")
    p.add_argument("--estimate", action="store_true", help="predict the evaluation's time on this machine and exit")
    p.add_argument("-n", "--n-chosen", type=int, metavar="N", help="N, chosen samples per game (default 25)")
    p.add_argument("--tau", type=float, default=1.0, help="τ of Adv(N, τ) (default 1)")
    p.add_argument("--epsilon", metavar="E", help="ε on the [0, 1] scale, or none (default 0.3)")
    p.add_argument("--norm", choices=("linf", "l2", "l0"), help="the norm of ε (default linf)")
    p.add_argument("--goal", choices=("untargeted", "targeted"), help="the goal (default untargeted)")
    p.add_argument("--knowledge", choices=("graybox", "whitebox"), help="the adversary's knowledge (default "
                                                                         "whitebox)")
    p.add_argument("-o", "--output", metavar="DIR", help="run directory (default: results/evaluate-<defense>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the adversaries' coins (default 0)")
    p.add_argument("--master-key", metavar="HEX",
                   help="64 hex digits the defense's keys derive from (default: drawn and recorded)")
    p.add_argument("--label", help="the defense's name in the report")
    p.add_argument("--cache-dir", metavar="DIR", help="model cache (default: $EVCSA_CACHE or ~/.cache/evcsa)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-figures", action="store_true", help="no figures")
    p.add_argument("--threads", type=int, metavar="T", help="torch threads (default: torch's choice)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors and the warnings")
    return p


def _value(text: str) -> Any:
    """A parameter value read as TOML (0.5, true, [1, 2], "x"), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["delta=0.5", "squeezer=median-2x2"]`` → ``{"delta": 0.5, "squeezer": "median-2x2"}``.

    Raises:
        ConfigError: an item without "=" or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"defense parameter: expected KEY=VALUE, got {item!r}", key="params")
        out[key.strip()] = _value(value.strip())
    return out


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    """The game's rules the options set (-n, --epsilon, --norm, --goal, --knowledge).

    Raises:
        ConfigError: --epsilon neither a number nor none.
    """
    rules: dict[str, Any] = {}
    if args.n_chosen is not None:
        rules["n_chosen"] = args.n_chosen
    if args.epsilon is not None:
        if args.epsilon.lower() == "none":
            rules["epsilon"] = None
        else:
            try:
                rules["epsilon"] = float(args.epsilon)
            except ValueError:
                raise ConfigError(f"--epsilon: expected a number or none, got {args.epsilon!r}",
                                  key="epsilon") from None
    for name in ("norm", "goal", "knowledge"):
        if getattr(args, name) is not None:
            rules[name] = getattr(args, name)
    return rules


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "defense"


def evaluate_command(args: argparse.Namespace, out: TextOutput) -> int:
    """Run (or estimate) the evaluation ``args`` describes; print the summary to ``out``.

    Raises:
        EvcsaError: a bad defense, parameter, budget, rule, model or data (the CLI prints one line).
    """
    from evcsa.evaluation import estimate_evaluation, evaluate  # torch: not for --help

    params = parse_params(args.params)
    common = dict(params=params, model=args.model, data=args.data, split=args.split, rules=_rules(args),
                  budget=args.budget, cache_dir=args.cache_dir, base_dir=os.getcwd(), label=args.label)

    def say(line: str) -> None:
        if not args.quiet:
            print(f"  {line}", file=out, flush=True)

    if args.estimate:
        print(estimate_evaluation(args.defense, log=say, **common).text(), file=out)
        return 0
    output = args.output
    if output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        output = pathlib.Path("results") / f"evaluate-{_slug(args.label or args.defense)}-{stamp}"
    if not args.quiet:
        print(f"evcsa evaluate: {args.defense} (budget {args.budget}) → {output}/", file=out, flush=True)
    progress = False if (args.no_progress or args.quiet) else None
    with warnings.catch_warnings():  # the summary states each fired check with what to do
        warnings.simplefilter("ignore", EvaluationWarning)
        evaluation = evaluate(args.defense, tau=args.tau, output=output, overwrite=args.overwrite, seed=args.seed,
                              master_key=args.master_key, progress=progress, log=say, figures=not args.no_figures,
                              command=["evcsa", *(args.argv if args.argv is not None else sys.argv[1:])], **common)
    if args.quiet:
        for c in evaluation.warnings:
            print(f"evcsa: WARNING {c.name}: {c.finding}", file=sys.stderr)
        return 0
    print("", file=out)
    print(evaluation.summary(), file=out)
    print(f"\nreport: {pathlib.Path(output) / 'report.md'} (results.json, figures, per_sample.csv beside it)", file=out,
          flush=True)
    return 0
