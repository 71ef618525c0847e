"""Attack strength on the reference MNIST CNN (issue 4 "Done when"), slow.

Runs scripts/check_attack_strength.py's checks: on the first 100 test digits the reference
model classifies correctly, adversarial accuracy FGSM ≤ 54 %, BIM ≤ 9 %, each C&W variant
≤ 5 % (seed 002 Table 1 "None" row), and BPDA+EOT at ε = 0.3 (L∞) against deterministic
feature squeezing ≤ 5 %. C&W L∞ and L0 run with 100 iterations per constant (the
script's ``--budget``; the other settings are the reference ones).

Deterministic (fixed model, samples and seeds). Takes tens of minutes on 2 CPU cores, so
it runs only with ``EVCSA_SLOW=1``::

    EVCSA_SLOW=1 python -m pytest -m slow tests/attacks/test_attack_strength.py
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("EVCSA_SLOW") != "1", reason="slow: set EVCSA_SLOW=1 to run"),
]

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "check_attack_strength.py"


def _script():
    spec = importlib.util.spec_from_file_location("check_attack_strength", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def figures():
    pytest.importorskip("evcsa.models")
    script = _script()
    return script.run(list(script.BOUNDS), budget=True), script.BOUNDS


@pytest.mark.parametrize("name", ["fgsm", "bim", "cw_linf_next", "cw_linf_ll", "cw_l2_next", "cw_l2_ll",
                                  "cw_l0_next", "cw_l0_ll", "bpda_eot_median_2x2"])
def test_attack_is_as_strong_as_seed_002_table_1(name, figures):
    results, bounds = figures
    row = results[name]
    assert row["adversarial_accuracy"] <= bounds[name], row
    assert row["gradient_flagged"] == 0 and row["failed"] == 0


@pytest.mark.xfail(reason="1-bit squeezing can flip only pixels in (0.2, 0.8] at ε = 0.3 L∞; even the "
                          "continuous relaxation of every reachable binarised image leaves about 78 % of "
                          "the digits correct (see the closing note of issue 4)", strict=False)
def test_bpda_eot_against_one_bit_squeezing(figures):
    results, bounds = figures
    assert results["bpda_eot_bit_depth_1"]["adversarial_accuracy"] <= bounds["bpda_eot_bit_depth_1"]
