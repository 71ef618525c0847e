"""Every ```python block in docs/*.md runs, in order, in one namespace per file.

A block whose info string is ``python skip`` is shown but not run (none should need it).
"""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```(\w[\w ]*)\n(.*?)^```", re.S | re.M)


def _blocks(path: pathlib.Path) -> list[tuple[int, str]]:
    text = path.read_text()
    out = []
    for m in BLOCK.finditer(text):
        info = m.group(1).split()
        if info[0] == "python" and "skip" not in info[1:]:
            out.append((text[: m.start()].count("\n") + 2, m.group(2)))
    return out


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_doc_code_blocks_run(path: pathlib.Path, tmp_path, monkeypatch, digits_cache) -> None:
    """The docs share the session's model cache (the digits model is trained once)."""
    blocks = _blocks(path)
    assert blocks, f"{path.name} has no python code block to run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    namespace: dict = {"__name__": f"docs.{path.stem}"}
    for line, code in blocks:
        exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
