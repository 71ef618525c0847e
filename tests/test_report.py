"""evcsa.report and evcsa.plots on synthetic results: the files, their round trip, the
table, the figures' content, and the atomic write."""

from __future__ import annotations

import csv
import json
import pathlib

import attrs
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import evcsa
from evcsa import plots, report
from evcsa.config import parse_config
from evcsa.errors import InvalidParameter
from evcsa.experiments import CellResult, ExampleImages, ExperimentResult, SweepPoint
from evcsa.stats import BinomialEstimate
from evcsa.stats import advantage_exact

CONFIG = """
name = "synthetic"
runs = 4
[game]
n_chosen = 3
epsilon = 0.3
[[defenses]]
label = "bd1"
kind = "feature_squeezing"
squeezers = "bit-depth-1"
[[defenses]]
label = "bd1 δ=0.2"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.2
[[adversaries]]
label = "graybox"
kind = "graybox_transfer"
[[adversaries]]
label = "A*"
kind = "greedy_a_star"
[figures]
n_values = [1, 2, 3, 5]
deltas = [0.0, 0.2]
"""


def validate(doc):
    """results.json against the schema shipped in the package (jsonschema: the test extra)."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) validates results.json")
    schema = report.results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)


def _cell(defense, adversary, successes, p_hat=None):
    n = 3
    total = sum(successes)
    wins = sum(s == n for s in successes)
    cell = dict(
        defense=defense, adversary=adversary, runs=len(successes), n_chosen=n, successes=tuple(successes),
        success_rate=BinomialEstimate.from_counts(total, n * len(successes)),
        advantage={"1.0": BinomialEstimate.from_counts(wins, len(successes))},
        adversarial_accuracy=BinomialEstimate.from_counts(n * len(successes) - total, n * len(successes)),
        submissions=3.0, classify_queries=0.0 if p_hat is None else 40.0, stale_queries=0, seconds=0.5)
    if p_hat is not None:
        top = sorted(p_hat, reverse=True)[:n]
        cell.update(p_hat=tuple(p_hat), p_hat_sources=tuple(range(len(p_hat))), p_hat_draws=40,
                    advantage_exact={"1.0": advantage_exact(top, 1.0)},
                    log_advantage_exact={"1.0": float(np.log(np.prod(top))) if np.prod(top) > 0 else None})
    return CellResult(**cell)


def _sweep_point(delta, p):
    p = np.asarray(p)
    exact = {str(n): float(np.prod(np.sort(p)[::-1][:n])) for n in (1, 2, 3, 5)}
    return SweepPoint(squeezer="bit-depth-1", delta=delta, legitimate_accuracy=BinomialEstimate.from_counts(95, 100),
                      adversarial_accuracy=BinomialEstimate.from_counts(round(100 * (1 - p.mean())), 100),
                      p_hat=tuple(float(v) for v in p), advantage_exact=exact)


@pytest.fixture
def result():
    config = parse_config(CONFIG)
    g = torch.Generator().manual_seed(0)
    images = {k: torch.rand(3, 1, 8, 8, generator=g) for k in ("original", "adversarial", "randomized", "squeezed")}
    examples = ExampleImages(**images, labels={"true": (1, 2, 3), "original": (1, 2, 3), "adversarial": (4, 2, 5),
                                               "squeezed": (1, 2, 5)},
                             defense="bd1 δ=0.2", squeezer="bit-depth-1", delta=0.2)
    cells = (
        _cell("bd1", "graybox", [1, 1, 1, 1]),
        _cell("bd1", "A*", [3, 3, 3, 3], p_hat=[1, 1, 1, 0, 0, 0]),
        _cell("bd1 δ=0.2", "graybox", [1, 2, 0, 1]),
        _cell("bd1 δ=0.2", "A*", [3, 2, 3, 1], p_hat=[0.9, 0.8, 0.7, 0.2, 0.1, 0.0]),
    )
    sweep = (_sweep_point(0.0, [1, 1, 1, 0, 0, 0]), _sweep_point(0.2, [0.9, 0.8, 0.7, 0.2, 0.1, 0.0]))
    return ExperimentResult(config=config, cells=cells,
                            legitimate={"bd1": BinomialEstimate.from_counts(98, 100), "bd1 δ=0.2": BinomialEstimate.from_counts(190, 200)},
                            sweep=sweep, examples=examples,
                            data={"samples": "digits[test][:6]", "n_samples": 6, "legitimate": "digits[test]",
                                  "n_legitimate": 100},
                            model={"name": "digits"}, environment={"torch": torch.__version__}, seconds=1.5)


def test_summary_rows_and_table(result):
    rows = report.summary_rows(result)
    assert [(r["defense"], r["adversary"]) for r in rows] == [
        ("bd1", "graybox"), ("bd1", "A*"), ("bd1 δ=0.2", "graybox"), ("bd1 δ=0.2", "A*")]
    a_star = rows[3]
    assert a_star["success_rate"] == pytest.approx(9 / 12)
    assert a_star["advantage"] == pytest.approx(2 / 4)
    assert a_star["plugin_advantage"] == pytest.approx(0.9 * 0.8 * 0.7)
    assert a_star["legitimate_accuracy"] == pytest.approx(0.95)
    assert rows[0]["plugin_advantage"] is None and a_star["expected_advantage"] is None
    table = report.format_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["defense", "adversary"] and "Adv(3,1) [95% CI]" in lines[0]
    assert "0.750 [" in lines[5] and "0.504" in lines[5] and "95.0" in lines[5]
    assert "4 games per cell, N = 3, τ = 1" in table and "(2 draws per image" in table
    one = attrs.evolve(result, config=attrs.evolve(result.config, runs=1, legitimate_draws=1))
    assert "1 game per cell" in report.format_table(one) and "(1 draw per image" in report.format_table(one)


def test_write_results_writes_every_file_and_reads_back(result, tmp_path):
    written = []
    out = report.write_results(result, tmp_path / "run", progress=written.append)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["results.json", "results.csv", "games.csv", "sweep.csv", "config.toml",
                            "summary.txt", "examples.npz", "SHA256SUMS", *plots.FIGURES])
    assert sorted(written) == names, "progress hears of every file"
    for name in plots.FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "evcsa-results/2" and len(doc["cells"]) == 4
    validate(doc)
    assert doc["command"] is None and doc["evcsa_version"] == evcsa.__version__
    assert doc["examples"]["labels"]["adversarial"] == [4, 2, 5] and doc["examples"]["attack"] == "bim"
    assert doc["cells"][3]["log_advantage_exact"]["1.0"] == pytest.approx(np.log(0.504))
    assert doc["cells"][1]["log_advantage_exact"]["1.0"] == pytest.approx(0.0)
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and float(rows[3]["advantage"]) == pytest.approx(0.5)
    with open(out / "games.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 16
    with open(out / "sweep.csv") as fh:
        header = next(csv.reader(fh))
    assert "plugin_advantage_N3" in header and not [h for h in header if "exact" in h]
    with np.load(out / "examples.npz") as arrays:
        assert arrays["labels_adversarial"].tolist() == [4, 2, 5] and arrays["labels_adversarial"].dtype == np.int64
    back = report.read_results(out)
    assert back.cells == result.cells and back.sweep == result.sweep
    import attrs

    assert back.legitimate == result.legitimate
    assert attrs.evolve(back.config, base_dir=".") == result.config  # equal up to base_dir
    assert torch.equal(back.examples.squeezed, result.examples.squeezed)
    assert parse_config((out / "config.toml").read_text()).defenses == result.config.defenses
    assert (out / "summary.txt").read_text().strip() == report.format_table(result)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_figures_follow_the_configuration(result, tmp_path):
    """[figures] enabled = false (what --no-figures sets) means no PNG at all, the heatmap
    included, unless figures=True asks for them; figures=False drops them."""
    off = attrs.evolve(result, config=attrs.evolve(result.config, figures=attrs.evolve(
        result.config.figures, enabled=False)))
    for res, figures, name, pngs in [(off, None, "off", []), (off, True, "forced", list(plots.FIGURES)),
                                     (result, False, "dropped", []), (result, None, "on", list(plots.FIGURES))]:
        out = report.write_results(res, tmp_path / name, figures=figures)
        assert sorted(p.name for p in out.glob("*.png")) == sorted(pngs), name
        assert (out / "results.json").exists()


def test_a_failed_write_leaves_nothing(result, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "save_figures", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_results(result, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_existing_directories_are_kept_unless_overwritten(result, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(InvalidParameter, match=r"run: expected a new results directory, got an existing one"):
        report.write_results(result, out)
    assert (out / "old.txt").exists()
    with pytest.raises(InvalidParameter, match=r"expected a results directory evcsa wrote to overwrite, got a "
                                               r"directory evcsa did not create"):
        report.write_results(result, out, overwrite=True)  # not a results directory: never deleted
    assert (out / "old.txt").read_text() == "keep me"
    (out / "results.json").write_text("{}")  # now it is one (an earlier run's)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(plots, "save_figures", broken)
        with pytest.raises(RuntimeError):
            report.write_results(result, out, overwrite=True)
    assert (out / "old.txt").read_text() == "keep me", "a failed overwrite keeps the old results"
    report.write_results(result, out, overwrite=True, figures=False)
    assert not (out / "old.txt").exists() and (out / "results.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameter, match=r"expected a results directory, got an existing file"):
        report.check_output(tmp_path / "file", overwrite=True)


@pytest.mark.skipif(not pathlib.Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_unwritable_place_is_refused_before_the_run():
    """os.access says yes to root everywhere; /proc refuses every new directory, even root's.
    The check must try, so a run is refused before its work, not after it."""
    with pytest.raises(InvalidParameter, match=r"^/proc: cannot write the results directory there \("):
        report.check_output("/proc/evcsa-results")


def test_read_results_errors(tmp_path):
    with pytest.raises(InvalidParameter, match=r"expected a results directory with results.json"):
        report.read_results(tmp_path)
    (tmp_path / "results.json").write_text('{"format": "other"}')
    with pytest.raises(InvalidParameter, match=r"expected format evcsa-results/1 or evcsa-results/2, got 'other'"):
        report.read_results(tmp_path)


def test_save_figures_skips_what_is_missing(result, tmp_path):
    import attrs

    bare = attrs.evolve(result, sweep=(), examples=None,
                        cells=tuple(attrs.evolve(c, p_hat=None) for c in result.cells))
    assert [p.name for p in plots.save_figures(bare, tmp_path)] == [
        "success_rate_distribution.png", "advantage_vs_tau.png", "games_advantage_vs_n.png"]
    only_cells = attrs.evolve(result, sweep=(), examples=None)
    assert [p.name for p in plots.save_figures(only_cells, tmp_path)] == [
        "fig7_error_heatmap.png", "success_rate_distribution.png", "advantage_vs_tau.png", "games_advantage_vs_n.png"]
    assert isinstance(plots.plot_error_heatmap(result.cells), Figure)


def test_estimates_print_with_their_interval():
    from evcsa.stats import BinomialEstimate, format_interval

    e = BinomialEstimate.from_counts(44, 100)
    assert str(e) == "0.440 [0.341, 0.543]" and f"{e}" == str(e)
    assert f"{e:.1%}" == "44.0% [34.1%, 54.3%]"
    assert repr(e) == "BinomialEstimate(successes=44, trials=100, value=0.44, low=0.3408, high=0.5428, alpha=0.05)"
    assert BinomialEstimate.from_dict(e.to_dict()) == e and json.loads(json.dumps(e.to_dict())) == e.to_dict()
    assert e.level == pytest.approx(0.95)
    tiny = BinomialEstimate.from_counts(0, 100_000)
    assert str(tiny) == "0.000 [0.000, 3.7e-05]", "a tiny bound never prints as 0.000"
    assert format_interval(1e-7, 0.0, 2e-6) == "1e-07 [0.000, 2e-06]"
    with pytest.raises(InvalidParameter, match="expected a mapping with keys"):
        BinomialEstimate.from_dict({"value": 0.5})
    with pytest.raises(InvalidParameter, match="k ≤ n"):
        BinomialEstimate.from_dict({**e.to_dict(), "successes": 101})


def _repeat(successes, n=5):
    from evcsa.games.results import GameResult, RepeatResult

    games = tuple(GameResult(successes=s, n_chosen=n, submissions=n, classify_queries=0, stale_queries=0,
                             transcript=()) for s in successes)
    return RepeatResult(games, n)


def test_repeat_result_repr_and_the_success_rate_estimate():
    import warnings

    r = _repeat([5, 4, 5, 3])
    assert repr(r) == ("RepeatResult(runs=4, n_chosen=5, success_rate=0.850 [0.621, 0.968], "
                       "Adv(τ=1)=0.500 [0.068, 0.932], reused_preparation=True)")
    est = r.success_rate_interval()
    assert (est.successes, est.trials, est.value) == (17, 20, pytest.approx(r.mean))
    assert est == r.success_rate_estimate(), "the same estimate, whichever name"
    with pytest.warns(DeprecationWarning, match="unpacking it as \\(low, high\\) is deprecated"):
        low, high = est
    assert (low, high) == (est.low, est.high)
    with pytest.warns(DeprecationWarning):
        assert est[0] == est.low
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f"{est}" == "0.850 [0.621, 0.968]", "printing is not the deprecated use"
    assert repr(_repeat([])) == "RepeatResult(runs=0, n_chosen=5, reused_preparation=True)"


def test_a_run_with_os_entropy_keys_says_so_once_and_how_to_repeat_it(result):
    assert report.reproducibility_notice(result.config) is None or not result.config.reproducible
    on = attrs.evolve(result.config, reproducible=True)
    assert report.reproducibility_notice(on) is None
    off = attrs.evolve(result.config, reproducible=False)
    notice = report.reproducibility_notice(off)
    assert notice.startswith("evcsa: notice: defense keys come from OS entropy") and "\n" not in notice
    assert "set reproducible = true" in notice


def test_show_prints_the_summary_and_redraws_the_figures(result, tmp_path, capsys):
    from evcsa import cli

    out = report.write_results(result, tmp_path / "run", figures=False, command=["evcsa", "play", "s.toml"])
    assert not list(out.glob("*.png"))
    assert cli.main(["show", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("synthetic: written 20") and "command: evcsa play s.toml" in printed
    assert report.format_table(result) in printed
    assert sorted(p.name for p in out.glob("*.png")) == sorted(plots.FIGURES), "redrawn from results.json"
    assert cli.main(["show", str(out), "--no-figures"]) == 0
    assert "figures:" not in capsys.readouterr().out
    elsewhere = tmp_path / "figs"
    assert cli.main(["show", str(out), "--figures-dir", str(elsewhere)]) == 0
    assert len(list(elsewhere.glob("*.png"))) == len(plots.FIGURES)
    assert cli.main(["show", str(tmp_path / "nothing")]) == 2
    assert "expected a results directory with results.json" in capsys.readouterr().err


def test_csv_numbers_carry_no_float_noise(result, tmp_path):
    noisy = attrs.evolve(result, cells=tuple(attrs.evolve(c, seconds=0.1 + 0.2) for c in result.cells))
    out = report.write_results(noisy, tmp_path / "run", figures=False)
    text = (out / "results.csv").read_text()
    assert "0.30000000000000004" not in text and ",0.3\n" in text
    for name in ("results.csv", "games.csv", "sweep.csv"):
        for row in csv.reader((out / name).read_text().splitlines()[1:]):
            for field in row:
                digits = field.replace("-", "").replace(".", "").lstrip("0").split("e")[0]
                assert not field.replace(".", "").replace("-", "").replace("e", "").isdigit() or len(digits) <= 4, \
                    (name, field)


def test_the_command_line_says_once_when_a_run_cannot_be_repeated(tmp_path, monkeypatch, capsys, digits_cache):
    """reproducible = false: one notice line on stderr, saying how to repeat the run; the
    recorded command is the one given."""
    from evcsa import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    (tmp_path / "t.toml").write_text('''
name = "t"
runs = 2
reproducible = false
legitimate_draws = 1
[data]
dataset = "digits"
samples = 6
[model]
reference = "digits"
[game]
n_chosen = 2
epsilon = 0.3
[[defenses]]
kind = "feature_squeezing"
squeezers = "bit-depth-1"
[[adversaries]]
kind = "graybox_transfer"
attack = "fgsm"
''')
    argv = ["play", "t.toml", "--output", "res", "--no-progress", "--no-figures"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "notice" in line]
    assert len(notices) == 1 and "OS entropy" in notices[0] and "reproducible = true" in notices[0]
    doc = json.loads((tmp_path / "res" / "results.json").read_text())
    assert doc["command"] == ["evcsa", *argv]
    validate(doc)
    (tmp_path / "t.toml").write_text((tmp_path / "t.toml").read_text().replace("reproducible = false", ""))
    assert cli.main(["play", "t.toml", "--output", "res2", "--no-progress", "--no-figures"]) == 0
    assert "notice" not in capsys.readouterr().err
