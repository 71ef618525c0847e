"""The reference models that ship with their weights: names, files, SHA-256s (no torch).

:data:`SHIPPED` is the table :func:`evcsa.models.reference_model` loads from (it checks each
file's SHA-256 against :attr:`ShippedWeights.sha256` at every load); it lives here, apart
from :mod:`evcsa.models`, so that configurations and the command line can check a model's
name and data set without loading torch. The files are package data in
``evcsa/models_data/``: ``<stem>.npz`` (:mod:`evcsa.weights_io`), ``<stem>.json`` (its
provenance) and, for converted weights, ``<stem>.NOTICE`` (the licence and the source).
"""

from __future__ import annotations

import pathlib

import attrs

__all__ = ["MODELS_DATA", "PAPER_MODEL", "REFERENCE_MODELS", "SHIPPED", "ShippedWeights", "default_model"]

#: The folder of the shipped weights (package data): ``<name>.npz`` (:mod:`evcsa.weights_io`)
#: and ``<name>.json`` (where the weights come from, the accuracy measured when shipped).
MODELS_DATA = pathlib.Path(__file__).with_name("models_data")


@attrs.frozen(kw_only=True)
class ShippedWeights:
    """A reference model whose weights ship with evcsa.

    Attributes:
        name: the reference model's name (:func:`evcsa.models.reference_model`).
        architecture: a key of :data:`evcsa.models.ARCHITECTURES`.
        dataset: the embedded data set it takes ("mnist", "digits").
        file: the ``.npz`` in :data:`MODELS_DATA`; its provenance is the ``.json`` of the
            same stem.
        sha256: the file's SHA-256, checked at every load.
        input_offset: :class:`~evcsa.models.CarliniMNIST`'s ``input_offset`` (−0.5:
            trained on [−0.5, 0.5]).
        origin: "trained" (evcsa's recipe, :data:`evcsa.models.REFERENCE_CONFIGS`) or "converted"
            (someone else's published weights).
        summary: one line on where the weights come from.
    """

    name: str
    architecture: str
    dataset: str
    file: str
    sha256: str
    input_offset: float = 0.0
    origin: str
    summary: str

    @property
    def path(self) -> pathlib.Path:
        """The ``.npz`` file."""
        return MODELS_DATA / self.file

    @property
    def provenance_path(self) -> pathlib.Path:
        """The ``.json`` beside it."""
        return self.path.with_suffix(".json")


#: The name of the seeds' model: Carlini's MNIST CNN as EvadeML-Zoo published it.
PAPER_MODEL = "mnist-carlini-evademl"

#: Every reference model by name; each loads offline from the shipped weights.
SHIPPED: dict[str, ShippedWeights] = {
    "mnist": ShippedWeights(
        name="mnist", architecture="carlini_mnist", dataset="mnist", file="mnist.npz",
        sha256="c2aaf9da9c3f1b9682dfbe4cb274223dcdb8847efeb384a59fc6be7a498300a6", origin="trained",
        summary="evcsa's Carlini–Wagner CNN, trained by REFERENCE_CONFIGS['mnist'] on the 4,000 embedded "
                "training digits (scripts/ship_reference_weights.py)"),
    "digits": ShippedWeights(
        name="digits", architecture="digits_cnn", dataset="digits", file="digits.npz",
        sha256="e5a0587c6434456e82aaab97eb8f3fd6cbc95377cc605de85194d57b1a647a4a", origin="trained",
        summary="evcsa's small CNN, trained by REFERENCE_CONFIGS['digits'] on the 1,297 training 8×8 digits "
                "(scripts/ship_reference_weights.py)"),
    PAPER_MODEL: ShippedWeights(
        name=PAPER_MODEL, architecture="carlini_mnist", dataset="mnist", file="carlini_mnist_evademl.npz",
        sha256="69f6fdf9824a351a9e1a75d452ca354c5fb83833ad175e84aa09374aac539daf", input_offset=-0.5,
        origin="converted",
        summary="the seeds' model: Carlini's MNIST CNN trained on MNIST's training set (99.43 % on its 10,000 "
                "test digits), published by EvadeML-Zoo (MIT) as trained_models/MNIST_carlini.keras_weights.h5 "
                "at commit 08a027a, converted by scripts/convert_carlini_keras_weights.py"),
}

#: The names :func:`evcsa.models.reference_model` takes.
REFERENCE_MODELS: tuple[str, ...] = tuple(SHIPPED)


def default_model(dataset: str) -> str:
    """The reference model the seeds' evaluations use on ``dataset``: the seeds' model
    (:data:`PAPER_MODEL`) on "mnist", evcsa's small CNN on "digits" (a smoke test)."""
    return PAPER_MODEL if dataset == "mnist" else dataset
