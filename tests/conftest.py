"""Shared test settings.

Statistical tests are seeded (DerivedKeys, fixed seeds), so the suite is deterministic;
each one states its false-failure probability in its docstring. Hypothesis runs
derandomized in the "ci" profile.
"""

from __future__ import annotations

import os

# Before torch loads: idle OpenMP threads sleep instead of spinning. On a machine shared
# with other work (parallel test runs, CI neighbours) small-model tests run up to 20x
# faster; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    """A model cache holding the "digits" recipe trained here (once per session, a few
    seconds), so tests never touch the user's cache. Runs use the shipped weights and need
    no cache; this one is for the tests of training and caching (``evcsa train``)."""
    from evcsa.models import REFERENCE_CONFIGS, reference_model

    import torch

    path = tmp_path_factory.mktemp("evcsa-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 14k-parameter model: one thread is fastest, and robust to load
    try:
        reference_model(REFERENCE_CONFIGS["digits"], cache_dir=path, progress=False)
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture(scope="session")
def digits_model():
    """The shipped "digits" reference model (a ModelClassifier)."""
    from evcsa.models import reference_model

    return reference_model("digits")
