"""evcsa.experiments: cells, legitimate accuracy, sweep and examples as pure functions of
the configuration; component registries and their one-line errors.

The games here use the small 8×8 digits model and tiny budgets; two stand-in adversaries
(subclasses of :class:`evcsa.adversaries.Adversary`) keep the cell tests independent of the
shipped strategies, which tests/test_cli.py runs end to end.
"""

from __future__ import annotations

import types

import attrs
import numpy as np
import pytest
import torch

from evcsa import experiments
from evcsa.adversaries import Adversary
from evcsa.config import ComponentSpec, parse_config
from evcsa.errors import ConfigError, DataError
from evcsa.experiments import (
    build_adversary,
    build_defense,
    check_config,
    load_inputs,
    run_cell,
    run_experiment,
    run_legitimate,
)
from evcsa.models import evaluate


@attrs.frozen(kw_only=True)
class Unchanged(Adversary):
    """Submits the first N natural samples unchanged: succeeds only where the defense
    errs on natural samples."""

    def play(self, oracles, knowledge):
        n = knowledge.n_chosen
        oracles.attack_batch(list(range(n)), knowledge.samples[:n])


@attrs.frozen(kw_only=True)
class NoisyEstimator(Adversary):
    """Adds uniform noise of size ``strength`` (within ε) to the first ``candidates``
    samples, estimates each one's success with ``draws`` Classify queries, submits the N
    best — an A*-like stand-in whose report carries p̂."""

    strength: float = 0.3
    candidates: int = 12
    draws: int = 4

    def prepare(self, knowledge):
        c = self.candidates
        x = knowledge.samples[:c]
        noise = (torch.rand(x.shape, generator=knowledge.generator) * 2 - 1) * self.strength
        return _Prepared(self, (x + noise).clamp(0, 1))

    def play(self, oracles, knowledge):  # pragma: no cover - always prepared first
        return self.prepare(knowledge).play(oracles, knowledge)


class _Prepared(Adversary):
    def __init__(self, spec, x_adv):
        self.spec, self.x_adv = spec, x_adv

    def play(self, oracles, knowledge):
        c, d = len(self.x_adv), self.spec.draws
        pred = oracles.classify(self.x_adv.repeat_interleave(d, dim=0)).view(c, d)
        hits = (pred != knowledge.labels[:c, None]).sum(dim=1).numpy()
        p = hits / d
        order = np.argsort(-p, kind="stable")[: knowledge.n_chosen]
        oracles.attack_batch(order.tolist(), self.x_adv[torch.as_tensor(order)])
        estimates = types.SimpleNamespace(values=p, draws=np.full(c, d))
        return types.SimpleNamespace(estimates=estimates, sources=np.arange(c), notes=("stand-in",),
                                     gradient_flagged=False)


@pytest.fixture
def stand_ins(monkeypatch):
    monkeypatch.setitem(experiments.ADVERSARIES, "unchanged", Unchanged)
    monkeypatch.setitem(experiments.ADVERSARIES, "noisy", NoisyEstimator)


BASE = """
name = "t"
seed = 3
runs = 6
legitimate_draws = 2
[data]
dataset = "digits"
samples = 40
[model]
reference = "digits"
[game]
n_chosen = 5
epsilon = 0.3
[[defenses]]
label = "plain"
kind = "none"
[[defenses]]
label = "rs"
kind = "randomized_squeezing"
squeezer = "bit-depth-1"
delta = 0.3
[[adversaries]]
label = "unchanged"
kind = "unchanged"
[[adversaries]]
label = "noisy"
kind = "noisy"
[figures]
enabled = false
"""


@pytest.fixture
def config(stand_ins, digits_cache, monkeypatch):
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    return parse_config(BASE)


def test_inputs_filter_correctly_classified_samples(config, digits_model):
    inputs = load_inputs(config)
    assert len(inputs.samples) == 40 and inputs.samples.image_shape == (1, 8, 8)
    assert bool((digits_model.predict(inputs.samples.images) == inputs.samples.labels).all())
    assert len(inputs.legitimate) == 500
    unfiltered = load_inputs(attrs.evolve(config, data=attrs.evolve(config.data, correctly_classified=False)))
    wrong = int((digits_model.predict(unfiltered.legitimate.images[:40]) != unfiltered.legitimate.labels[:40]).sum())
    assert unfiltered.dropped == 0
    assert inputs.dropped >= wrong  # every misclassified one before the 40th kept sample


def test_inputs_errors(config):
    big = attrs.evolve(config, data=attrs.evolve(config.data, samples=600))
    with pytest.raises(ConfigError, match=r"data.samples: expected at most \d+ natural samples"):
        load_inputs(big)
    few = attrs.evolve(config, data=attrs.evolve(config.data, samples=3))
    with pytest.raises(ConfigError, match=r"game.n_chosen: expected N ≤ \|X_D\| = 3"):
        load_inputs(few)


