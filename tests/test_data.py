"""evcsa.data: the embedded digits, .npz files, torch datasets, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evcsa.data import (
    SPLITS,
    ImageSet,
    from_torch_dataset,
    load_dataset,
    load_digits,
    load_mnist,
    load_npz,
    train_test_split,
)
from evcsa.errors import DataError


# -- the embedded sets -------------------------------------------------------------------

def test_mnist_is_the_5000_real_digits_on_the_uint8_grid():
    data = load_mnist()
    assert len(data) == 5000
    assert data.image_shape == (1, 28, 28)
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    assert data.num_classes == 10
    assert data.class_counts().tolist() == [500] * 10
    grid = data.images * 255
    assert torch.equal(grid, grid.round()), "values must be k/255"
    assert float(data.images.min()) == 0.0 and float(data.images.max()) == 1.0
    # the stored file is sorted by class; the loader shuffles it
    assert len(set(data.labels[:50].tolist())) > 5


def test_mnist_split_is_fixed_stratified_and_disjoint():
    train, test = load_mnist("train"), load_mnist("test")
    assert (len(train), len(test)) == (4000, SPLITS["mnist"])
    assert train.class_counts().tolist() == [400] * 10
    assert test.class_counts().tolist() == [100] * 10
    again = load_mnist("test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    # disjoint: no test image equals a training image of the same rows
    flat_train = {bytes(r.numpy().tobytes()) for r in train.images}
    assert not any(bytes(r.numpy().tobytes()) in flat_train for r in test.images)
    assert test.name == "mnist[test]"


def test_digits_are_scaled_and_split():
    full, train, test = load_digits(), load_digits("train"), load_digits("test")
    assert len(full) == 1797 and full.image_shape == (1, 8, 8)
    assert float(full.images.max()) == 1.0 and float(full.images.min()) == 0.0
    assert (len(train), len(test)) == (1797 - SPLITS["digits"], SPLITS["digits"])
    assert torch.equal(load_digits("test").labels, test.labels)


@pytest.mark.parametrize("loader", [load_mnist, load_digits])
def test_unknown_split_is_refused(loader):
    with pytest.raises(DataError, match=r"expected split in .*got 'validation'"):
        loader("validation")


def test_load_dataset_by_name_and_path(tmp_path):
    assert load_dataset("digits", "test").name == "digits[test]"
    path = load_digits("test").head(7).save_npz(tmp_path / "seven.npz")
    assert len(load_dataset(str(path))) == 7
    with pytest.raises(DataError, match=r"expected a data set in \('mnist', 'digits'\) .*got 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DataError, match=r"expected split 'all' for a file"):
        load_dataset(str(path), "test")


# -- ImageSet -----------------------------------------------------------------------------

def test_imageset_validates_and_converts():
    data = ImageSet(images=np.zeros((3, 1, 4, 4), np.float64), labels=[0, 2, 1], name="tiny")
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    assert data.num_classes == 3 and len(data) == 3
    with pytest.raises(DataError, match=r"expected one label per image \(3 images\), got 2 labels"):
        ImageSet(images=torch.zeros(3, 1, 4, 4), labels=[0, 1])
    with pytest.raises(DataError, match=r"expected images values in \[0, 1\]"):
        ImageSet(images=torch.full((1, 1, 2, 2), 2.0), labels=[0])
    with pytest.raises(DataError, match=r"expected labels in \[0, 1\], got a label 4"):
        ImageSet(images=torch.zeros(1, 1, 2, 2), labels=[4], num_classes=2)
    with pytest.raises(DataError, match=r"expected name as a non-empty string"):
        ImageSet(images=torch.zeros(1, 1, 2, 2), labels=[0], name="")


def test_subset_head_shuffled():
    data = load_digits("test")
    sub = data.subset([4, 1])
    assert torch.equal(sub.images[0], data.images[4]) and sub.labels.tolist() == data.labels[[4, 1]].tolist()
    sub.images.zero_()
    assert float(data.images[4].sum()) > 0, "subset must copy"
    mask = data.labels == 3
    assert len(data.subset(mask)) == int(mask.sum())
    assert len(data.head(10)) == 10 and len(data.head(10_000)) == len(data)
    a, b = data.shuffled(7), data.shuffled(7)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, data.labels)
    state = torch.get_rng_state()
    data.shuffled(3)
    assert torch.equal(state, torch.get_rng_state()), "shuffling must not touch the global RNG"
    with pytest.raises(DataError, match=r"expected indices in \[0, 499\], got values in \[0, 500\]"):
        data.subset([0, 500])
    with pytest.raises(DataError, match=r"expected at least one index"):
        data.subset([])
    with pytest.raises(DataError, match=r"expected n as an integer ≥ 1, got 0"):
        data.head(0)


def test_train_test_split_stratifies_and_checks():
    data = load_digits()
    train, test = train_test_split(data, test_size=100, seed=1)
    assert len(train) + len(test) == len(data) and len(test) == 100
    assert np.abs(test.class_counts() - 10).max() <= 1
    with pytest.raises(DataError, match=r"expected test_size as an integer in \[1, 1796\], got 1797"):
        train_test_split(data, test_size=1797)


# -- .npz files ---------------------------------------------------------------------------

def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "nhw"])
@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64"])
def test_npz_layouts_and_dtypes(tmp_path, layout, dtype):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(5, 6, 7, 3 if layout != "nhw" else 1), dtype=np.uint8)
    want = torch.from_numpy(u8.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    x = {"nhwc": u8, "nchw": u8.transpose(0, 3, 1, 2), "nhw": u8[..., 0]}[layout]
    x = x if dtype == "uint8" else (x.astype(dtype) / 255)
    path = _save(tmp_path / "d.npz", x=x, y=np.arange(5) % 3)
    data = load_npz(path)
    assert data.images.shape == want.shape and data.name == "d"
    assert torch.allclose(data.images, want, atol=1e-6)
    assert data.labels.tolist() == [0, 1, 2, 0, 1]


def test_npz_round_trip_and_keys(tmp_path):
    data = load_digits("test").head(20)
    back = load_npz(data.save_npz(tmp_path / "r.npz"))
    assert torch.equal(back.images, data.images) and torch.equal(back.labels, data.labels)
    path = _save(tmp_path / "k.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=[1, 0])
    assert len(load_npz(path, x_key="x_train", y_key="y_train")) == 2
    square = _save(tmp_path / "s.npz", x=np.zeros((2, 3, 3, 3), np.uint8), y=[0, 1])
    assert load_npz(square, layout="nhwc").image_shape == (3, 3, 3)
    column = _save(tmp_path / "c.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([[1.0], [0.0]]))
    assert load_npz(column).labels.tolist() == [1, 0]


def _bad_files(tmp_path):
    """(file, expected message) pairs: each malformed input names the file and the fault."""
    cases = []

    def add(name, message, **arrays):
        cases.append((_save(tmp_path / name, **arrays), message))

    add("float255.npz", r"expected float pixel values in \[0, 1\], got values in \[0, 255\] "
        r"\(0..255 floats\? store x as uint8", x=np.stack([np.zeros((4, 4)), np.full((4, 4), 255.0)]), y=[0, 1])
    add("nan.npz", r"expected finite pixel values, got 1 NaN", x=np.array([[[np.nan]]]), y=[0])
    add("int16.npz", r"expected x as uint8 \(0..255\) or float \(0..1\), got dtype int16",
        x=np.zeros((2, 4, 4), np.int16), y=[0, 1])
    add("rank5.npz", r"expected x of rank 3 \(NHW\) or 4 \(NHWC or NCHW\), got shape \(1, 1, 1, 1, 1\)",
        x=np.zeros((1, 1, 1, 1, 1), np.uint8), y=[0])
    add("ambiguous.npz", r"cannot tell NCHW from NHWC for x of shape \(2, 3, 4, 3\)",
        x=np.zeros((2, 3, 4, 3), np.uint8), y=[0, 1])
    add("nolabels.npz", r"expected an array named 'y', found \['x'\]", x=np.zeros((2, 4, 4), np.uint8))
    add("short.npz", r"expected one label per image \(2\), got 1 labels", x=np.zeros((2, 4, 4), np.uint8), y=[0])
    add("onehot.npz", r"expected y as 1-D integer class labels, got shape \(2, 10\) \(one-hot",
        x=np.zeros((2, 4, 4), np.uint8), y=np.eye(10)[:2])
    add("fraclabels.npz", r"expected y as integer class labels, got dtype float64",
        x=np.zeros((2, 4, 4), np.uint8), y=[0.5, 1.0])
    add("neglabels.npz", r"expected labels ≥ 0, got -1", x=np.zeros((2, 4, 4), np.uint8), y=[0, -1])
    add("empty.npz", r"expected at least one image", x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0, int))
    add("objects.npz", r"cannot read arrays 'x' and 'y' \(ValueError: Object arrays",
        x=np.array([None, 1], dtype=object), y=[0, 1])
    text = tmp_path / "text.npz"
    text.write_text("not a numpy file\n")
    cases.append((text, r"cannot read as a .npz archive"))
    single = tmp_path / "single.npz"
    with open(single, "wb") as fh:
        np.save(fh, np.zeros(3))
    cases.append((single, r"expected a .npz archive \(numpy.savez\), got a single .npy array"))
    cases.append((tmp_path / "missing.npz", r"no such file"))
    cases.append((tmp_path, r"expected a .npz file, got a directory"))
    return cases


def test_malformed_npz_files_give_one_line_errors_naming_the_file(tmp_path):
    for path, message in _bad_files(tmp_path):
        with pytest.raises(DataError, match=message) as info:
            load_npz(path)
        text = str(info.value)
        assert text.startswith(str(path)), text
        assert "\n" not in text, text
        assert info.value.path == str(path)


# -- torch datasets -----------------------------------------------------------------------

class _MapStyle(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Iterable(torch.utils.data.IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_from_torch_dataset_accepts_tensors_arrays_and_pil():
    from PIL import Image

    u8 = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    items = [
        (torch.from_numpy(u8 / 255).float()[None], 3),          # float CHW
        (torch.from_numpy(u8), torch.tensor(1)),                 # uint8 HW tensor
        (u8[:, :, None], np.int64(2)),                           # numpy HWC
        (Image.fromarray(u8), 0),                                # PIL grey
    ]
    for ds in (_MapStyle(items), _Iterable(items)):
        data = from_torch_dataset(ds)
        assert data.image_shape == (1, 4, 4) and data.labels.tolist() == [3, 1, 2, 0]
        for img in data.images:
            assert torch.allclose(img[0], torch.from_numpy(u8 / 255).float(), atol=1e-6)
    assert len(from_torch_dataset(_MapStyle(items), limit=2)) == 2
    assert len(from_torch_dataset(_Iterable(items), limit=3)) == 3


def test_from_torch_dataset_errors_name_the_item():
    good = (torch.zeros(1, 4, 4), 0)
    with pytest.raises(DataError, match=r"item 1: expected an image of shape \(1, 4, 4\) like item 0, got \(1, 5, 5\)"):
        from_torch_dataset(_MapStyle([good, (torch.zeros(1, 5, 5), 1)]))
    with pytest.raises(DataError, match=r"item 0: expected an \(image, label\) pair, got Tensor"):
        from_torch_dataset(_MapStyle([torch.zeros(1, 4, 4)]))
    with pytest.raises(DataError, match=r"item 1: expected an integer label, got 0.5"):
        from_torch_dataset(_MapStyle([good, (torch.zeros(1, 4, 4), 0.5)]))
    with pytest.raises(DataError, match=r"item 0: expected float pixel values in \[0, 1\]"):
        from_torch_dataset(_MapStyle([(torch.full((1, 4, 4), 3.0), 0)]))
    with pytest.raises(DataError, match=r"expected at least one item in _MapStyle, got none"):
        from_torch_dataset(_MapStyle([]))
    with pytest.raises(DataError, match=r"expected a torch Dataset"):
        from_torch_dataset(42)
