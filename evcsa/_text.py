"""Small helpers for the text evcsa shows to people: counted nouns and "did you mean" hints."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["counted", "did_you_mean"]


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: ``counted(1, "game")`` → "1 game",
    ``counted(3, "adversary", "adversaries")`` → "3 adversaries" (default plural: + "s")."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the choice closest to ``word`` (difflib's
    ``get_close_matches``, cutoff 0.6), or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
