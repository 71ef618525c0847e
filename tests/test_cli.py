"""The ``evcsa`` command: one-line errors with exit status 2 and nothing written for bad
configurations, data paths and parameters; a small end-to-end run on the 8×8 digits."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from evcsa import cli, experiments

ROOT = pathlib.Path(__file__).resolve().parent.parent

GOOD = """
name = "tiny"
seed = 1
runs = 4
legitimate_draws = 1

[data]
dataset = "digits"
samples = 30

[model]
reference = "digits"

[game]
n_chosen = 5
epsilon = 0.3

[[defenses]]
label = "bd1"
kind = "feature_squeezing"
squeezers = "bit-depth-1"

[[defenses]]
label = "bd1 δ=0.3"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.3

[[adversaries]]
label = "graybox FGSM"
kind = "graybox_transfer"
attack = "fgsm"

[[adversaries]]
label = "A* q=4"
kind = "greedy_a_star"
attack = "fgsm"
queries_per_candidate = 4
n_candidates = 12

[[adversaries]]
label = "BPDA+EOT"
kind = "bpda_eot"
steps = 3
eot_samples = 2

[figures]
n_values = [1, 2, 5, 10]
deltas = [0.0, 0.3]
draws = 3
attack = "fgsm"
examples = 3
"""


@pytest.fixture(autouse=True)
def _keep_environment(monkeypatch):
    """cli.main sets OMP_WAIT_POLICY (when unset) and --threads sets torch's thread count:
    restore both after each test."""
    import os

    import torch

    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    return tmp_path


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evcsa: error: ")
    return lines[0]


# (what to change in GOOD, the expected error text)
BAD_CONFIGS = [
    ("runs = 4", "runz = 4", r"tiny.toml: runz: unknown key"),
    ("runs = 4", "runs = -4", r"tiny.toml: runs: expected runs as an integer ≥ 1, got -4"),
    ("n_chosen = 5", "n_chosn = 5", r"tiny.toml: game.n_chosn: unknown key \(expected one of: n_chosen, .*\); "
                                    r"did you mean 'n_chosen'\?$"),
    ("[game]", "[gmae]", r"tiny.toml: gmae: unknown key \(expected one of: .*\); did you mean 'game'\?$"),
    ('squeezer = "bit-depth-1"', 'squezer = "bit-depth-1"',
     r"tiny.toml: defenses\[1\].squezer: unknown key for kind 'randomized_squeezing' \(expected one of: kind, "
     r"label, squeezer, delta\); did you mean 'squeezer'\?$"),
    ('kind = "greedy_a_star"', 'kind = "greedy_astar"',
     r"adversaries\[1\].kind: expected one of \(.*\), got 'greedy_astar'; did you mean 'greedy_a_star'\?$"),
    ("n_chosen = 5", "n_chosen = 5.5", r"tiny.toml: game.n_chosen: expected an integer, got 5.5"),
    ("delta = 0.3", "delta = 3.0", r"tiny.toml: defenses\[1\].delta: expected delta in \[0, 1\] \(pixel scale\), got 3.0"),
    ("queries_per_candidate = 4", "queries_per_candidat = 4",
     r"adversaries\[1\].queries_per_candidat: unknown key for kind 'greedy_a_star'"),
    ('attack = "fgsm"\nqueries', 'attack = "fgsn"\nqueries', r"adversaries\[1\].attack: expected an attack name"),
    ('dataset = "digits"', 'dataset = "nowhere/data.npz"\nsplit = "all"',
     r"data.dataset: .*nowhere/data.npz: no such file"),
    ('attack = "fgsm"\nqueries', 'attack = "fgsm"\nparams = {eps = 0.1}\nqueries',
     r"adversaries\[1\].*expected parameters of fgsm among .*got unknown \['eps'\]"),
    ('reference = "digits"', 'reference = "imagenet"',
     r"model.reference: expected one of \('mnist', 'digits', 'mnist-carlini-evademl'\)"),
    ('reference = "digits"', 'reference = "mnist-carlini-evademl"',
     r"model.reference: expected a model for data.dataset 'digits', got 'mnist-carlini-evademl', a model for 'mnist'"),
    ("epsilon = 0.3", "epsilon = = 0.3", r"tiny.toml: invalid TOML: .*\(at line \d+, column \d+\)"),
    # clashes between parts that each look fine, caught before any work (and by --check)
    ("n_chosen = 5", "n_chosen = 31", r"game.n_chosen: expected N ≤ data.samples = 30 under freshness 'source'"),
    ("samples = 30", "samples = 501", r"data.samples: expected at most 500 \(the size of digits\[test\], before "
                                      r"filtering\), got 501"),
    # found only at run time (the model must classify the samples first), named the same way
    ("samples = 30", "samples = 500", r"^evcsa: error: tiny.toml: data.samples: expected at most \d+ natural samples "
                                      r"from digits\[test\] \(after filtering\), got 500$"),
    ("epsilon = 0.3", 'epsilon = 0.3\nknowledge = "graybox"',
     r"adversaries\[2\] \(BPDA\+EOT\) in this \[game\]: expected whitebox knowledge for BPDAEOT, got graybox"),
    ("epsilon = 0.3", 'epsilon = 0.3\nknowledge = "blackbox"',
     r"adversaries\[0\] \(graybox FGSM\) in this \[game\]: expected graybox knowledge for GrayboxTransfer"),
    ("epsilon = 0.3", 'epsilon = 3\nnorm = "l0"', r"adversaries\[2\] .*expected an L∞ or L2 game \(or norm=...\), got norm 'l0'"),
]


@pytest.mark.parametrize("old, new, message", BAD_CONFIGS, ids=[b[2][:30] for b in BAD_CONFIGS])
def test_bad_configurations_fail_in_one_line_and_write_nothing(workdir, capsys, old, new, message):
    assert old in GOOD
    (workdir / "tiny.toml").write_text(GOOD.replace(old, new, 1))
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res")
    assert code == 2
    import re

    assert re.search(message, _one_line_error(err)), err
    assert not (workdir / "res").exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["tiny.toml"], "nothing half-written"


def test_bad_data_file_fails_before_any_work(workdir, capsys):
    (workdir / "data.npz").write_text("not numpy")
    (workdir / "tiny.toml").write_text(GOOD.replace('dataset = "digits"', 'dataset = "data.npz"\nsplit = "all"'))
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res", "--no-progress")
    assert code == 2
    assert "data.npz: cannot read as a .npz archive" in _one_line_error(err)
    assert not (workdir / "res").exists()


def test_weights_that_do_not_load_are_named_with_the_file(workdir, capsys):
    """A ConfigError found while running (here: loading the weights) names the
    configuration file like one found by the check."""
    (workdir / "w.pt").write_text("not a state dict")
    (workdir / "tiny.toml").write_text(GOOD.replace('reference = "digits"',
                                                    'architecture = "digits_cnn"\nweights = "w.pt"'))
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res", "--no-progress")
    assert code == 2
    assert _one_line_error(err).startswith(f"evcsa: error: tiny.toml: model.weights: {workdir}/w.pt: cannot load "
                                           f"as a digits_cnn state dict")
    assert not (workdir / "res").exists()


def test_missing_config_and_bad_options(workdir, capsys):
    code, _, err = _run(capsys, "play", "missing.toml")
    assert code == 2 and "missing.toml: no such file" in _one_line_error(err)
    (workdir / "tiny.toml").write_text(GOOD)
    code, _, err = _run(capsys, "play", "tiny.toml", "--runs", "0")
    assert code == 2 and "--runs: expected an integer ≥ 1, got 0" in _one_line_error(err)
    (workdir / "taken").mkdir()
    code, _, err = _run(capsys, "play", "tiny.toml", "--output", "taken")
    assert code == 2 and "taken: expected a new results directory, got an existing one" in _one_line_error(err)
    code, _, err = _run(capsys, "play", "tiny.toml", "--threads", "0")
    assert code == 2 and "--threads: expected an integer ≥ 1, got 0" in _one_line_error(err)
    code, _, err = _run(capsys, "train", "cifar")
    assert code == 2 and "expected a trainable reference model in ('mnist', 'digits'), got 'cifar'" in \
        _one_line_error(err)
    code, _, err = _run(capsys, "train", "mnist-carlini-evademl")
    assert code == 2 and ("got 'mnist-carlini-evademl' ('mnist-carlini-evademl' ships converted from published "
                          "weights; evcsa has no recipe to train it)") in _one_line_error(err)
    with pytest.raises(SystemExit) as info:
        cli.main(["play"])
    assert info.value.code == 2  # argparse: missing argument


def test_check_only(workdir, capsys):
    (workdir / "tiny.toml").write_text(GOOD)
    code, out, err = _run(capsys, "play", "tiny.toml", "--check", "--threads", "1")
    assert code == 0 and "tiny.toml: OK (2 defenses × 3 adversaries, 4 games each)" in out
    assert list(workdir.iterdir()) == [workdir / "tiny.toml"]
    # counted nouns, and the overrides count
    one = ('[game]\nn_chosen = 1\n[data]\ndataset = "digits"\n[model]\nreference = "digits"\n'
           '[[defenses]]\nkind = "none"\n[[adversaries]]\nkind = "graybox_transfer"\nattack = "fgsm"\n')
    (workdir / "one.toml").write_text(one)
    code, out, err = _run(capsys, "play", "one.toml", "--check", "--runs", "1")
    assert code == 0 and "one.toml: OK (1 defense × 1 adversary, 1 game each)" in out, err
    (workdir / "tiny.toml").write_text(GOOD.replace("epsilon = 0.3", 'epsilon = 0.3\nknowledge = "graybox"'))
    code, out, err = _run(capsys, "play", "tiny.toml", "--check")
    assert code == 2 and "expected whitebox knowledge for BPDAEOT, got graybox" in _one_line_error(err)


def test_a_bad_cache_dir_fails_before_any_training(workdir, capsys, monkeypatch):
    """--cache-dir or $EVCSA_CACHE where no model can be cached: evcsa train says so on one
    line naming the folder, exit 2, before any training and nothing written; play and
    demo need no cache (the reference models ship with their weights)."""
    from evcsa import models

    def no_training(*args, **kwargs):
        raise AssertionError("the cache directory must be checked before training")

    monkeypatch.setattr(models.cache, "train_reference", no_training)
    (workdir / "tiny.toml").write_text(GOOD)
    (workdir / "afile").write_text("x")
    for argv in (["train", "digits", "--cache-dir", "afile"], ["train", "digits", "--cache-dir", "afile/sub"]):
        code, out, err = _run(capsys, *argv)
        assert code == 2, argv
        assert _one_line_error(err) == (f"evcsa: error: expected a writable cache directory, got {argv[3]}: "
                                        f"{'afile is' if argv[3] == 'afile/sub' else 'it is'} not a directory")
    monkeypatch.setenv("EVCSA_CACHE", "afile")
    code, out, err = _run(capsys, "train", "digits")
    assert code == 2 and _one_line_error(err) == ("evcsa: error: expected a writable cache directory, got afile "
                                                  "(from $EVCSA_CACHE): it is not a directory")
    assert sorted(p.name for p in workdir.iterdir()) == ["afile", "tiny.toml"], "nothing written"
    code, out, err = _run(capsys, "play", "tiny.toml", "--check", "--cache-dir", "afile/sub")
    assert code == 0 and "tiny.toml: OK" in out, err


def test_a_cache_that_holds_the_model_need_not_be_writable(workdir, capsys, monkeypatch, digits_cache):
    """A shared, read-only cache with the trained model in it is fine: the folder is checked
    only when a model must be trained into it."""
    from evcsa import models

    def unwritable(path=None):
        raise AssertionError("a cache holding the model is not checked for writing")

    monkeypatch.setattr(models, "check_cache_dir", unwritable)
    (workdir / "tiny.toml").write_text(GOOD)
    code, out, err = _run(capsys, "play", "tiny.toml", "--check", "--cache-dir", str(digits_cache))
    assert code == 0, err
    code, out, err = _run(capsys, "train", "digits", "--cache-dir", str(digits_cache))
    assert code == 0, err


def test_play_and_demo_train_nothing(workdir, capsys, monkeypatch, tmp_path):
    """The reference models ship with their weights: a run on an empty cache trains nothing,
    says nothing about training, and leaves the cache alone."""
    from evcsa import models

    def no_training(*args, **kwargs):
        raise AssertionError("play and demo use the shipped weights")

    monkeypatch.setattr(models.cache, "train_reference", no_training)
    monkeypatch.setenv("EVCSA_CACHE", str(tmp_path / "empty-cache"))
    (workdir / "tiny.toml").write_text(GOOD)
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res", "--no-progress", "--no-figures")
    assert code == 0, err
    assert "training" not in out + err and not (tmp_path / "empty-cache").exists()
    results = json.loads((workdir / "res" / "results.json").read_text())
    assert results["model"]["source"] == "shipped" and results["model"]["weights_sha256"] == \
        models.SHIPPED["digits"].sha256

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", interrupted)
    code, out, err = _run(capsys, "demo", "--output", "demo-res")
    assert code == 130 and out.startswith("evcsa: demo: 4 defenses × 3 adversaries, 100 games each, N = 25")
    assert err.splitlines() == ["evcsa: interrupted; no results written"]


def test_train_reports_the_cached_model(workdir, capsys, digits_cache):
    """evcsa train shows the model trained here from the recipe, its cache file, and
    whether it is the shipped weights (here, on the machine that made them: identical)."""
    code, out, err = _run(capsys, "train", "digits", "--cache-dir", str(digits_cache))
    assert code == 0, err
    (json_path,) = digits_cache.glob("digits-*.json")
    info = json.loads(json_path.read_text())
    assert f"test accuracy {100 * info['test_accuracy']:.1f} %" in out and "(cached)" in out
    assert f"cache: {json_path.with_suffix('.pt')}" in out
    assert "shipped weights (evcsa/models_data/digits.npz, test accuracy 98.2 %, trained with 1 thread(s) on " in out


def test_demo_prints_its_configuration(capsys):
    code, out, _ = _run(capsys, "demo", "--print-config")
    assert code == 0 and out == experiments.DEMO_TOML


def test_interrupted_run_writes_nothing(workdir, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", interrupted)
    (workdir / "tiny.toml").write_text(GOOD)
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res")
    assert code == 130 and "interrupted; no results written" in err
    assert not (workdir / "res").exists()


def test_play_end_to_end_on_the_small_digits(workdir, capsys):
    """Every shipped adversary against a deterministic and a randomized defense, tiny
    budgets: the results directory holds the files and the table is printed."""
    (workdir / "tiny.toml").write_text(GOOD)
    code, out, err = _run(capsys, "play", "tiny.toml", "--output", "res", "--no-progress")
    assert code == 0, err
    res = workdir / "res"
    names = {p.name for p in res.iterdir()}
    assert {"results.json", "results.csv", "games.csv", "sweep.csv", "config.toml", "summary.txt",
            "fig4_examples.png", "fig5_accuracy_vs_delta.png", "fig6_advantage_vs_n.png",
            "fig7_error_heatmap.png"} <= names
    doc = json.loads((res / "results.json").read_text())
    assert len(doc["cells"]) == 6 and all(len(c["successes"]) == 4 for c in doc["cells"])
    a_star = [c for c in doc["cells"] if c["adversary"] == "A* q=4"]
    assert all(c["p_hat"] is not None and len(c["p_hat"]) == 12 for c in a_star)
    assert "evcsa: tiny: 2 defenses × 3 adversaries, 4 games each, N = 5" in out
    assert "training" not in out + err, "the model is cached"
    assert "Adv(5,1) [95% CI]" in out
    assert ("results: res/ (results.json, results.csv, games.csv, sweep.csv, config.toml, summary.txt, "
            "examples.npz, 7 figures) — ") in out
    assert (res / "summary.txt").read_text().strip() in out
    # the written configuration reproduces the run
    code, out2, err = _run(capsys, "play", str(res / "config.toml"), "--output", "again", "--no-progress",
                           "--no-figures")
    assert code == 0, err
    assert not list((workdir / "again").glob("*.png")), "--no-figures: no figure at all"
    assert "results: again/ (results.json, results.csv, games.csv, config.toml, summary.txt; no figures) — " in out2
    again = json.loads((workdir / "again" / "results.json").read_text())
    assert [c["successes"] for c in again["cells"]] == [c["successes"] for c in doc["cells"]]


def test_console_script_in_a_process(workdir):
    """`python -m evcsa.cli` as a user runs it: the exit status and the one line on stderr."""
    (workdir / "tiny.toml").write_text(GOOD.replace("runs = 4", "runs = 0"))
    proc = subprocess.run([sys.executable, "-m", "evcsa.cli", "play", "tiny.toml"], capture_output=True,
                          text=True, cwd=workdir, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "evcsa: error: tiny.toml: runs: expected runs as an integer ≥ 1, got 0"
    assert proc.stdout == ""


def test_a_closed_pipe_drops_the_output_and_the_run_still_writes_its_results(workdir, digits_cache):
    """`evcsa play … | head -1`: no BrokenPipeError traceback, exit 0, results written."""
    (workdir / "tiny.toml").write_text(GOOD.replace("runs = 4", "runs = 1"))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVCSA_CACHE": str(digits_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "evcsa.cli", "play", "tiny.toml", "--output", "res",
                             "--no-figures", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=workdir, env=env)
    assert proc.stdout.readline().startswith(b"evcsa: tiny:")
    proc.stdout.close()  # the reader goes away, as `head -1` does
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert (workdir / "res" / "results.json").is_file()
