"""The smallest run configuration of the engine's tests: the 8×8 digits model, X_D of 20,
N = 3, 4 games, one cell, no figures (a run takes about a second); and a reader of a run
directory's finished units."""

from __future__ import annotations

import json
import pathlib
import sqlite3

from evcsa.experiments.unit_files import read_unit_arrays, unit_file

TINY = """
name = "tiny"
seed = 5
runs = 4
master_key = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
legitimate_draws = 1
[data]
dataset = "digits"
samples = 20
[model]
reference = "digits"
[game]
n_chosen = 3
epsilon = 0.3
[[defenses]]
label = "plain"
kind = "none"
[[adversaries]]
label = "fgsm"
kind = "graybox_transfer"
attack = "fgsm"
[figures]
enabled = false
"""


def stored_units(path: pathlib.Path) -> dict[str, tuple]:
    """Every finished unit of a run directory: key → (kind, record, arrays)."""
    db = sqlite3.connect(path / "evcsa-run.sqlite")
    rows = db.execute("SELECT key, kind, record, arrays FROM units").fetchall()
    db.close()
    out = {}
    for key, kind, record, has in rows:
        arrays = read_unit_arrays(unit_file(path, key), key) if has else {}
        out[key] = (kind, json.loads(record), arrays)
    return out
