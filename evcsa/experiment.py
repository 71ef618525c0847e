"""Deprecated alias of :mod:`evcsa.experiments` (the package that replaced this module);
import from :mod:`evcsa.experiments` instead. The names are the same objects."""

from __future__ import annotations

import warnings

from evcsa.experiments import *  # noqa: F401,F403
from evcsa.experiments import __all__  # noqa: F401

warnings.warn("evcsa.experiment is deprecated: import from evcsa.experiments", DeprecationWarning,
              stacklevel=2)
