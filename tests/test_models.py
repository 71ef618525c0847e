"""evcsa.models: architectures, reproducible training, the reference-model cache."""

from __future__ import annotations

import json
import pathlib
import warnings

import attrs
import pytest
import torch

from evcsa import models
from evcsa.data import load_digits
from evcsa.defenses import ModelClassifier
from evcsa.errors import InvalidParameter
from evcsa.models import (
    REFERENCE_CONFIGS,
    Augmentation,
    CarliniMNIST,
    DigitsCNN,
    GeneratorDropout,
    TrainingConfig,
    build_model,
    check_cache_dir,
    evaluate,
    is_cached,
    reference_model,
    resolve_cache_dir,
    train_model,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """The models trained here are tiny: one thread is fastest and robust to a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_carlini_mnist_has_312202_parameters_and_the_published_layers():
    model = CarliniMNIST()
    assert _count(model) == 312_202
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    dense = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert [d.out_features for d in dense] == [200, 200, 10]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 2
    drop = [m for m in model.modules() if isinstance(m, GeneratorDropout)]
    assert len(drop) == 1 and drop[0].p == 0.5
    assert model.eval()(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_digits_cnn_shape_and_size():
    model = DigitsCNN().eval()
    assert _count(model) == 13_706
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_architecture_arguments_are_checked():
    for side in (8, 14, 15):  # 16 is the smallest side that leaves a 1×1 map after the second pool
        with pytest.raises(InvalidParameter, match=rf"expected image_size ≥ 16, got {side}"):
            CarliniMNIST(image_size=side)
    assert CarliniMNIST(image_size=16).eval()(torch.rand(1, 1, 16, 16)).shape == (1, 10)
    with pytest.raises(InvalidParameter, match=r"expected input_offset as a finite number, got nan"):
        CarliniMNIST(input_offset=float("nan"))
    with pytest.raises(InvalidParameter, match=r"expected architecture in .*got 'resnet'"):
        build_model("resnet", (1, 28, 28), 10, seed=0)
    with pytest.raises(InvalidParameter, match=r"expected square images, got 28×30"):
        build_model("carlini_mnist", (1, 28, 30), 10, seed=0)
    with pytest.raises(InvalidParameter, match=r"expected dropout probability p in \[0, 1\), got 1.0"):
        GeneratorDropout(1.0)


def test_initialisation_is_seeded_locally():
    state = torch.get_rng_state()
    a = build_model("carlini_mnist", (1, 28, 28), 10, seed=3)
    b = build_model("carlini_mnist", (1, 28, 28), 10, seed=3)
    c = build_model("carlini_mnist", (1, 28, 28), 10, seed=4)
    assert torch.equal(state, torch.get_rng_state()), "the global generator must not be used"
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_generator_dropout_is_reproducible_and_off_in_eval():
    drop = GeneratorDropout(0.5)
    x = torch.ones(4, 1000)
    drop.generator = torch.Generator().manual_seed(0)
    first = drop(x)
    drop.generator = torch.Generator().manual_seed(0)
    assert torch.equal(first, drop(x))
    assert set(first.unique().tolist()) == {0.0, 2.0}  # inverted dropout keeps the mean
    assert 0.45 < float((first == 0).float().mean()) < 0.55
    assert torch.equal(drop.eval()(x), x)


def test_augmentation_keeps_range_and_is_reproducible():
    x = load_digits("test").images[:16]
    aug = Augmentation(shift=1.0, rotation=15.0, scale=0.1)
    a = aug.apply(x, torch.Generator().manual_seed(5))
    b = aug.apply(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.equal(a, x)
    identity = Augmentation(shift=0.0, rotation=0.0, scale=0.0).apply(x, torch.Generator())
    assert torch.allclose(identity, x, atol=1e-5)
    with pytest.raises(InvalidParameter, match=r"expected rotation as a finite number ≥ 0, got -1"):
        Augmentation(rotation=-1)


def test_training_is_reproducible_and_leaves_the_global_generator_alone():
    data = load_digits("train").head(256)
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        module = build_model("digits_cnn", (1, 8, 8), 10, seed=0)
        train_model(module, data, epochs=2, batch_size=32, learning_rate=5e-3,
                    augment=Augmentation(shift=1.0), seed=9, progress=False)
        runs.append(module)
        assert not module.training
    assert torch.equal(state, torch.get_rng_state())
    for pa, pb in zip(runs[0].parameters(), runs[1].parameters()):
        assert torch.equal(pa, pb)
    other = build_model("digits_cnn", (1, 8, 8), 10, seed=0)
    train_model(other, data, epochs=2, batch_size=32, learning_rate=5e-3,
                augment=Augmentation(shift=1.0), seed=10, progress=False)
    assert not torch.equal(next(other.parameters()), next(runs[0].parameters()))


def test_training_arguments_are_checked():
    module = DigitsCNN()
    data = load_digits("train").head(10)
    with pytest.raises(InvalidParameter, match=r"expected epochs ≥ 1, got 0"):
        train_model(module, data, epochs=0)
    with pytest.raises(InvalidParameter, match=r"expected learning_rate > 0, got -0.1"):
        train_model(module, data, learning_rate=-0.1)
    with pytest.raises(InvalidParameter, match=r"expected data as an ImageSet, got Tensor"):
        train_model(module, torch.zeros(1, 1, 8, 8))
    with pytest.raises(InvalidParameter, match=r"expected data the module can take \(images \(1, 28, 28\)"):
        train_model(module, attrs.evolve(data, images=torch.zeros(10, 1, 28, 28)), epochs=1)


def test_training_config_digest_depends_on_every_field():
    base = REFERENCE_CONFIGS["digits"]
    assert base.digest() == TrainingConfig(**attrs.asdict(base, recurse=False)).digest()
    assert len(base.digest()) == 16
    for change in ({"epochs": 31}, {"seed": 2}, {"learning_rate": 1e-3},
                   {"augment": Augmentation()}, {"split_seed": 1}):
        assert attrs.evolve(base, **change).digest() != base.digest(), change
    with pytest.raises(InvalidParameter, match=r"expected epochs as an integer ≥ 1, got 0"):
        attrs.evolve(base, epochs=0)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("EVCSA_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("EVCSA_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_cache_dir() == tmp_path / ".cache" / "evcsa"


def test_check_cache_dir(monkeypatch, tmp_path):
    """A cache directory that exists, or can be created, passes (and is not created); a
    file, a path under a file, or a place nothing can be created in fails in one line."""
    assert check_cache_dir(tmp_path) == tmp_path
    assert check_cache_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert sorted(tmp_path.iterdir()) == [], "checking creates nothing"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidParameter, match=rf"^expected a writable cache directory, got {tmp_path}/afile: "
                                               r"it is not a directory$") as info:
        check_cache_dir(tmp_path / "afile")
    assert info.value.path == str(tmp_path / "afile")
    with pytest.raises(InvalidParameter, match=rf"^expected a writable cache directory, got {tmp_path}/afile/sub: "
                                               rf"{tmp_path}/afile is not a directory$"):
        check_cache_dir(tmp_path / "afile" / "sub")
    monkeypatch.setenv("EVCSA_CACHE", str(tmp_path / "afile"))
    with pytest.raises(InvalidParameter, match=r"^expected a writable cache directory, got .*/afile "
                                               r"\(from \$EVCSA_CACHE\): it is not a directory$"):
        check_cache_dir()


@pytest.mark.skipif(not pathlib.Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_check_cache_dir_where_nothing_can_be_created():
    """/proc refuses new directories even to root (for whom os.access says yes)."""
    with pytest.raises(InvalidParameter, match=r"^expected a writable cache directory, got /proc/x: "
                                               r"cannot create it in /proc \(.+\)$"):
        check_cache_dir("/proc/x")


def test_a_bad_cache_dir_fails_before_training(tmp_path, monkeypatch, digits_cache):
    def no_training(*args, **kwargs):
        raise AssertionError("the cache directory must be checked before training")

    monkeypatch.setattr(models, "train_reference", no_training)
    (tmp_path / "afile").write_text("x")
    assert not is_cached("digits", cache_dir=tmp_path / "afile")
    with pytest.raises(InvalidParameter, match=r"expected a writable cache directory, got .*afile: "):
        reference_model("digits", cache_dir=tmp_path / "afile")
    assert is_cached("digits", cache_dir=digits_cache) and not is_cached("mnist", cache_dir=digits_cache)


def test_reference_model_is_trained_once_then_loaded(digits_cache, monkeypatch):
    model = reference_model("digits", cache_dir=digits_cache)
    assert isinstance(model, ModelClassifier) and model.num_classes == 10
    files = sorted(p.name for p in digits_cache.iterdir())
    config = REFERENCE_CONFIGS["digits"]
    stem = f"digits-digits_cnn-{config.digest()}"
    assert files == [f"{stem}.json", f"{stem}.pt"], "no temp files may remain"
    info = json.loads((digits_cache / f"{stem}.json").read_text())
    assert info["config"] == config.to_dict() and info["digest"] == config.digest()
    assert info["test_accuracy"] >= 0.95, info
    # the recorded accuracy is the truth
    assert evaluate(model, load_digits("test")) == pytest.approx(info["test_accuracy"])

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not retrained")

    monkeypatch.setattr(models, "train_reference", no_training)
    again = reference_model("digits", cache_dir=digits_cache)
    x = load_digits("test").images[:50]
    assert torch.equal(again.logits(x), model.logits(x))
    assert again.info["weights_sha256"] == info["weights_sha256"]


def test_a_damaged_cache_is_retrained_with_a_warning(tmp_path, digits_cache):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(digits_cache, cache)
    weights = next(cache.glob("*.pt"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match=r"ignoring the damaged cached model"):
        model = reference_model("digits", cache_dir=cache)
    assert evaluate(model, load_digits("test")) >= 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference_model("digits", cache_dir=cache)  # repaired: loads silently


def test_reference_model_takes_a_training_config(tmp_path):
    config = attrs.evolve(REFERENCE_CONFIGS["digits"], epochs=1)
    model = reference_model(config, cache_dir=tmp_path)
    assert len(list(tmp_path.glob(f"digits-digits_cnn-{config.digest()}.*"))) == 2
    assert model.info["config"]["epochs"] == 1
    assert evaluate(model, load_digits("test")) == pytest.approx(model.info["test_accuracy"])


def test_reference_model_errors():
    with pytest.raises(InvalidParameter, match=r"expected a reference model in \('mnist', 'digits'\), got 'cifar'"):
        reference_model("cifar")


def test_mnist_reference_configuration():
    """The MNIST reference is the Carlini–Wagner CNN on the fixed 4,000 training digits.
    (Training it takes a minute or two; the suite does not: `evcsa train` does.)"""
    config = REFERENCE_CONFIGS["mnist"]
    assert config.architecture == "carlini_mnist" and config.dataset == "mnist"
    module = build_model(config.architecture, (1, 28, 28), 10, seed=0)
    assert _count(module) == 312_202
