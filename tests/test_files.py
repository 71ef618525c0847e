"""The one atomic writer (evcsa._files.atomic_write) and the mode it gives files."""

from __future__ import annotations

import os
import stat

import pytest

from evcsa._files import atomic_write, umask_mode


def test_text_and_bytes_are_written_whole(tmp_path):
    atomic_write(tmp_path / "a.txt", lambda fh: fh.write("δ = 0.2\n"), mode="w")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "δ = 0.2\n"
    atomic_write(tmp_path / "b.bin", lambda fh: fh.write(b"\x00\x01"))
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"], "no temporary file stays"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")

    def fails(fh):
        fh.write("half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fails, mode="w")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_permissions_follow_the_umask_when_asked(tmp_path):
    old = os.umask(0o027)
    try:
        assert umask_mode() == 0o640
        atomic_write(tmp_path / "f", lambda fh: fh.write(b"x"), permissions=umask_mode())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640
    atomic_write(tmp_path / "g", lambda fh: fh.write(b"x"))
    assert stat.S_IMODE((tmp_path / "g").stat().st_mode) == 0o600  # mkstemp's, without permissions
