"""Regenerate docs/reproducing.md's generated section and its figures from a full run.

    python scripts/update_reproducing_doc.py [RUN_DIR]

RUN_DIR is the directory of ``evcsa reproduce mix-n-squeeze -o RUN_DIR`` (default: the
committed copy, docs/results/mix-n-squeeze). Its stored results (reproduction.json and one
<part>.json per part; not the run directories with their units) are copied into
docs/results/mix-n-squeeze/, the page's section between its markers is rewritten from them
(evcsa.reproduction.document), and Figures 5–7 of C&W L∞ next are drawn into docs/figures/.
tests/reproduction/test_reproducing_doc.py checks that the page matches the committed results.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "results" / "mix-n-squeeze"
PAGE = ROOT / "docs" / "reproducing.md"


def main(argv: list[str]) -> int:
    from evcsa.reproduction import load_result
    from evcsa.reproduction.document import draw_figures, generated_section, replace_section

    source = pathlib.Path(argv[0]) if argv else COMMITTED
    if source.resolve() != COMMITTED.resolve():
        COMMITTED.mkdir(parents=True, exist_ok=True)
        for name in ("reproduction.json", "reproduction.txt", "table1.json", "table2.json", "table3.json",
                     "figures.json"):
            shutil.copyfile(source / name, COMMITTED / name)
    result = load_result(COMMITTED)
    PAGE.write_text(replace_section(PAGE.read_text(encoding="utf-8"), generated_section(result)), encoding="utf-8")
    for path in draw_figures(result, ROOT / "docs" / "figures"):
        print(path.relative_to(ROOT))
    print(PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
