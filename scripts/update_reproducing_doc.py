"""Regenerate a generated section of docs/reproducing.md (and seed 002's figures) from a full run.

    python scripts/update_reproducing_doc.py [--plan mix-n-squeeze|randomized-squeezing] [RUN_DIR]

RUN_DIR is the directory of ``evcsa reproduce PLAN -o RUN_DIR`` (default: the committed copy,
docs/results/PLAN). Its stored results (reproduction.json, reproduction.txt and one
<part>.json per part; not the run directories with their units) are copied into
docs/results/PLAN/, the page's section of that plan between its markers is rewritten from
them (evcsa.reproduction.document), and for mix-n-squeeze Figures 5–7 are drawn into
docs/figures/: as the paper draws them, from every attack's sweep (reproduce_fig5.png,
reproduce_fig6_<squeezer>.png, reproduce_fig7.png), and evcsa's own views of C&W L∞ next. tests/reproduction/test_reproducing_doc.py checks that the page
matches the committed results.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
from typing import IO, Any

from evcsa._files import atomic_write, umask_mode
from evcsa.reproduction import build_plan, load_result
from evcsa.reproduction.document import RESULTS, draw_figures, generated_section, replace_section

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reproducing.md"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", choices=tuple(RESULTS), default="mix-n-squeeze")
    ap.add_argument("run_dir", nargs="?", type=pathlib.Path)
    args = ap.parse_args(argv)
    committed = ROOT / RESULTS[args.plan]
    source = args.run_dir if args.run_dir is not None else committed
    if source.resolve() != committed.resolve():
        committed.mkdir(parents=True, exist_ok=True)
        parts = [p.id for p in build_plan(args.plan).parts]
        for name in ("reproduction.json", "reproduction.txt", *(f"{p}.json" for p in parts)):
            shutil.copyfile(source / name, committed / name)
    result = load_result(committed)
    section = generated_section(result)
    page = replace_section(PAGE.read_text(encoding="utf-8"), section, args.plan)

    def write(fh: IO[Any]) -> None:
        fh.write(page)

    atomic_write(PAGE, write, mode="w", permissions=umask_mode())
    if args.plan == "mix-n-squeeze":
        for path in draw_figures(result, ROOT / "docs" / "figures"):
            print(path.relative_to(ROOT))
    print(PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
