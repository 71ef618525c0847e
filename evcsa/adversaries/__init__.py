"""Adversaries: strategies that play the EV-CSA game."""

from evcsa.adversaries.base import Adversary

__all__ = ["Adversary"]
