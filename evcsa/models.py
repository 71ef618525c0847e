"""Reference models: the Carlini–Wagner MNIST CNN, a small CNN for 8×8 digits, their
shipped weights, their reproducible training, and an on-disk cache of models trained here.

- :class:`CarliniMNIST` — the MNIST model of Carlini & Wagner ("Towards Evaluating the
  Robustness of Neural Networks", S&P 2017; ``nn_robust_attacks/train_models.py``), the
  model the feature-squeezing evaluation (Xu et al., NDSS 2018) and Mix'n'Squeeze (seed
  002 § 5.1) attack: 3×3 conv 32, 32, max-pool 2, conv 64, 64, max-pool 2, dense 200,
  200, 10 logits, ReLU, dropout 0.5 before the last two dense layers in training;
  312,202 parameters for 28×28 grey images.
- :class:`DigitsCNN` — a small CNN (13,706 parameters) for scikit-learn's 8×8 digits: fast
  tests and docs.
- :func:`reference_model` — a reference model by name as a
  :class:`~evcsa.defenses.ModelClassifier`, from weights that ship with evcsa
  (:data:`SHIPPED`, ``evcsa/models_data/``; SHA-256 checked at load): "mnist" and
  "digits" (evcsa's own, trained once by their recipes and shipped, so every machine gets
  the same model) and "mnist-carlini-evademl" (the seeds' model: Carlini's CNN as
  EvadeML-Zoo published it, converted by :mod:`evcsa.keras_weights`).
- :func:`train_model` — reproducible training: a local ``torch.Generator`` drives the
  shuffling, the augmentation and the dropout masks; the global generators are never
  seeded or read (initialisation takes its own generator in the model constructors).
  float32 training on the CPU is reproducible on one machine, not across CPU instruction
  sets, which is why the reference weights ship instead of being trained on first use.
- the cache — models trained here (``evcsa train``, a :class:`TrainingConfig`), keyed by
  the configuration, the training code and the torch version (:func:`cache_key`), each
  beside a JSON file with the configuration and the measured test accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import platform
import tempfile
import time
import warnings
from typing import Any, Callable, NoReturn

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evcsa import data as _data
from evcsa._files import atomic_write
from evcsa._validation import check_positive_int, int_at_least, one_of
from evcsa.data import SPLIT_SEED, ImageSet, load_dataset
from evcsa.errors import InvalidParameter
from evcsa.shipped import MODELS_DATA, PAPER_MODEL, REFERENCE_MODELS, SHIPPED, ShippedWeights

__all__ = [
    "ARCHITECTURES",
    "Augmentation",
    "CarliniMNIST",
    "DigitsCNN",
    "MODELS_DATA",
    "PAPER_MODEL",
    "REFERENCE_CONFIGS",
    "REFERENCE_MODELS",
    "SHIPPED",
    "ShippedWeights",
    "TrainingConfig",
    "build_model",
    "cache_key",
    "check_cache_dir",
    "evaluate",
    "is_cached",
    "load_reference",
    "load_shipped",
    "reference_model",
    "resolve_cache_dir",
    "train_model",
    "train_reference",
    "training_code_digest",
]


def _init_params(module: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default initialisation of conv and linear layers (Kaiming-uniform weights
    with a = √5, uniform biases in ±1/√fan_in), drawn from ``generator``.

    The models build their layers on the "meta" device (no memory, no random draw) and
    then initialise them here, so a model built with a generator never touches the global
    one."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                fan_in = layer.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class GeneratorDropout(nn.Module):
    """Dropout whose masks come from :attr:`generator` when one is set.

    :func:`train_model` sets a local generator for the duration of training, so training is
    reproducible without seeding the global generator. With no generator set it is
    ``torch.nn.functional.dropout`` (the global generator); in eval mode it is the identity.

    Args:
        p: the probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise InvalidParameter(f"expected dropout probability p in [0, 1), got {p!r}", got=p)
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CarliniMNIST(nn.Module):
    """The Carlini–Wagner MNIST CNN (Carlini & Wagner, S&P 2017, Table 1).

    [input_offset added] → conv 3×3 32 → ReLU → conv 3×3 32 → ReLU → max-pool 2 → conv 3×3 64
    → ReLU → conv 3×3 64 → ReLU → max-pool 2 → flatten → dense 200 → ReLU → dropout 0.5 →
    dense 200 → ReLU → dense ``num_classes`` (logits). Valid convolutions (no padding), as
    in the original Keras code. 312,202 parameters for 28×28×1 and 10 classes.

    Args:
        in_channels: C of the input images (1 for MNIST).
        image_size: H = W of the input images (28 for MNIST; at least 16).
        num_classes: K, the number of logits.
        dropout: the dropout probability in training (0.5).
        generator: draws the initial weights (None: the global generator).
        input_offset: added to every input value before the first layer, so that weights
            trained on another input range take evcsa's [0, 1]: 0.0 (evcsa's own
            models), −0.5 for weights trained on [−0.5, 0.5] (Carlini's
            ``setup_mnist.py`` and EvadeML-Zoo's Carlini models). A non-zero offset is
            also the buffer ``input_shift`` (float32, in the state dict), so that a
            digest of the state dict — the experiment engine's model fingerprint — tells
            the same weights with and without it apart; with 0.0 the state dict is the
            plain one.

    Input: float32 [B, C, H, W] in [0, 1]. Output: logits float32 [B, K].

    Raises:
        InvalidParameter: a size that is not a positive integer, an image side below 16,
            a dropout outside [0, 1) or a non-finite offset.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, *,
                 dropout: float = 0.5, generator: torch.Generator | None = None,
                 input_offset: float = 0.0) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(image_size, "image_size", minimum=16)  # the smallest with a 1×1 map left
        check_positive_int(num_classes, "num_classes", minimum=2)
        side = ((image_size - 4) // 2 - 4) // 2
        if isinstance(input_offset, bool) or not isinstance(input_offset, (int, float)) \
                or not math.isfinite(input_offset):
            raise InvalidParameter(f"expected input_offset as a finite number, got {input_offset!r}",
                                   got=input_offset)
        self.input_offset = float(input_offset)
        with torch.device("meta"):  # no draw from the global generator; see _init_params
            self._build_carlini(in_channels, side, num_classes, dropout)
        self.to_empty(device="cpu")
        _init_params(self, generator)
        if self.input_offset != 0.0:
            self.register_buffer("input_shift", torch.tensor(self.input_offset, dtype=torch.float32))

    def _build_carlini(self, in_channels: int, side: int, num_classes: int, dropout: float) -> None:
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 200), nn.ReLU(),
            GeneratorDropout(dropout),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_offset != 0.0:
            x = x + self.input_shift
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"input_offset={self.input_offset}" if self.input_offset != 0.0 else ""


class DigitsCNN(nn.Module):
    """A small CNN for 8×8 digits (scikit-learn's ``load_digits``), for fast tests and docs.

    conv 3×3 16 (padding 1) → ReLU → max-pool 2 → conv 3×3 32 (padding 1) → ReLU → max-pool
    2 → flatten → dense 64 → ReLU → dropout → dense ``num_classes``. 13,706 parameters for
    8×8×1 and 10 classes.

    Args:
        in_channels: C (1).
        image_size: H = W, a multiple of 4 (8).
        num_classes: K (10).
        dropout: the dropout probability in training (0.25).
        generator: draws the initial weights (None: the global generator).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8, num_classes: int = 10, *,
                 dropout: float = 0.25, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(image_size, "image_size", minimum=4)
        check_positive_int(num_classes, "num_classes", minimum=2)
        side = image_size // 4
        with torch.device("meta"):  # no draw from the global generator; see _init_params
            self._build_digits(in_channels, side, num_classes, dropout)
        self.to_empty(device="cpu")
        _init_params(self, generator)

    def _build_digits(self, in_channels: int, side: int, num_classes: int, dropout: float) -> None:
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * side * side, 64), nn.ReLU(),
            GeneratorDropout(dropout),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


