"""The prepared GPU check of `evcsa reproduce … --device cuda` (issue 25 item 4), one script.

    python scripts/check_gpu_reproduction.py [--out DIR] [--full-part table1 --full-part table3]

1. Names the card (torch.cuda), or stops with exit status 3 where there is none.
2. Runs `evcsa reproduce mix-n-squeeze --quick --data digits` on the CPU and on CUDA under one
   master key and compares every printed comparison row: the deterministic rows must agree
   (attacks take gradients, so float differences between the devices may still move a
   sample: each differing row is printed), the randomized ones are compared by their
   intervals.
3. Times each `--full-part` (default: Table 1 and Table 3, the parts issue 25 asks for) at
   full scale with `--device cuda`, beside the seconds of the same part in the committed CPU
   run (docs/results/mix-n-squeeze/<part>.json, 2 cores).

Nothing in the test suite depends on a GPU; this script is what a session with a lent GPU
runs, and docs/performance.md gets its figures (with the card's name).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _reproduce(args: list[str]) -> tuple[int, str, float]:
    from evcsa import cli

    out = io.StringIO()
    start = time.perf_counter()
    old = sys.stdout
    sys.stdout = out
    try:
        rc = cli.main(["reproduce", *args])
    finally:
        sys.stdout = old
    return rc, out.getvalue(), time.perf_counter() - start


def _rows(text: str) -> dict[str, str]:
    """The comparison rows of a printed reproduction: label → the rest of the line."""
    rows = {}
    for line in text.splitlines():
        if " × " in line or line.startswith(("none ", "bit-depth", "median")):
            head, _, rest = line.partition("  ")
            rows[head.strip()] = rest.strip()
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(os.environ.get("OUT") or tempfile.mkdtemp()))
    ap.add_argument("--full-part", action="append", dest="parts", metavar="ID",
                    help="a part of mix-n-squeeze to time at full scale on CUDA (default: table1, table3)")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 3
    print(f"card: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    args.out.mkdir(parents=True, exist_ok=True)
    quick = {}
    for device in ("cpu", "cuda"):
        where = args.out / f"quick-{device}"
        shutil.rmtree(where, ignore_errors=True)
        if device == "cuda":  # the same master key: the same keyed noise on both devices
            where.mkdir()
            shutil.copy(args.out / "quick-cpu" / "master-key", where / "master-key")
        rc, text, seconds = _reproduce(["mix-n-squeeze", "--quick", "--data", "digits", "--device", device,
                                        "-o", str(where)])
        print(f"quick {device}: exit {rc}, {seconds:.1f} s")
        if rc != 0:
            print(text[-2000:])
            return 1
        quick[device] = _rows(text)
    same = [k for k in quick["cpu"] if quick["cpu"][k] == quick["cuda"].get(k)]
    differ = [k for k in quick["cpu"] if k not in same]
    print(f"quick: {len(same)} of {len(quick['cpu'])} rows identical on cpu and cuda")
    for k in differ:
        print(f"  differs: {k}\n    cpu  {quick['cpu'][k]}\n    cuda {quick['cuda'].get(k)}")
    results = ROOT / "docs/results/mix-n-squeeze"
    cpu_seconds = {p: json.loads((results / f"{p}.json").read_text()).get("seconds")
                   for p in json.loads((results / "reproduction.json").read_text())["parts"]}
    for part in args.parts or ["table1", "table3"]:
        rc, text, seconds = _reproduce(["mix-n-squeeze", "--part", part, "--device", "cuda",
                                        "-o", str(args.out / f"full-{part}")])
        base = cpu_seconds.get(part)
        ratio = f", {base / seconds:.1f}× the committed CPU run's {base:.0f} s" if base else ""
        print(f"full {part} on cuda: exit {rc}, {seconds:.0f} s{ratio}")
        (args.out / f"full-{part}.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