def test_cell_is_reproducible_and_counts_what_the_game_counts(config):
    first = run_cell(config, "rs", "noisy")
    again = run_cell(config, 1, 1)
    assert first.successes == again.successes and first.p_hat == again.p_hat
    assert first.runs == 6 and first.n_chosen == 5
    assert first.success_rate.value == pytest.approx(sum(first.successes) / 30)
    assert first.success_rate.low <= first.success_rate.value <= first.success_rate.high
    adv = first.advantage["1.0"]
    assert adv.successes == sum(s == 5 for s in first.successes) and adv.trials == 6
    assert first.p_hat is not None and len(first.p_hat) == 12 and first.p_hat_draws == 6 * 4
    assert set(first.advantage_exact) == {"1.0"}
    top = np.sort(np.asarray(first.p_hat))[::-1][:5]
    assert first.advantage_exact["1.0"] == pytest.approx(float(np.prod(top)))
    assert first.classify_queries == 12 * 4 and first.notes == ("stand-in",)
    other = run_cell(attrs.evolve(config, seed=4), "rs", "noisy")
    assert other.p_hat != first.p_hat, "another master seed gives other randomness"


def test_unchanged_samples_never_succeed_on_correctly_classified_x_d(config):
    cell = run_cell(config, "plain", "unchanged")
    assert cell.successes == (0,) * 6
    assert cell.adversarial_accuracy.value == 1.0
    assert cell.advantage["1.0"].value == 0.0 and cell.p_hat is None
    # per X_D sample: its submissions over the games, all labelled correctly, adding up to the pooled count
    assert sum(cell.sample_submissions) == cell.adversarial_accuracy.trials
    assert cell.sample_correct == cell.sample_submissions and len(cell.sample_correct) == config.data.samples


def test_legitimate_accuracy_of_a_deterministic_defense_is_the_models(config, digits_model):
    from evcsa.data import load_digits

    est = run_legitimate(config, "plain")
    assert est.value == pytest.approx(evaluate(digits_model, load_digits("test")))
    assert est.trials == 500, "a deterministic defense is classified once"
    assert run_legitimate(config, "rs").trials == 1000


def test_experiment_without_figures(config):
    lines = []
    result = run_experiment(config, progress=False, log=lines.append)
    assert [(c.defense, c.adversary) for c in result.cells] == [
        ("plain", "unchanged"), ("plain", "noisy"), ("rs", "unchanged"), ("rs", "noisy")]
    assert set(result.legitimate) == {"plain", "rs"}
    assert result.sweep == () and result.examples is None
    assert result.data["n_samples"] == 40 and result.model["name"] == "digits"
    assert any("legitimate accuracy" in line for line in lines)
    assert config.master_key is None and len(result.config.master_key) == 64  # drawn once, recorded


