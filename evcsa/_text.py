"""Small helpers for the text evcsa shows to people: counted nouns, "did you mean" hints, and
text made safe to print (:func:`printable`)."""

from __future__ import annotations

import difflib
import re
from typing import Iterable

__all__ = ["counted", "did_you_mean", "duration", "printable"]

#: What a terminal would act on instead of showing: C0 and C1 controls, DEL, the line and
#: paragraph separators and the bidirectional overrides and isolates (which reorder text).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: ``counted(1, "game")`` → "1 game",
    ``counted(3, "adversary", "adversaries")`` → "3 adversaries" (default plural: + "s")."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def duration(seconds: float, *, minute_digits: int = 1) -> str:
    """A time estimate for people: "45 s" under 2 minutes, "12.3 min" (``minute_digits``
    decimals) under 2 hours, else "2.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.{minute_digits}f} min"
    return f"{seconds / 3600:.1f} h"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the choice closest to ``word`` (difflib's
    ``get_close_matches``, cutoff 0.6), or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``), so
    that a label or a path printed on a terminal shows what it holds and cannot move the
    cursor, clear the screen or reorder the line. Anything else is left as it is.

    Args:
        keep_newlines: leave line breaks alone (for multi-line text evcsa composed itself).
    """
    def escape(m: re.Match[str]) -> str:
        c = m.group()
        if keep_newlines and c == "\n":
            return c
        if c in _NAMED:
            return _NAMED[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
    return _UNPRINTABLE.sub(escape, text)