#: Architectures by name, for configurations: name → constructor
#: ``(in_channels, image_size, num_classes, *, generator)``.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "carlini_mnist": CarliniMNIST,
    "digits_cnn": DigitsCNN,
}


def build_model(architecture: str, image_shape: tuple[int, int, int], num_classes: int, *,
                seed: int) -> nn.Module:
    """A freshly initialised model of ``architecture`` (a key of :data:`ARCHITECTURES`).

    Args:
        architecture: "carlini_mnist" or "digits_cnn".
        image_shape: (C, H, W) with H = W.
        num_classes: K.
        seed: seeds the local generator that draws the initial weights.

    Raises:
        InvalidParameter: an unknown architecture or a shape it does not take.
    """
    if architecture not in ARCHITECTURES:
        raise InvalidParameter(f"expected architecture in {tuple(ARCHITECTURES)}, got {architecture!r}",
                               got=architecture)
    c, h, w = image_shape
    if h != w:
        raise InvalidParameter(f"expected square images, got {h}×{w}", got=(h, w))
    generator = torch.Generator().manual_seed(int(seed))
    return ARCHITECTURES[architecture](c, h, num_classes, generator=generator)


# -- training -------------------------------------------------------------------------

def _non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
        raise InvalidParameter(f"expected {attribute.name} as a finite number ≥ 0, got {value!r}",
                               key=attribute.name, got=value)


