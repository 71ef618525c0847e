"""Engine benchmark: ``--jobs 2`` (a local process pool) against serial on a study of 8 cells,
and the crafting count.

    python benchmarks/bench_engine.py [--runs 200] [--queries 200] [--jobs 2] [--cache-dir DIR]

The study: the 8×8 digits reference model (trained into the cache on first use, a few
seconds), X_D of 100, N = 10; 4 defenses (bit depth 1 and median 2×2, each deterministic and
randomized at δ = 0.3) × 2 adversaries (graybox BIM, A* BIM with q Classify draws per
candidate), R games per cell, no figures. The defaults are the seeds' precision (R = 200
games, q = 200 draws); the start-up of the workers (about 3 s here) is a fixed cost, so a
study of a few seconds (``--runs 100 --queries 40``: 11 s serial) shows a smaller speed-up
with the start-up counted. Both runs happen here, one after the other, into
fresh run directories: serial (1 torch thread) and a pool of ``--jobs`` spawn/forkserver workers
(1 torch thread each). Two pool figures: including the start of its workers (import torch,
load the model and X_D in each), and the run alone on warmed workers. The stored units of
both runs are compared bit for bit. On a machine shared with other work both sides see the
same load; the ratio is what to read.

Target (issue 10): speed-up ≥ 1.7× on 2 cores; each graybox attack crafted once per run
(2 crafting units for 8 cells: one per adversary, shared by the 4 defenses).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3
import tempfile
import time
import _shared  # noqa: F401,I001  (puts evcsa on sys.path)

import numpy as np
import torch

from evcsa.config import parse_config
from evcsa.experiments import run_experiment
from evcsa.experiments.executors import PoolExecutor, SerialExecutor
from evcsa.experiments.store import RunStore
from evcsa.experiments.unit_files import read_unit_arrays, unit_file

STUDY = """
name = "bench-engine"
seed = 11
runs = {runs}
legitimate_draws = 1
[data]
dataset = "digits"
samples = 100
[model]
reference = "digits"
[game]
n_chosen = 10
epsilon = 0.3
[[defenses]]
label = "bit-depth-1"
kind = "feature_squeezing"
squeezers = "bit-depth-1"
[[defenses]]
label = "bit-depth-1 δ=0.3"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.3
[[defenses]]
label = "median-2x2"
kind = "feature_squeezing"
squeezers = "median-2x2"
[[defenses]]
label = "median-2x2 δ=0.3"
kind = "randomized_squeezing"
squeezer = "median-2x2"
delta = 0.3
[[adversaries]]
label = "graybox BIM"
kind = "graybox_transfer"
attack = "bim"
[[adversaries]]
label = "A* BIM q={queries}"
kind = "greedy_a_star"
attack = "bim"
queries_per_candidate = {queries}
[figures]
enabled = false
"""


def _stored(path: str) -> dict[str, tuple]:
    db = sqlite3.connect(f"{path}/evcsa-run.sqlite")
    rows = db.execute("SELECT key, kind, record, arrays FROM units").fetchall()
    db.close()
    out = {}
    for key, kind, record, has in rows:
        arrays = read_unit_arrays(unit_file(pathlib.Path(path), key), key) if has else {}
        out[key] = (kind, json.loads(record), arrays)
    return out


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k][:2] == b[k][:2] and a[k][2].keys() == b[k][2].keys()
        and all(np.array_equal(a[k][2][n], b[k][2][n]) for n in a[k][2]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="games per cell (default 200)")
    parser.add_argument("--queries", type=int, default=200, help="A*'s Classify draws per candidate (default 200)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = parse_config(STUDY.format(runs=args.runs, queries=args.queries))
    from evcsa.experiments.inputs import load_inputs

    load_inputs(config, cache_dir=args.cache_dir)  # trains the digits model once if needed
    with tempfile.TemporaryDirectory() as tmp:
        times, results = {}, {}
        start = time.perf_counter()
        with RunStore.open(f"{tmp}/serial", config) as store:
            results["serial"] = run_experiment(config, progress=False, store=store, executor=SerialExecutor(),
                                               cache_dir=args.cache_dir)
        times["serial"] = time.perf_counter() - start
        start = time.perf_counter()
        pool = PoolExecutor(args.jobs, threads=1)
        try:
            warmed = pool.warm(config, args.cache_dir)
            times["start-up"] = time.perf_counter() - start
            with RunStore.open(f"{tmp}/pool", config) as store:
                results["pool"] = run_experiment(config, progress=False, store=store, executor=pool,
                                                 cache_dir=args.cache_dir)
        finally:
            pool.close()
        times["pool"] = time.perf_counter() - start - times["start-up"]
        serial, pooled = results["serial"], results["pool"]
        same = _identical(_stored(f"{tmp}/serial"), _stored(f"{tmp}/pool"))
    units = serial.environment["units"]
    cells = len(serial.cells)
    print(f"torch {torch.__version__}; {cells} cells × {args.runs} games; {units['units']} units")
    total = times["start-up"] + times["pool"]
    print(f"serial: {times['serial']:.1f} s; --jobs {args.jobs}: {times['pool']:.1f} s on warmed workers "
          f"({warmed} answered; start-up {times['start-up']:.1f} s)")
    print(f"speed-up: {times['serial'] / times['pool']:.2f}× on warmed workers, "
          f"{times['serial'] / total:.2f}× with the start-up (target ≥ 1.7× on 2 cores)")
    print(f"crafting: {units['craftings']} adversarial sets crafted for {cells} cells "
          f"({len(config.adversaries)} graybox adversaries, each crafted once; per-cell crafting would be {cells})")
    print(f"stored units identical on both executors: {same}; "
          f"successes equal: {[c.successes for c in serial.cells] == [c.successes for c in pooled.cells]}")


if __name__ == "__main__":
    main()
