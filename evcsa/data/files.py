"""User data (:mod:`evcsa.data`): ``.npz`` files (``x`` uint8 0..255 or float in [0, 1],
layout NHWC, NCHW or NHW; ``y`` integer labels) and torch datasets of (image, label)
pairs, each checked and converted into an :class:`~evcsa.data.ImageSet`.
"""

from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Any, Iterable

import numpy as np
import torch

from evcsa._validation import describe
from evcsa.data.imageset import ImageSet
from evcsa.errors import DataError


def _to_nchw(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """x as [M, C, H, W] from NHWC, NCHW or NHW (C in {1, 3} decides "auto")."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: expected x of rank 3 (NHW) or 4 (NHWC or NCHW), got shape "
                        f"{x.shape}", got=x.shape)
    if layout == "auto":
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if first and not last:
            layout = "nchw"
        elif last and not first:
            layout = "nhwc"
        else:
            raise DataError(f"{where}: cannot tell NCHW from NHWC for x of shape {x.shape}; "
                            "pass layout='nchw' or layout='nhwc'", got=x.shape)
    if layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    elif layout != "nchw":
        raise DataError(f"expected layout in ('auto', 'nchw', 'nhwc'), got {layout!r}", got=layout)
    return np.ascontiguousarray(x)


def _scale(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 → /255; float → checked in [0, 1]; anything else refused."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{where}: expected finite pixel values, got "
                            f"{int((~np.isfinite(x)).sum())} NaN or infinite value(s)")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            hint = " (0..255 floats? store x as uint8 or divide by 255)" if hi > 1.0 else ""
            raise DataError(f"{where}: expected float pixel values in [0, 1], got values in "
                            f"[{lo:.6g}, {hi:.6g}]{hint}", min=lo, max=hi)
        return x
    raise DataError(f"{where}: expected x as uint8 (0..255) or float (0..1), got dtype {x.dtype}",
                    got=str(x.dtype))


def _labels_from(y: np.ndarray, where: str, m: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: expected y as 1-D integer class labels, got shape {y.shape} "
                        "(one-hot labels? store their argmax)", got=y.shape)
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: expected y as integer class labels, got dtype {y.dtype}",
                        got=str(y.dtype))
    if y.shape[0] != m:
        raise DataError(f"{where}: expected one label per image ({m}), got {y.shape[0]} labels",
                        images=m, labels=int(y.shape[0]))
    if y.size and int(y.min()) < 0:
        raise DataError(f"{where}: expected labels ≥ 0, got {int(y.min())}", got=int(y.min()))
    return y.astype(np.int64)


def load_npz(path: str | os.PathLike[str], *, x_key: str = "x", y_key: str = "y",
             layout: str = "auto", name: str | None = None,
             num_classes: int | None = None) -> ImageSet:
    """Images and labels from a ``.npz`` file (``numpy.savez``).

    Args:
        path: the file.
        x_key: the array of images: uint8 [M, H, W, C] / [M, C, H, W] / [M, H, W] with values
            0..255 (divided by 255), or float with values in [0, 1].
        y_key: the array of labels: M integers ≥ 0 (float arrays of whole numbers and
            [M, 1] columns are accepted).
        layout: "auto" (C ∈ {1, 3} on one side decides), "nhwc" or "nchw".
        name: the set's name (default: the file's stem).
        num_classes: K (default: max label + 1).

    Returns:
        :class:`ImageSet` of float32 [M, C, H, W] in [0, 1].

    Raises:
        DataError: the file is missing, unreadable, not an ``.npz`` archive, lacks a key,
            holds object arrays, or its x or y are malformed; the message names the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"expected path as a file name (str or os.PathLike), got {type(path).__name__}",
                        got=type(path).__name__)
    path = pathlib.Path(path)
    try:
        return _read_npz(path, x_key, y_key, layout, name, num_classes)
    except DataError as exc:
        if "path" in exc.details:
            raise
        raise DataError(exc.message, **exc.details, path=str(path)) from exc


