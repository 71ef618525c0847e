"""Fixtures for the adversary tests: the tiny digits model and stand-in defenses."""

from __future__ import annotations

import pytest

from tests.attacks.tiny_models import correct_subset, digits_mlp, single_thread


@pytest.fixture(scope="session")
def digits():
    """(model, x, y): the tiny MLP and 40 test digits it classifies correctly."""
    model, x, y = digits_mlp()
    xs, ys = correct_subset(model, x, y, 40)
    return model, xs, ys


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These tests use tiny tensors: one torch thread avoids oversubscribing a shared CPU."""
    with single_thread():
        yield
