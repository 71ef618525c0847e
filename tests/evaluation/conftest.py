"""Fixtures for the evaluation tests: the digits reference model from the session cache,
one torch thread, and a working directory with the cache in the environment."""

from __future__ import annotations

import pytest

from tests.attacks.tiny_models import single_thread


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one torch thread avoids oversubscribing a shared CPU."""
    with single_thread():
        yield


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits_cache):
    """A fresh working directory whose model cache holds the digits model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    return tmp_path


@pytest.fixture(scope="session")
def digits_xy(digits_model):
    """(model, x, y): the digits reference model and 60 test digits it classifies correctly."""
    from evcsa.data import load_digits

    data = load_digits("test")
    keep = (digits_model.predict(data.images).cpu() == data.labels).nonzero().flatten()[:60]
    return digits_model, data.images[keep], data.labels[keep]
