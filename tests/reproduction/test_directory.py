"""A reproduction's directory (evcsa.reproduction.directory): the plan's master key drawn
once and read back, recorded atomically; the repetitions' keys derived from it; the
marker; and --overwrite's refusal outside a reproduction directory."""

from __future__ import annotations

import stat

import pytest

from evcsa._files import umask_mode
from evcsa.errors import InvalidParameter, KeyStreamError
from evcsa.reproduction.directory import KEY_FILE, MARKER, derived_key, discard_runs, is_reproduction_directory, \
    key_label, plan_key, write_marker


def test_the_plan_key_is_drawn_once_and_kept(tmp_path) -> None:
    key = plan_key(tmp_path / "repro")
    assert len(key) == 64 and int(key, 16) >= 0
    assert plan_key(tmp_path / "repro") == key  # read back for resumption
    path = tmp_path / "repro" / KEY_FILE
    assert path.read_text(encoding="ascii") == key + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == umask_mode()  # as the plain write before atomic_write gave it
    assert [p.name for p in (tmp_path / "repro").iterdir()] == [KEY_FILE]  # no temporary file left


def test_a_damaged_plan_key_is_refused(tmp_path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key\n", encoding="ascii")
    with pytest.raises(KeyStreamError, match="expected a master key as 64 hex digits"):
        plan_key(tmp_path)


def test_repetitions_run_under_derived_keys() -> None:
    master = "ab" * 32
    assert derived_key(master, None) == master
    keys = {derived_key(master, key_label("table3", "repetitions", i)) for i in range(3)}
    assert len(keys) == 3 and master not in keys and all(len(k) == 64 for k in keys)
    assert derived_key(master, "table3/repetition-1") == derived_key(master, "table3/repetition-1")
    assert key_label("table1", "cells", 0) is None and key_label("table3", "repetitions", 1) == "table3/repetition-2"


def test_the_marker_makes_a_reproduction_directory(tmp_path) -> None:
    assert not is_reproduction_directory(tmp_path)
    write_marker(tmp_path)
    assert is_reproduction_directory(tmp_path) and (tmp_path / MARKER).is_file()


def test_overwrite_refuses_a_directory_of_other_runs(tmp_path) -> None:
    (tmp_path / "somebody-elses-run").mkdir()
    (tmp_path / "somebody-elses-run" / "evcsa-run.marker").write_text("x")
    with pytest.raises(InvalidParameter, match="expected a reproduction directory to overwrite"):
        discard_runs(tmp_path)
    assert (tmp_path / "somebody-elses-run").is_dir()
