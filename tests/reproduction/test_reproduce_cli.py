"""``evcsa reproduce … --quick`` end to end (on the 8×8 digits and their small model, so
the suite never trains the MNIST model; about 15 s)."""

from __future__ import annotations

import json

import pytest

from evcsa import cli


def test_mix_n_squeeze_quick_end_to_end(tmp_path, capsys, digits_cache) -> None:
    out = tmp_path / "repro"
    rc = cli.main(["reproduce", "mix-n-squeeze", "--quick", "--data", "digits", "--cache-dir", str(digits_cache),
                   "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for title in ("Table 1:", "Table 2:", "Table 3:", "Figures 5–7:", "Known gaps"):
        assert title in text
    assert "not comparable to the papers'" in text
    table1 = text[text.index("Table 1:"):text.index("Table 2:")]
    row = next(line for line in table1.splitlines() if line.startswith("none legitimate"))
    assert "99.43" in row and row.split()[-1] == "classifications"  # ours [CI], the seed's 99.43, diff, inside
    assert "96.05±1.61" in text and "(1.00)" in text                  # Table 3's bit-depth row
    assert (out / "reproduction.txt").read_text().startswith("evcsa reproduce mix-n-squeeze")
    t3 = json.loads((out / "table3.json").read_text())["data"]
    assert set(t3) == {"bit-depth-1 δ=0.2", "bit-depth-1", "median-2x2 δ=0.5", "median-2x2", "median-3x3 δ=0.5",
                       "median-3x3"}
    assert all(len(v["adversarial BPDA+EOT"]) == len(v["adversarial APGD-EOT"]) == 2   # 2 repetitions (quick)
               for v in t3.values())
    figures = json.loads((out / "figures.json").read_text())["data"]
    assert {p["attack"] for p in figures} >= {"fgsm", "cw_linf_next"} and {p["delta"] for p in figures} == {0.0, 0.5}
    assert (out / "mix-n-squeeze-table1" / "results.json").is_file()
    # the model's provenance: in the reproduction's record and in every run's results
    from evcsa.models import SHIPPED

    meta = json.loads((out / "reproduction.json").read_text())
    assert meta["model"]["reference"] == "digits" and meta["model"]["source"] == "shipped"
    assert meta["model"]["weights_sha256"] == SHIPPED["digits"].sha256
    assert f"model digits: shipped weights evcsa/models_data/digits.npz (SHA-256 {SHIPPED['digits'].sha256})" in text
    results = json.loads((out / "mix-n-squeeze-table1" / "results.json").read_text())
    assert results["model"]["weights_sha256"] == SHIPPED["digits"].sha256 and results["model"]["source"] == "shipped"
    # the printed tables come back from the stored results, row for row
    from evcsa.reproduction import format_result, load_result

    again = format_result(load_result(out))
    assert again == (out / "reproduction.txt").read_text().rstrip("\n")
    assert again.split("\n\n", 1)[1] in text


def test_randomized_squeezing_quick_part_and_estimate(tmp_path, capsys, digits_cache) -> None:
    rc = cli.main(["reproduce", "randomized-squeezing", "--quick", "--data", "digits", "--part", "whitebox",
                   "--cache-dir", str(digits_cache), "-o", str(tmp_path / "repro")])
    text = capsys.readouterr().out
    assert rc == 0 and "BPDA+EOT" in text and "crop 0.75 × BPDA" in text and "region r=0.2" in text
    rc = cli.main(["reproduce", "randomized-squeezing", "--quick", "--estimate", "--data", "digits",
                   "--cache-dir", str(digits_cache)])
    text = capsys.readouterr().out
    assert rc == 0 and "predicted total:" in text and "craft cw_l2_next" in text and "classify with region" in text


def test_unknown_part_is_one_line(tmp_path, capsys, digits_cache) -> None:
    rc = cli.main(["reproduce", "mix-n-squeeze", "--quick", "--data", "digits", "--part", "table9",
                   "--cache-dir", str(digits_cache), "-o", str(tmp_path / "repro")])
    assert rc == 2 and "expected a part" in capsys.readouterr().err


def test_the_model_option(tmp_path, capsys) -> None:
    """--model picks the reference model (the plan's default otherwise); a model for other
    data is one line; a non-default model gets its own default directory."""
    from evcsa.cli.reproduce import default_output
    from evcsa.reproduction.plans import build_plan

    rc = cli.main(["reproduce", "mix-n-squeeze", "--quick", "--data", "digits", "--model", "mnist",
                   "-o", str(tmp_path / "repro")])
    assert rc == 2 and "expected a model for data 'digits', got 'mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "mix-n-squeeze", "--model", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err
    assert default_output(build_plan("mix-n-squeeze")) == "reproduce-mix-n-squeeze"
    assert default_output(build_plan("mix-n-squeeze", model="mnist")) == "reproduce-mix-n-squeeze-mnist"
    assert default_output(build_plan("randomized-squeezing", scale="quick", data="digits")) == \
        "reproduce-randomized-squeezing-quick-digits"


def test_the_device_option(tmp_path, capsys, digits_cache, monkeypatch) -> None:
    """--device puts every configuration of the plan on that device (and into every unit's
    key); a bad device is refused; cuda on a machine without one is one line."""
    from evcsa.errors import InvalidParameter
    from evcsa.reproduction.plans import build_plan

    plan = build_plan("mix-n-squeeze", scale="quick", data="digits", device="cuda")
    assert {c.device for p in plan.parts for c in p.configs} == {"cuda"}
    assert {c.device for p in build_plan("mix-n-squeeze").parts for c in p.configs} == {"cpu"}
    with pytest.raises(InvalidParameter, match=r"expected device in \('cpu', 'cuda', 'auto'\), got 'tpu'"):
        build_plan("mix-n-squeeze", device="tpu")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = cli.main(["reproduce", "randomized-squeezing", "--quick", "--data", "digits", "--part", "whitebox",
                   "--device", "cuda", "--cache-dir", str(digits_cache), "-o", str(tmp_path / "repro")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "device: expected a machine with CUDA for 'cuda', got none" in err
