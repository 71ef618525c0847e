"""Does every game of a cell draw fresh defense randomness? (issue 27 item 0)

Plays one cell — randomized squeezing × graybox FGSM, the same crafted samples in every game —
through the experiment engine twice: in play units of 25 games (the engine's chunking) and in
one unit of all games, and prints for each how many distinct label rows its games gave, how
many games of the second chunk repeat the first chunk's labels bit for bit, and whether the
two runs agree. With fresh randomness per game the two runs are identical and no game
replays another; a defense rebuilt from the cell's first key in every chunk makes games
25–49 copy games 0–24.

    python scripts/check_fresh_randomness.py                  # MNIST, median 2×2 δ 0.5, 50 games
    python scripts/check_fresh_randomness.py --squeezer bit-depth-1 --delta 0.2 --runs 75
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import tempfile

import numpy as np

from evcsa.config import parse_config
from evcsa.experiments import run_experiment, units
from evcsa.experiments.store import RunStore, SubmittedSamples

CONFIG = """
name = "fresh-randomness"
seed = 7
runs = {runs}
master_key = "{key}"
legitimate_draws = 1
[data]
dataset = "{dataset}"
samples = {samples}
[model]
reference = "{dataset}"
[game]
n_chosen = {n}
epsilon = 0.3
[[defenses]]
label = "randomized"
kind = "randomized_squeezing"
squeezer = "{squeezer}"
delta = {delta}
[[adversaries]]
label = "graybox FGSM"
kind = "graybox_transfer"
attack = "fgsm"
[figures]
enabled = false
"""


def rows(config, directory: pathlib.Path, games_per_chunk: int) -> list[tuple[int, ...]]:
    plan = units.plan_units
    units.plan_units = functools.partial(plan, games_per_chunk=games_per_chunk)
    try:
        with RunStore.open(directory, config) as store:
            run_experiment(store.config, progress=False, store=store)
    finally:
        units.plan_units = plan
    s = SubmittedSamples.load(directory, "randomized", "graybox FGSM")
    return [tuple(s.labels[s.games == g].tolist()) for g in range(config.runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "digits"))
    parser.add_argument("--squeezer", default="median-2x2")
    parser.add_argument("--delta", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--n", type=int, default=25)
    args = parser.parse_args()
    config = parse_config(CONFIG.format(runs=args.runs, key="c0ffee" * 10 + "c0ff", dataset=args.dataset,
                                        samples=args.samples, n=args.n, squeezer=args.squeezer,
                                        delta=args.delta))
    with tempfile.TemporaryDirectory() as tmp:
        chunked = rows(config, pathlib.Path(tmp) / "chunks", units.GAMES_PER_CHUNK)
        whole = rows(config, pathlib.Path(tmp) / "whole", args.runs)
    k = units.GAMES_PER_CHUNK
    for name, r in (("chunks of 25", chunked), (f"one chunk of {args.runs}", whole)):
        repeats = sum(r[i] == r[i - k] for i in range(k, len(r)))
        print(f"{name:>16}: {len(set(r))} distinct label rows of {len(r)}; "
              f"{repeats} of {len(r) - k} games after the first chunk repeat game i − {k} bit for bit")
    print(f"the two runs agree game for game: {chunked == whole}")
    print(f"label agreement between game i and game i − {k} (chunks): "
          f"{np.mean([np.mean(np.array(a) == np.array(b)) for a, b in zip(chunked[k:], chunked)]):.3f}")


if __name__ == "__main__":
    main()
