"""Keras HDF5 weights of the Carlini–Wagner MNIST CNN into evcsa's :class:`~evcsa.models.CarliniMNIST`.

The seeds' model is the Carlini MNIST CNN that EvadeML-Zoo (Xu et al., NDSS 2018;
github.com/mzweilin/EvadeML-Zoo, MIT licence) published as
``trained_models/MNIST_carlini.keras_weights.h5`` (commit 08a027a; removed from the tree
later). That file is a Keras 2.0.2 model saved with the TensorFlow backend,
``data_format="channels_last"``: ``model_weights/<layer>/<layer>/{kernel,bias}:0`` for the
four ``Conv2D`` layers and the three ``Dense`` layers of a ``Sequential`` model (the
``Activation``, ``MaxPooling2D``, ``Flatten`` and ``Dropout`` layers hold no weights).
Carlini's ``setup_mnist.py`` and EvadeML-Zoo's ``carlini_models.py`` feed it pixels in
[−0.5, 0.5] and read logits from the last ``Dense`` layer (no softmax in the weights).

The conversion (:func:`carlini_state_from_keras`, numpy only):

1. conv kernels: Keras stores (H, W, C_in, C_out); torch's ``Conv2d.weight`` is
   (C_out, C_in, H, W): ``kernel.transpose(3, 2, 0, 1)``. Both frameworks compute a
   cross-correlation (no kernel flip), valid padding, stride 1.
2. dense kernels: Keras stores (in, out); torch's ``Linear.weight`` is (out, in):
   ``kernel.T``.
3. the first dense layer reads the flattened last feature map. Keras flattens it in NHWC
   order (index (h·W + w)·C + c), torch in NCHW order (index (c·H + h)·W + w), so that
   kernel's rows are permuted before the transpose:
   ``kernel.reshape(H, W, C, out).transpose(2, 0, 1, 3).reshape(C·H·W, out)``.
4. biases are copied as they are; everything is float32.
5. the input range: evcsa's images are NCHW float32 in [0, 1]; the weights were trained on
   [−0.5, 0.5], so the model is built with ``input_offset=−0.5`` (x − 0.5 before the first
   layer). Max-pooling 2×2 with stride 2 and ReLU are the same in both frameworks.

:func:`read_keras_weights` reads the HDF5 file and needs h5py (``pip install
'evcsa[keras]'``); nothing else in evcsa does: the converted weights ship as a ``.npz``
(:mod:`evcsa.weights_io`) that numpy reads (``scripts/convert_carlini_keras_weights.py``
makes it).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch

from evcsa.errors import DataError, InvalidParameter
from evcsa.models.architectures import CarliniMNIST

__all__ = ["CARLINI_INPUT_OFFSET", "carlini_geometry", "carlini_state_from_keras", "load_keras_carlini",
           "read_keras_weights"]

#: Added to evcsa's [0, 1] inputs for weights trained on Carlini's [−0.5, 0.5] range.
CARLINI_INPUT_OFFSET = -0.5

#: evcsa's parameter names of CarliniMNIST's weighted layers, in the Keras model's order.
_CONVS = ("features.0", "features.2", "features.5", "features.7")
_DENSES = ("classifier.1", "classifier.4", "classifier.6")


def read_keras_weights(path: str | os.PathLike[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """The weighted layers of a Keras 2 HDF5 file, in the model's order.

    Reads a whole-model file (``model.save``: the weights under ``model_weights``) or a
    weights-only file (``model.save_weights``: at the top level), using the layer order of
    its ``layer_names`` attribute and each layer's ``weight_names``.

    Args:
        path: the ``.h5`` file.

    Returns:
        [(layer name, kind, kernel, bias)] for every layer holding weights, kind "conv"
        (kernel float32 [H, W, C_in, C_out]) or "dense" (kernel float32 [in, out]); bias
        float32 [out].

    Raises:
        InvalidParameter: h5py is not installed (it is the ``keras`` extra).
        DataError: not an HDF5 file, or not Keras layers of kernels and biases.
    """
    try:
        import h5py
    except ImportError as exc:
        raise InvalidParameter("expected h5py to read Keras .h5 weights (pip install 'evcsa[keras]'), "
                               "got ImportError") from exc
    where = str(path)

    def text(value: Any) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as fh:
            root = fh["model_weights"] if "model_weights" in fh else fh
            if "layer_names" not in root.attrs:
                raise DataError(f"{where}: expected a Keras weights file (a 'layer_names' attribute), got none",
                                path=where)
            layers = []
            for layer in (text(n) for n in root.attrs["layer_names"]):
                names = [text(n) for n in root[layer].attrs.get("weight_names", [])]
                if not names:
                    continue
                arrays = {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(root[layer][n], dtype=np.float32)
                          for n in names}
                if set(arrays) != {"kernel", "bias"}:
                    raise DataError(f"{where}: layer {layer}: expected weights 'kernel' and 'bias', got "
                                    f"{sorted(arrays)}", path=where)
                kernel, bias = arrays["kernel"], arrays["bias"]
                kind = {4: "conv", 2: "dense"}.get(kernel.ndim)
                if kind is None or bias.shape != (kernel.shape[-1],):
                    raise DataError(f"{where}: layer {layer}: expected a conv kernel [H, W, in, out] or a dense "
                                    f"kernel [in, out] with a bias [out], got kernel {kernel.shape} and bias "
                                    f"{bias.shape}", path=where)
                layers.append((layer, kind, kernel, bias))
    except OSError as exc:
        raise DataError(f"{where}: expected a readable HDF5 file, got {type(exc).__name__}: {exc}",
                        path=where) from exc
    return layers


def carlini_state_from_keras(layers: list[tuple[str, str, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """:class:`~evcsa.models.CarliniMNIST`'s state dict from the Keras layers of the same
    network (the conversion steps 1–4 of this module's docstring).

    Args:
        layers: from :func:`read_keras_weights`: four conv layers (3×3 kernels, C → 32 →
            32 → 64 → 64 channels for MNIST) then three dense layers, as
            (name, kind, kernel, bias) with Keras layouts.

    Returns:
        parameter name → float32 array in torch's layout (``features.0.weight`` [32, C,
        3, 3], …, ``classifier.1.weight`` [200, 64·s·s], …), ready for
        ``CarliniMNIST(C, image_size, K).load_state_dict`` (as tensors).

    Raises:
        InvalidParameter: not four 3×3 conv layers then three dense layers whose sizes
            chain, or a first dense layer whose input is not a square 64-channel map.
    """
    kinds = [kind for _, kind, _, _ in layers]
    if kinds != ["conv"] * 4 + ["dense"] * 3:
        raise InvalidParameter(f"expected 4 conv layers then 3 dense layers (Carlini's MNIST CNN), got "
                               f"{[(name, kind) for name, kind, _, _ in layers]}")
    state: dict[str, np.ndarray] = {}
    channels = layers[0][2].shape[2]
    for key, (name, _, kernel, bias) in zip(_CONVS, layers[:4]):
        if kernel.shape[:3] != (3, 3, channels):
            raise InvalidParameter(f"expected the kernel of {name} as [3, 3, {channels}, out], got "
                                   f"{list(kernel.shape)}", key=name)
        state[f"{key}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        state[f"{key}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        channels = kernel.shape[3]
    width = None
    for i, (key, (name, _, kernel, bias)) in enumerate(zip(_DENSES, layers[4:])):
        rows, out = kernel.shape
        if i == 0:
            side = int(round((rows / channels) ** 0.5))
            if side < 1 or side * side * channels != rows:
                raise InvalidParameter(f"expected the kernel of {name} as [{channels}·s·s, out] (a square map of "
                                       f"{channels} channels flattened), got {list(kernel.shape)}", key=name)
            kernel = kernel.reshape(side, side, channels, out).transpose(2, 0, 1, 3).reshape(rows, out)
        elif rows != width:
            raise InvalidParameter(f"expected the kernel of {name} as [{width}, out], got {list(kernel.shape)}",
                                   key=name)
        state[f"{key}.weight"] = np.ascontiguousarray(kernel.T, dtype=np.float32)
        state[f"{key}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        width = out
    return state


def carlini_geometry(state: Mapping[str, np.ndarray]) -> tuple[int, int, int]:
    """(in_channels, image_size, num_classes) of a :class:`~evcsa.models.CarliniMNIST`
    state dict (as :func:`carlini_state_from_keras` returns). The first dense layer reads
    64·s·s values with s = ((H − 4) // 2 − 4) // 2; the image side given is the smallest H
    with that s, (2s + 4)·2 + 4 (28 for MNIST's s = 4)."""
    channels = int(state["features.0.weight"].shape[1])
    side = int(round((state["classifier.1.weight"].shape[1] / state["features.7.weight"].shape[0]) ** 0.5))
    return channels, (side * 2 + 4) * 2 + 4, int(state["classifier.6.weight"].shape[0])


def load_keras_carlini(path: str | os.PathLike[str], *, input_offset: float = CARLINI_INPUT_OFFSET) -> Any:
    """A :class:`~evcsa.models.CarliniMNIST` (eval mode, CPU) with the weights of a Keras
    HDF5 file of Carlini's MNIST CNN.

    Args:
        path: the ``.h5`` file (e.g. EvadeML-Zoo's ``MNIST_carlini.keras_weights.h5``).
        input_offset: added to the [0, 1] input; −0.5 (default) for weights trained on
            [−0.5, 0.5] as Carlini's and EvadeML-Zoo's, 0.0 for weights trained on [0, 1].

    Returns:
        The module: float32 [B, C, H, W] in [0, 1] → logits float32 [B, K].

    Raises:
        InvalidParameter: h5py missing, or not Carlini's layers (:func:`carlini_state_from_keras`).
        DataError: not a Keras HDF5 weights file.
    """
    state = carlini_state_from_keras(read_keras_weights(path))
    channels, size, classes = carlini_geometry(state)
    module = CarliniMNIST(channels, size, classes, input_offset=input_offset,
                          generator=torch.Generator().manual_seed(0))
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    if input_offset:
        tensors["input_shift"] = module.get_buffer("input_shift").clone()
    module.load_state_dict(tensors)
    return module.eval()
