"""The labelled image set every loader returns (:mod:`evcsa.data`): float32 images
[M, C, H, W] in [0, 1] and int64 labels [M] on the CPU, checked on construction.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import attrs
import numpy as np
import torch

from evcsa._validation import as_images, as_labels, describe
from evcsa.errors import DataError


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
