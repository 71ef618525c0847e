"""The reproduction's runs (evcsa.reproduction.run): the collapse of determined work
(issue 25) changes no number.

Seed 000's graybox part on ``--quick`` (8×8 digits, their small model; a few seconds) runs
twice under the same master key: with the collapse off (``EVCSA_COLLAPSE=0``: every game
of every cell played) and on (the cells of the undefended model and of median 2×2 without
randomness play one game per unit). Every comparison and every raw number is the same."""

from __future__ import annotations

import shutil

from evcsa.experiments import work
from evcsa.reproduction import build_plan
from evcsa.reproduction.run import run_plan


def test_the_collapsed_quick_run_gives_the_numbers_of_the_uncollapsed_one(tmp_path, digits_cache, monkeypatch):
    plan = build_plan("randomized-squeezing", scale="quick", data="digits")
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "0")
    full = run_plan(plan, output=tmp_path / "full", parts=["graybox"], cache_dir=str(digits_cache))
    (tmp_path / "once").mkdir()
    shutil.copy(tmp_path / "full" / "master-key", tmp_path / "once" / "master-key")  # the same keys
    monkeypatch.setenv(work.COLLAPSE_VARIABLE, "1")
    once = run_plan(plan, output=tmp_path / "once", parts=["graybox"], cache_dir=str(digits_cache))
    assert [p.id for p in once.parts] == ["graybox"]
    (a,), (b,) = full.parts, once.parts
    assert a.comparisons == b.comparisons
    assert a.data == b.data
    assert a.lines == b.lines