def _read_npz(path: pathlib.Path, x_key: str, y_key: str, layout: str, name: str | None,
              num_classes: int | None) -> ImageSet:
    where = str(path)
    if not path.exists():
        raise DataError(f"{where}: no such file", path=where)
    if path.is_dir():
        raise DataError(f"{where}: expected a .npz file, got a directory", path=where)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{where}: cannot read as a .npz archive ({_first_line(exc)})",
                        path=where) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: expected a .npz archive (numpy.savez), got a single .npy array",
                        path=where)
    with loaded as archive:
        keys = list(archive.keys())
        for key in (x_key, y_key):
            if key not in keys:
                raise DataError(f"{where}: expected an array named {key!r}, found "
                                f"{keys or 'none'} (choose with x_key= / y_key=)",
                                path=where, missing=key)
        try:
            x, y = archive[x_key], archive[y_key]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{where}: cannot read arrays {x_key!r} and {y_key!r} "
                            f"({_first_line(exc)})", path=where) from exc
    if x.size == 0:
        raise DataError(f"{where}: expected at least one image, got x of shape {x.shape}",
                        path=where)
    images = _scale(_to_nchw(x, layout, where), where)
    labels = _labels_from(y, where, images.shape[0])
    try:
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        return ImageSet(images=torch.from_numpy(images), labels=torch.from_numpy(labels),
                        name=name or path.stem, **kwargs)
    except DataError as exc:
        raise DataError(f"{where}: {exc.message}", **exc.details) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _item_image(img: Any, index: int) -> np.ndarray:
    """One dataset image as float32 [C, H, W] in [0, 1]."""
    if isinstance(img, torch.Tensor):
        arr = img.detach().cpu().numpy()
        if arr.ndim == 2:
            arr = arr[None]
        chw = True
    else:
        try:
            arr = np.asarray(img)  # PIL images, numpy arrays, nested lists
        except Exception as exc:  # pragma: no cover - exotic objects
            raise DataError(f"item {index}: expected an image, got {type(img).__name__}") from exc
        if arr.dtype == object:
            raise DataError(f"item {index}: expected an image, got {type(img).__name__}")
        if arr.ndim == 2:
            arr = arr[None]
            chw = True
        else:
            chw = False  # PIL / numpy images are HWC
    if arr.ndim != 3:
        raise DataError(f"item {index}: expected an image of rank 2 or 3, got shape {arr.shape}")
    if not chw:
        arr = arr.transpose(2, 0, 1)
    try:
        return _scale(np.ascontiguousarray(arr), f"item {index}")
    except DataError:
        raise


def from_torch_dataset(dataset: Any, *, name: str | None = None, limit: int | None = None,
                       num_classes: int | None = None) -> ImageSet:
    """Collect a torch ``Dataset`` of (image, label) pairs into an :class:`ImageSet`.

    Images may be float tensors [C, H, W] / [H, W] in [0, 1] (e.g. after
    ``torchvision.transforms.ToTensor``), uint8 tensors (0..255), numpy HWC arrays or PIL
    images; labels ints or 0-d tensors. Map-style datasets are read by index
    (``len`` and ``[i]``), others by iteration.

    Args:
        dataset: the dataset.
        name: the set's name (default: the dataset's class name).
        limit: read at most this many items.
        num_classes: K (default: max label + 1).

    Raises:
        DataError: an item that is not an (image, label) pair, images of different shapes,
            or malformed values; the message names the item's index.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"expected limit as an integer ≥ 1 or None, got {limit!r}", got=limit)
    items: Iterable[Any]
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        n = len(dataset) if limit is None else min(limit, len(dataset))
        items = (dataset[i] for i in range(n))
    elif hasattr(dataset, "__iter__"):
        items = iter(dataset)
    else:
        raise DataError(f"expected a torch Dataset (indexable or iterable), got {type(dataset).__name__}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            break
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"item {i}: expected an (image, label) pair, got {type(item).__name__}")
        img = _item_image(item[0], i)
        if images and img.shape != images[0].shape:
            raise DataError(f"item {i}: expected an image of shape {images[0].shape} like item 0, "
                            f"got {img.shape}")
        label = item[1]
        if isinstance(label, torch.Tensor):
            if label.numel() != 1 or label.is_floating_point():
                raise DataError(f"item {i}: expected an integer label, got {describe(label)}")
            label = int(label.item())
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DataError(f"item {i}: expected an integer label, got {label!r}")
        images.append(img)
        labels.append(int(label))
    if not images:
        raise DataError(f"expected at least one item in {type(dataset).__name__}, got none")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return ImageSet(images=torch.from_numpy(np.stack(images)),
                    labels=torch.tensor(labels, dtype=torch.int64),
                    name=name or type(dataset).__name__, **kwargs)
