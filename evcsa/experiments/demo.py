"""The configuration of ``evcsa demo`` (``evcsa demo --print-config`` prints it), kept once
as package data (``evcsa/experiments/demo.toml``): seed 002's MNIST setting — feature
squeezing with 1-bit depth and with a 2×2 median, deterministic and randomized (δ = 0.2 and
0.5, the seed's choices), against graybox transfer (BIM), greedy A* and BPDA+EOT; N = 25,
τ = 1, ε = 0.3 (L∞).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["DEMO_TOML"]

#: The demo configuration's TOML text (the package data file ``demo.toml``).
DEMO_TOML: str = resources.files("evcsa.experiments").joinpath("demo.toml").read_text(encoding="utf-8")