@attrs.frozen(kw_only=True)
class Augmentation:
    """Random affine augmentation of training images, drawn per image and per epoch.

    Each training image is rotated by U[−rotation, +rotation] degrees, scaled by
    U[1 − scale, 1 + scale] and shifted by U[−shift, +shift] pixels on each axis
    (bilinear resampling, zeros outside, values stay in [0, 1]). Used only in training;
    never on test data or inside the game.

    Attributes:
        shift: the largest shift in pixels (2.0).
        rotation: the largest rotation in degrees (10.0).
        scale: the largest relative zoom (0.1).
    """

    shift: float = attrs.field(default=2.0, validator=_non_negative)
    rotation: float = attrs.field(default=10.0, validator=_non_negative)
    scale: float = attrs.field(default=0.1, validator=_non_negative)

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch x, float32 [B, C, H, W] in [0, 1], with parameters drawn from
        ``generator`` (CPU). Returns a new tensor of the same shape on x's device."""
        b, _, h, w = x.shape

        def uniform(bound: float) -> torch.Tensor:
            return (torch.rand(b, generator=generator, dtype=torch.float32) * 2 - 1) * bound

        angle = uniform(math.radians(self.rotation))
        zoom = 1.0 + uniform(self.scale)
        # affine_grid maps output coordinates in [-1, 1] to input coordinates.
        tx, ty = uniform(self.shift) * 2 / w, uniform(self.shift) * 2 / h
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False).clamp_(0.0, 1.0)


