"""The reference architectures (:mod:`evcsa.models`): the Carlini–Wagner MNIST CNN
(Carlini & Wagner, S&P 2017; ``nn_robust_attacks/train_models.py``; seed 002 § 5.1),
evcsa's small CNN for the 8×8 digits, their initialisation from a local generator, and
:func:`build_model` by name.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from evcsa._validation import check_positive_int
from evcsa.errors import InvalidParameter


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




#: The code here that makes a model's weights (hashed by
#: :func:`evcsa.models.recipe.training_code_digest`, in this order).
ARCHITECTURE_CODE: tuple[Any, ...] = (_init_params, GeneratorDropout, CarliniMNIST, DigitsCNN, build_model)