def test_cells_in_another_process_give_the_same_numbers(config):
    """A cell is a pure function of the configuration and its master key: a worker process
    gets the same numbers as this one (run_experiment records the key in the config it
    hands out; a bare config's key is drawn in each process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from evcsa.experiments.seeds import with_master_key

    config = with_master_key(config)
    here = run_cell(config, "rs", "unchanged")
    config = attrs.evolve(config, adversaries=config.adversaries[:1], defenses=config.defenses[1:])
    # "spawn": a forked child of a process whose torch threads ran can deadlock
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        # the worker registers nothing: it needs adversaries it can import
        result = pool.submit(_cell_in_worker, config).result()
    assert result.successes == here.successes
    assert result.success_rate == here.success_rate


def _cell_in_worker(config):
    experiments.ADVERSARIES["unchanged"] = Unchanged
    return run_cell(config, 0, 0, progress=False)


# -- registries and errors ---------------------------------------------------------------

def test_build_defense_errors_name_table_and_key(digits_model):
    from evcsa.randomness import DerivedKeys

    keys = DerivedKeys.from_seed(0)

    def build(kind, **params):
        return build_defense(ComponentSpec(kind=kind, params=params), digits_model, keys, where="defenses[2]")

    assert build("none") is digits_model
    assert build("randomized_squeezing", squeezer="median-2x2", delta=0.5).randomized
    with pytest.raises(ConfigError, match=r"^defenses\[2\].kind: expected one of \('none', .*got 'magic'"):
        build("magic")
    with pytest.raises(ConfigError, match=r"^defenses\[2\].detla: unknown key for kind 'randomized_squeezing' "
                                          r"\(expected one of: kind, label, squeezer, delta\)"):
        build("randomized_squeezing", squeezer="bit-depth-1", detla=0.2)
    with pytest.raises(ConfigError, match=r"^defenses\[2\].delta: required key missing"):
        build("randomized_squeezing", squeezer="bit-depth-1")
    with pytest.raises(ConfigError, match=r"^defenses\[2\].delta: expected delta in \[0, 1\] \(pixel scale\), got 2.0"):
        build("randomized_squeezing", squeezer="bit-depth-1", delta=2.0)
    with pytest.raises(ConfigError, match=r"^defenses\[2\]: expected a squeezer spec like"):
        build("feature_squeezing", squeezers="bit-depth-x")


def test_build_adversary_errors_name_table_and_key(stand_ins):
    assert isinstance(build_adversary(ComponentSpec(kind="noisy", params={"draws": 2})), NoisyEstimator)
    with pytest.raises(ConfigError, match=r"^adversaries\[0\].kind: expected one of"):
        build_adversary(ComponentSpec(kind="magic"), where="adversaries[0]")
    with pytest.raises(ConfigError, match=r"^adversaries\[1\].drawz: unknown key for kind 'noisy' "
                                          r"\(expected one of: kind, label, strength, candidates, draws\)"):
        build_adversary(ComponentSpec(kind="noisy", params={"drawz": 2}), where="adversaries[1]")


def test_check_config_catches_data_and_model_problems(config, tmp_path):
    check_config(config)
    bad = attrs.evolve(config, data=attrs.evolve(config.data, dataset="nowhere.npz", split="all"))
    with pytest.raises(ConfigError, match=r"data.dataset: .*nowhere.npz: no such file"):
        check_config(bad)
    with pytest.raises(ConfigError, match=r"data.dataset: expected one of \('mnist', 'digits'\) or a path"):
        check_config(attrs.evolve(config, data=attrs.evolve(config.data, dataset="cifar")))
    with pytest.raises(ConfigError, match=r"model.reference: expected one of \('mnist', 'digits', "
                                          r"'mnist-carlini-evademl'\), got 'x'"):
        check_config(attrs.evolve(config, model=attrs.evolve(config.model, reference="x")))


def test_user_data_and_weights(config, digits_model, tmp_path):
    from evcsa.data import load_digits

    load_digits("test").head(50).save_npz(tmp_path / "mine.npz")
    torch.save(digits_model.module.state_dict(), tmp_path / "w.pt")
    text = BASE.replace('dataset = "digits"', 'dataset = "mine.npz"\nsplit = "all"') \
               .replace('reference = "digits"', 'architecture = "digits_cnn"\nweights = "w.pt"')
    cfg_path = tmp_path / "exp.toml"
    cfg_path.write_text(text)
    from evcsa.config import load_config

    user = load_config(cfg_path)
    check_config(user)
    inputs = load_inputs(user)
    assert len(inputs.legitimate) == 50 and inputs.model_info["architecture"] == "digits_cnn"
    # the provenance of user weights: the file and its SHA-256
    import hashlib

    assert inputs.model_info["source"] == "file" and inputs.model_info["weights"] == str(tmp_path / "w.pt")
    assert inputs.model_info["weights_sha256"] == hashlib.sha256((tmp_path / "w.pt").read_bytes()).hexdigest()
    (tmp_path / "w.pt").write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match=r"model.weights: .*w.pt: cannot load as a digits_cnn state dict"):
        experiments.inputs._INPUTS.clear()
        load_inputs(user)
    (tmp_path / "mine.npz").write_text("garbage")
    experiments.inputs._INPUTS.clear()
    with pytest.raises(DataError, match=r"mine.npz: cannot read as a .npz archive"):
        load_inputs(user)


def test_the_old_module_name_is_gone():
    """evcsa.experiment, the deprecated alias of evcsa.experiments, was removed (issue 24):
    the package holds no such module (looked up in the package's own directory, not through
    an editable install's finder, which may point at another checkout)."""
    import importlib.machinery

    import evcsa

    assert importlib.machinery.PathFinder.find_spec("evcsa.experiment", list(evcsa.__path__)) is None
    assert importlib.machinery.PathFinder.find_spec("evcsa.experiments", list(evcsa.__path__)) is not None


def test_the_master_key_is_recorded_and_never_the_seed(config):
    """Reproducible mode: keys from a 256-bit master key (drawn once, recorded in the config
    the results carry), independent of the public seed; two recorded keys, two noises."""
    from evcsa.experiments.seeds import _keys, with_master_key
    from evcsa.randomness import MasterKey

    filled = with_master_key(attrs.evolve(config, master_key=None))
    assert len(filled.master_key) == 64 and with_master_key(filled) is filled
    a = _keys(filled, "cell", "rs", "noisy").next_key()
    assert a == _keys(filled, "cell", "rs", "noisy").next_key()
    assert a != _keys(attrs.evolve(filled, master_key=MasterKey.generate().hex()), "cell", "rs", "noisy").next_key()
    assert _keys(filled, "cell", "a/b", "c").next_key() != _keys(filled, "cell", "a", "b/c").next_key()