def _device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def train_model(module: nn.Module, data: ImageSet, *, epochs: int = 10, batch_size: int = 128,
                learning_rate: float = 1e-3, weight_decay: float = 0.0,
                augment: Augmentation | None = None, seed: int = 0,
                progress: bool | None = None) -> nn.Module:
    """Train ``module`` in place on ``data`` with cross-entropy on its logits.

    Adam with a one-cycle learning-rate schedule (peak ``learning_rate``), mini-batches
    drawn without replacement. Everything random — the order of the batches, the
    augmentation, the dropout masks of :class:`GeneratorDropout` layers — comes from local
    generators seeded with ``seed``; the global generators are neither seeded nor used
    (except by plain ``nn.Dropout`` layers of a user's module). The same module, data,
    parameters, torch build and thread count give bit-identical weights. Runs on the
    module's device.

    Args:
        module: maps float32 [B, C, H, W] in [0, 1] to logits [B, K].
        data: the training set.
        epochs: passes over the data (≥ 1).
        batch_size: images per step (≥ 1).
        learning_rate: the peak learning rate (> 0).
        weight_decay: L2 penalty of Adam (≥ 0).
        augment: random affine augmentation of each batch, or None.
        seed: the training randomness.
        progress: show a tqdm bar (None: only on a terminal).

    Returns:
        ``module``, trained, in eval mode.

    Raises:
        InvalidParameter: bad hyperparameters or data the module cannot take.
    """
    from tqdm.auto import tqdm

    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    for name, value, low in (("learning_rate", learning_rate, 0.0), ("weight_decay", weight_decay, None)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (value <= low if low is not None else value < 0):
            bound = "> 0" if low is not None else "≥ 0"
            raise InvalidParameter(f"expected {name} {bound}, got {value!r}", key=name, got=value)
    if not isinstance(data, ImageSet):
        raise InvalidParameter(f"expected data as an ImageSet, got {type(data).__name__}")
    device = _device_of(module)
    module.to(memory_format=torch.channels_last)  # ~10× faster conv weight gradients on CPU
    seeds = np.random.SeedSequence(int(seed)).generate_state(3, dtype=np.uint64)
    order_gen = torch.Generator().manual_seed(int(seeds[0]) >> 1)
    augment_gen = torch.Generator().manual_seed(int(seeds[1]) >> 1)
    dropout_gen = torch.Generator(device=device).manual_seed(int(seeds[2]) >> 1)
    dropouts = [m for m in module.modules() if isinstance(m, GeneratorDropout)]
    x_all, y_all = data.images, data.labels
    steps_per_epoch = math.ceil(len(data) / batch_size)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate,
                                                   epochs=epochs, steps_per_epoch=steps_per_epoch)
    for d in dropouts:
        d.generator = dropout_gen
    module.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc="training", unit="batch", leave=False,
               disable=None if progress is None else not progress)
    try:
        for _epoch in range(epochs):
            order = torch.randperm(len(data), generator=order_gen)
            running, seen = 0.0, 0
            for idx in order.split(batch_size):
                x = x_all[idx]
                if augment is not None:
                    x = augment.apply(x, augment_gen)
                x, y = x.to(device), y_all[idx].to(device)
                loss = F.cross_entropy(module(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                running += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.update(1)
                bar.set_postfix(loss=f"{running / seen:.3f}", refresh=False)
    except RuntimeError as exc:
        raise InvalidParameter(f"expected data the module can take (images {data.image_shape}, "
                               f"{data.num_classes} classes), got an error: {str(exc).splitlines()[0]}") from exc
    finally:
        bar.close()
        for d in dropouts:
            d.generator = None
        module.eval()
    return module


def evaluate(model: Any, data: ImageSet, *, batch_size: int = 500) -> float:
    """Accuracy of ``model`` on ``data``: the fraction of images whose predicted label is
    the true label (a rejection counts as wrong).

    Args:
        model: a classifier with ``predict(x)``, or a ``torch.nn.Module`` giving logits.
        data: the labelled images.
        batch_size: images per call.

    Returns:
        float in [0, 1].
    """
    if isinstance(model, nn.Module):
        from evcsa.defenses.base import ModelClassifier

        model = ModelClassifier(model, batch_size=batch_size)
    correct = 0
    for x, y in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        correct += int((model.predict(x).cpu() == y).sum())
    return correct / len(data)


# -- reference models and their cache --------------------------------------------------

def _positive_float(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise InvalidParameter(f"expected {attribute.name} as a number > 0, got {value!r}",
                               key=attribute.name, got=value)


@attrs.frozen(kw_only=True)
class TrainingConfig:
    """Everything that determines a reference model's weights (its cache key).

    Attributes:
        architecture: a key of :data:`ARCHITECTURES`.
        dataset: "mnist" or "digits"; the model trains on its fixed "train" split and is
            tested on its "test" split (:mod:`evcsa.data`).
        epochs, batch_size, learning_rate, weight_decay, augment, seed: as
            :func:`train_model` (``seed`` also draws the initial weights).
        split_seed: the data split's seed (:data:`evcsa.data.SPLIT_SEED`).
    """

    architecture: str = attrs.field(validator=one_of(tuple(ARCHITECTURES)))
    dataset: str = attrs.field(validator=one_of(("mnist", "digits")))
    epochs: int = attrs.field(validator=int_at_least(1))
    batch_size: int = attrs.field(default=128, validator=int_at_least(1))
    learning_rate: float = attrs.field(default=1e-3, validator=_positive_float)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    augment: Augmentation | None = None
    seed: int = attrs.field(default=0, validator=int_at_least(0))
    split_seed: int = attrs.field(default=SPLIT_SEED, validator=int_at_least(0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the configuration."""
        return attrs.asdict(self)

    def digest(self) -> str:
        """The cache key: the first 16 hex digits of SHA-256 over the canonical JSON of
        :meth:`to_dict` (sorted keys, no spaces)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The training recipes of evcsa's own reference models, by name. "mnist": the
#: Carlini–Wagner CNN on the 4,000 embedded MNIST training digits with random affine
#: augmentation (±2 px shift, ±10°, ±10 % zoom); "digits": the small CNN on the 1,297
#: training 8×8 digits. Their weights ship trained (:data:`SHIPPED`); the recipes retrain
#: them (``evcsa train``, :func:`reference_model` with ``retrain=True`` or a config).
REFERENCE_CONFIGS: dict[str, TrainingConfig] = {
    "mnist": TrainingConfig(architecture="carlini_mnist", dataset="mnist", epochs=30,
                            batch_size=128, learning_rate=2e-3, weight_decay=0.0,
                            augment=Augmentation(shift=2.0, rotation=10.0, scale=0.1), seed=1),
    "digits": TrainingConfig(architecture="digits_cnn", dataset="digits", epochs=30,
                             batch_size=64, learning_rate=5e-3, augment=None, seed=1),
}


# -- shipped weights --------------------------------------------------------------------

#: (C, H, W) and K of the embedded data sets, so a shipped model is built without loading data.
_GEOMETRY = {"mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


def _check_name(name: Any) -> ShippedWeights:
    if not isinstance(name, str) or name not in SHIPPED:
        from evcsa._text import did_you_mean

        hint = did_you_mean(name, REFERENCE_MODELS) if isinstance(name, str) else ""
        raise InvalidParameter(f"expected a reference model in {REFERENCE_MODELS}, got {name!r}{hint}", got=name)
    return SHIPPED[name]


def load_shipped(name: str = "mnist") -> tuple[nn.Module, dict[str, Any]]:
    """The shipped reference model ``name`` and its info, offline (no training, no cache).

    The ``.npz`` is read once, its SHA-256 compared with :attr:`ShippedWeights.sha256`, and
    only then parsed (numpy only); the model is built on the CPU without touching the
    global random generator.

    Returns:
        (module in eval mode on the CPU, info) where info holds ``name``, ``source``
        ("shipped"), ``origin``, ``architecture``, ``dataset``, ``input_offset``,
        ``weights_file`` (relative to the installed evcsa package), ``weights_sha256``,
        ``parameters``, and the provenance recorded when the file was made (its ``.json``:
        the recipe and environment of the training, or the converted file's repository,
        path, commit and SHA-256; the accuracy measured then).

    Raises:
        InvalidParameter: an unknown name.
        DataError: the file is missing, its SHA-256 is not the expected one, or its arrays
            do not fit the architecture (a damaged or modified installation).
    """
    from evcsa.errors import DataError
    from evcsa.weights_io import load_weights_npz, sha256_bytes

    spec = _check_name(name)
    path = spec.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"expected the shipped weights of {name!r} in {path}, got {type(exc).__name__}: "
                        f"{exc.strerror or exc} (reinstall evcsa)", path=str(path)) from exc
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise DataError(f"expected {path} with SHA-256 {spec.sha256}, got {digest}: the shipped weights of "
                        f"{name!r} are damaged or were replaced (reinstall evcsa)",
                        path=str(path), expected=spec.sha256, got=digest)
    state = load_weights_npz(data)
    (c, h, _w), k = _GEOMETRY[spec.dataset]
    options = {"input_offset": spec.input_offset} if spec.input_offset else {}
    module = ARCHITECTURES[spec.architecture](c, h, k, generator=torch.Generator().manual_seed(0), **options)
    tensors = {key: torch.from_numpy(value) for key, value in state.items()}
    if spec.input_offset:  # the offset is the table's, not the file's (the .npz holds the weights only)
        tensors["input_shift"] = module.input_shift.clone()
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise DataError(f"expected {path} to hold a {spec.architecture} state dict, got "
                        f"{str(exc).splitlines()[0]}", path=str(path)) from exc
    module.to(memory_format=torch.channels_last)
    try:
        provenance = json.loads(spec.provenance_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = {}
    info = {**provenance, "name": name, "source": "shipped", "origin": spec.origin, "summary": spec.summary,
            "architecture": spec.architecture, "dataset": spec.dataset, "input_offset": spec.input_offset,
            "weights_file": f"evcsa/models_data/{spec.file}", "weights_sha256": digest,
            "parameters": sum(p.numel() for p in module.parameters())}
    return module.eval(), info


# -- the cache of models trained here ----------------------------------------------------

def training_code_digest() -> str:
    """SHA-256 over the source of the code that turns a :class:`TrainingConfig` into
    weights — the architectures, their initialisation, the dropout, the augmentation,
    :func:`train_model`, :func:`train_reference`, :func:`build_model` and the embedded
    data's loading and split — and the torch version. Part of the cache key: a cache
    never hands back a model that other code trained under the same name and
    configuration (an edit of any of these, even of a docstring, retrains once).

    Returns:
        64 hex digits.
    """
    import inspect

    digest = hashlib.sha256(f"torch {torch.__version__}\n".encode())
    for obj in _TRAINING_CODE:
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):  # no source (a frozen install): the bytecode instead
            code = getattr(obj, "__code__", None)
            text = f"{obj.__module__}.{obj.__qualname__}:" + (code.co_code.hex() if code is not None else "?")
        digest.update(f"{obj.__module__}.{obj.__qualname__}\n".encode())
        digest.update(text.encode())
    return digest.hexdigest()


def cache_key(config: TrainingConfig) -> str:
    """The cache key of a model trained here: the first 16 hex digits of SHA-256 over the
    configuration's :meth:`TrainingConfig.digest` and :func:`training_code_digest`."""
    return hashlib.sha256(f"{config.digest()}:{training_code_digest()}".encode()).hexdigest()[:16]


def resolve_cache_dir(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The model cache directory: ``path``, else ``$EVCSA_CACHE``, else ``~/.cache/evcsa``."""
    if path is not None:
        return pathlib.Path(path).expanduser()
    env = os.environ.get("EVCSA_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "evcsa"


def check_cache_dir(path: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The model cache directory (:func:`resolve_cache_dir`), checked to be one evcsa can
    create and write files in — without creating it: a probe directory is made and removed
    in it, or in its nearest existing parent.

    Returns:
        The directory.

    Raises:
        InvalidParameter: "expected a writable cache directory, got DIR: <reason>" (the
            path is a file, a parent is a file, or the disk or the permissions refuse);
            ``path`` names the directory.
    """
    directory = resolve_cache_dir(path)
    origin = " (from $EVCSA_CACHE)" if path is None and os.environ.get("EVCSA_CACHE") else ""

    def fail(reason: str) -> NoReturn:
        raise InvalidParameter(f"expected a writable cache directory, got {directory}{origin}: {reason}",
                               path=str(directory))

    existing = directory
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        fail(f"cannot look it up ({exc.strerror or exc})")
    if not is_dir:
        fail("it is not a directory" if existing == directory else f"{existing} is not a directory")
    try:  # os.access answers yes to root even where nothing can be created (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".evcsa-", suffix=".check", dir=existing))
    except OSError as exc:
        fail(f"cannot write in it ({exc.strerror or exc})" if existing == directory
             else f"cannot create it in {existing} ({exc.strerror or exc})")
    return directory


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config_for(name: str | TrainingConfig) -> tuple[str, TrainingConfig]:
    if isinstance(name, TrainingConfig):
        return name.dataset, name
    if name not in REFERENCE_CONFIGS:
        extra = (f" ({name!r} ships converted from published weights; evcsa has no recipe to train it)"
                 if name in SHIPPED else "")
        raise InvalidParameter(f"expected a trainable reference model in {tuple(REFERENCE_CONFIGS)}, got "
                               f"{name!r}{extra}", got=name)
    return name, REFERENCE_CONFIGS[name]


def _paths(label: str, config: TrainingConfig, directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    stem = f"{label}-{config.architecture}-{cache_key(config)}"
    return directory / f"{stem}.pt", directory / f"{stem}.json"


def is_cached(name: str | TrainingConfig = "mnist", *,
              cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether the cache holds a model trained here from the recipe ``name`` (a key of
    :data:`REFERENCE_CONFIGS`) or a :class:`TrainingConfig`, by the current training code
    (present, not verified: a damaged copy is found out, and retrained, by
    :func:`load_reference`). The shipped weights are not in the cache."""
    label, config = _config_for(name)
    try:
        return all(p.is_file() for p in _paths(label, config, resolve_cache_dir(cache_dir)))
    except OSError:
        return False


def train_reference(config: TrainingConfig, *, progress: bool | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Train a model from ``config`` on its data set's fixed training split.

    Returns:
        (module in eval mode on the CPU, info) where info holds the configuration and its
        digest, the training code's digest (:func:`training_code_digest`), the test
        accuracy on the fixed test split, the training time in seconds, the number of
        parameters, and the torch version, thread count, CPU and Python used.
    """
    train = load_dataset(config.dataset, "train")
    test = load_dataset(config.dataset, "test")
    init_seed, train_seed = np.random.SeedSequence(config.seed).generate_state(2)
    module = build_model(config.architecture, train.image_shape, train.num_classes,
                         seed=int(init_seed))
    start = time.perf_counter()
    train_model(module, train, epochs=config.epochs, batch_size=config.batch_size,
                learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                augment=config.augment, seed=int(train_seed), progress=progress)
    seconds = time.perf_counter() - start
    accuracy = evaluate(module, test)
    info = {
        "name": config.dataset,
        "source": "trained",
        "architecture": config.architecture,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "digest": config.digest(),
        "training_code_sha256": training_code_digest(),
        "cache_key": cache_key(config),
        "test_accuracy": accuracy,
        "test_set": f"{test.name}: {len(test)} images",
        "train_set": f"{train.name}: {len(train)} images",
        "parameters": sum(p.numel() for p in module.parameters()),
        "train_seconds": round(seconds, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
    }
    return module, info


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else :func:`platform.processor`."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: What makes the weights besides the configuration: the code that builds, initialises and
#: trains a model and loads and splits its data (:func:`training_code_digest` hashes it).
_TRAINING_CODE: tuple[Any, ...] = (
    _init_params, GeneratorDropout, CarliniMNIST, DigitsCNN, build_model, Augmentation, train_model,
    train_reference, _data.ImageSet, _data.train_test_split, _data._pick_split, _data._mnist_arrays,
    _data.load_mnist, _data.load_digits, _data.load_dataset,
)


def load_reference(name: str | TrainingConfig = "mnist", *,
                   cache_dir: str | os.PathLike[str] | None = None) -> tuple[nn.Module, dict[str, Any]] | None:
    """The model trained here from the recipe ``name`` or a :class:`TrainingConfig`, from
    the cache, and its info; None when it is not cached (or the cached weights do not
    match their recorded SHA-256; a warning says so).

    Raises:
        InvalidParameter: a name with no recipe (:data:`REFERENCE_CONFIGS`)."""
    label, config = _config_for(name)
    directory = resolve_cache_dir(cache_dir)
    weights, meta = _paths(label, config, directory)
    if not (weights.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("weights_sha256") != _sha256(weights):
            raise ValueError("the weights do not match their recorded SHA-256")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        (c, h, w), k = _GEOMETRY[config.dataset]
        module = build_model(config.architecture, (c, h, w), k, seed=0)
        module.load_state_dict(state)
        module.to(memory_format=torch.channels_last)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        warnings.warn(f"ignoring the damaged cached model {weights} ({exc}); it will be retrained",
                      RuntimeWarning, stacklevel=2)
        return None
    info["weights_path"] = str(weights)
    return module.eval(), info


def _trained_here(label: str, config: TrainingConfig, directory: pathlib.Path, *, retrain: bool,
                  progress: bool | None) -> tuple[nn.Module, dict[str, Any]]:
    """The cached model of ``config``, trained and cached first when missing (or ``retrain``)."""
    cached = None if retrain else load_reference(config, cache_dir=directory)
    if cached is not None:
        return cached
    check_cache_dir(directory)  # before the training, not after it
    module, info = train_reference(config, progress=progress)
    directory.mkdir(parents=True, exist_ok=True)
    weights, meta = _paths(label, config, directory)
    atomic_write(weights, lambda fh: torch.save(module.state_dict(), fh))
    info["weights_sha256"] = _sha256(weights)
    info["weights_file"] = weights.name
    atomic_write(meta, lambda fh: fh.write(json.dumps(info, indent=2) + "\n"), mode="w")
    info["weights_path"] = str(weights)
    return module, info


def reference_model(name: str | TrainingConfig = "mnist", *,
                    cache_dir: str | os.PathLike[str] | None = None,
                    progress: bool | None = None, retrain: bool = False,
                    device: torch.device | str | None = None) -> Any:
    """A reference model as a :class:`~evcsa.defenses.ModelClassifier`.

    By name (a key of :data:`SHIPPED`), the shipped weights: the same file, hence the same
    model and the same numbers, on every machine; loaded offline, its SHA-256 checked
    (:func:`load_shipped`); nothing is trained or cached.

    - "mnist": evcsa's Carlini–Wagner CNN trained by ``REFERENCE_CONFIGS["mnist"]`` on
      the 4,000 embedded training digits (98.6 % on the 1,000 embedded test digits);
    - "digits": evcsa's small CNN for the 8×8 digits (tests, docs);
    - "mnist-carlini-evademl" (:data:`PAPER_MODEL`): the seeds' model, Carlini's MNIST
      CNN as EvadeML-Zoo published it (Keras weights converted, :mod:`evcsa.keras_weights`;
      trained on [−0.5, 0.5], so it shifts evcsa's [0, 1] input by −0.5 itself).

    Trained here instead — with ``retrain=True`` (the recipe of ``name``) or a
    :class:`TrainingConfig` — the model is looked up in the cache and trained
    (reproducibly, see :func:`train_model`) and cached when missing. The cache holds
    ``<name>-<architecture>-<key>.pt`` (the state dict) and ``.json`` (the configuration,
    the training code's digest, the measured test accuracy, the weights' SHA-256), both
    written atomically (temp file + rename), the weights first; the key
    (:func:`cache_key`) covers the configuration, the training code and the torch
    version, so other code's model is never handed back.

    Args:
        name: a key of :data:`SHIPPED` ("mnist", "digits", "mnist-carlini-evademl"), or
            a :class:`TrainingConfig`.
        cache_dir: the cache of models trained here (default: ``$EVCSA_CACHE`` or
            ``~/.cache/evcsa``); unused for shipped weights.
        progress: show a training progress bar (None: only on a terminal).
        retrain: train ``name``'s recipe (:data:`REFERENCE_CONFIGS`) here, even when
            cached, and overwrite the cache ("mnist": about 1–2 minutes on 2 CPU cores).
        device: move the model there (default: CPU).

    Returns:
        :class:`~evcsa.defenses.ModelClassifier` (float32 [B, C, H, W] in [0, 1] →
        labels; logits float32 [B, K]) with ``info`` as an attribute: its provenance,
        recorded in every run's results — ``source`` ("shipped" or "trained"),
        ``weights_sha256``, ``weights_file``, and the recipe and environment of the
        training or the origin of converted weights.

    Raises:
        InvalidParameter: an unknown name; ``retrain`` for a model with no recipe; a cache
            directory that cannot be created or written, when the model must be trained
            (:func:`check_cache_dir`, before the training).
        DataError: shipped weights that are missing or fail their SHA-256 check.
        OSError: the disk refused the cache files.
    """
    from evcsa.defenses.base import ModelClassifier

    if isinstance(name, TrainingConfig) or retrain:
        label, config = _config_for(name)
        module, info = _trained_here(label, config, resolve_cache_dir(cache_dir), retrain=retrain,
                                     progress=progress)
    else:
        module, info = load_shipped(name)
    if device is not None:
        module = module.to(device)
    # 256 images per forward pass: the conv activations (~22 MB for the MNIST CNN) stay below
    # glibc's mmap threshold and are reused, where 512 maps fresh pages on every pass
    # (10x the page faults, about 1.6x slower on 2 cores).
    classifier = ModelClassifier(module, num_classes=int(module.classifier[-1].out_features),
                                 batch_size=256)
    classifier.info = info
    return classifier
