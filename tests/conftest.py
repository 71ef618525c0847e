"""Shared test settings.

Statistical tests are seeded (DerivedKeys, fixed seeds), so the suite is deterministic;
each one states its false-failure probability in its docstring. Hypothesis runs
derandomized in the "ci" profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
