"""The one writer and the one reader of a unit's arrays (evcsa.experiments.unit_files)."""

from __future__ import annotations

import numpy as np
import pytest

from evcsa.errors import CorruptStore
from evcsa.experiments.unit_files import read_unit_arrays, unit_file, write_unit_arrays


def test_arrays_round_trip_through_the_writer_and_the_reader(tmp_path):
    arrays = {"x_adv": np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 1, 3, 4),
              "sources": np.arange(3, dtype=np.int64), "failed": np.array([True, False, True])}
    path = unit_file(tmp_path, "ab" * 32)
    path.parent.mkdir()
    write_unit_arrays(path, arrays)
    back = read_unit_arrays(path, "craft fgsm")
    assert sorted(back) == sorted(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file stays"


def test_a_failed_write_leaves_no_file(tmp_path):
    class Unsavable:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("disk gone mid-write")

    path = tmp_path / "k.npz"
    with pytest.raises(RuntimeError, match="disk gone mid-write"):
        write_unit_arrays(path, {"a": np.zeros(3), "b": Unsavable()})
    assert list(tmp_path.iterdir()) == []


def test_a_missing_or_damaged_file_is_a_corrupt_store_naming_the_unit(tmp_path):
    with pytest.raises(CorruptStore, match=r"expected the arrays of unit 'play a × b', got no such file"):
        read_unit_arrays(tmp_path / "missing.npz", "play a × b")
    path = tmp_path / "k.npz"
    write_unit_arrays(path, {"a": np.arange(1000, dtype=np.int64)})
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(CorruptStore, match=r"expected the arrays of unit 'u', got a damaged file .*--recompute-corrupt"):
        read_unit_arrays(path, "u")
