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
    return _blocks_of(path.read_text())


def _blocks_of(text: str) -> list[tuple[int, str]]:
    out = []
    for m in BLOCK.finditer(text):
        info = m.group(1).split()
        if info[0] == "python" and "skip" not in info[1:]:
            out.append((text[: m.start()].count("\n") + 2, m.group(2)))
    return out


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_doc_code_blocks_run(path: pathlib.Path, tmp_path, monkeypatch, digits_cache) -> None:
    """The docs share the session's model cache (the digits recipe trained once; the docs
    themselves use the shipped weights)."""
    blocks = _blocks(path)
    assert blocks, f"{path.name} has no python code block to run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    namespace: dict = {"__name__": f"docs.{path.stem}"}
    for line, code in blocks:
        exec(compile(code, f"{path.name}:{line}", "exec"), namespace)


def test_readme_python_example_runs_on_the_small_digits(tmp_path, monkeypatch, digits_cache) -> None:
    """The README's example is the MNIST setting (about 45 s, a trained MNIST model): here it
    runs with the digits model, 20 samples, N = 5 and 3 games instead, so that a renamed
    function or argument fails the suite; its printed figures were measured by hand."""
    text = (DOCS.parent / "README.md").read_text()
    (code,) = [b for _, b in _blocks_of(text)]
    small = (code.replace('reference_model("mnist")', 'reference_model("digits", progress=False)')
             .replace('load_mnist("test").head(100)', 'load_digits("test").head(20)')
             .replace("from evcsa.data import load_mnist", "from evcsa.data import load_digits")
             .replace("n_chosen=25", "n_chosen=5").replace("runs=100", "runs=3"))
    assert small.count("digits") >= 3 and "runs=3" in small and "n_chosen=5" in small, "the example changed shape"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    namespace: dict = {"__name__": "readme"}
    exec(compile(small, "README.md", "exec"), namespace)
    assert namespace["result"].runs == 3
