"""Reproducible training of a model (:mod:`evcsa.models`): the augmentation, the
training loop driven by a local generator, the accuracy on a data set, and the training
recipes (:class:`TrainingConfig`, :data:`REFERENCE_CONFIGS`).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evcsa._validation import check_positive_int, int_at_least, one_of
from evcsa.data import SPLIT_SEED, ImageSet
from evcsa.defenses.base import ModelClassifier
from evcsa.errors import InvalidParameter
from evcsa.models.architectures import ARCHITECTURES, GeneratorDropout


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
        model = ModelClassifier(model, batch_size=batch_size)
    correct = 0
    for x, y in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        correct += int((model.predict(x).cpu() == y).sum())
    return correct / len(data)




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



#: The code here that makes a model's weights (hashed by
#: :func:`evcsa.models.recipe.training_code_digest`, in this order).
TRAINING_LOOP_CODE: tuple[Any, ...] = (Augmentation, train_model)
