"""Our estimates beside the papers' numbers: value with interval, the paper's, the
difference, and whether the paper's value lies inside our interval.

An estimate is anything with ``value``, ``low`` and ``high`` on the [0, 1] scale of a
proportion or probability — :class:`evcsa.stats.BinomialEstimate` (an accuracy, a
success rate, an empirical advantage) or an interval estimate such as the expected
advantage's. The paper's value is a :class:`~evcsa.reproduction.values.PaperValue`; both
are printed in the paper's units (percent for the tables, probability for Adv).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import attrs

from evcsa.errors import InvalidParameter
from evcsa.reproduction.values import PaperValue, paper_value

__all__ = ["Comparison", "Point", "compare", "format_comparisons"]


@attrs.frozen
class Point:
    """A value without an interval (e.g. an exact advantage computed from p̂ when no
    interval method is available): ``low`` and ``high`` are None."""

    value: float
    low: None = None
    high: None = None


def _as_estimate(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Point(float(value))
    return value


def _check_estimate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, Point):
        if not (math.isfinite(value.value) and 0.0 <= value.value <= 1.0):
            raise InvalidParameter(f"expected a value in [0, 1], got {value.value}")
        return
    try:
        v, lo, hi = float(value.value), float(value.low), float(value.high)
    except (AttributeError, TypeError, ValueError):
        raise InvalidParameter(f"expected an estimate with value, low and high (e.g. a BinomialEstimate), "
                               f"got {type(value).__name__}") from None
    if not all(math.isfinite(t) and 0.0 <= t <= 1.0 for t in (v, lo, hi)) or not lo <= v <= hi:
        raise InvalidParameter(f"expected an estimate with 0 ≤ low ≤ value ≤ high ≤ 1, got value {v}, "
                               f"interval [{lo}, {hi}]")


@attrs.frozen(kw_only=True)
class Comparison:
    """One of our numbers beside the paper's.

    Attributes:
        label: the row's name, e.g. "bit-depth-1 × FGSM".
        ours: our estimate (value, low, high in [0, 1]), a bare number in [0, 1] (kept as a
            :class:`Point`: no interval), or None when not measured.
        paper: the paper's value, or None when the paper has none for this cell.
        spread: for a mean over repetitions, the spread (standard deviation) of ours, on the
            [0, 1] scale, shown as "± s" (Table 3); else None.
        note: a short remark printed after the row.
        units: how to print ours when there is no paper value: "percent" (an accuracy) or
            "probability"; default: the paper value's units, else "probability".
    """

    label: str
    ours: Any = attrs.field(default=None, converter=_as_estimate, validator=_check_estimate)
    paper: PaperValue | None = None
    spread: float | None = None
    note: str = ""
    units: str = ""

    @property
    def scale(self) -> float:
        """100 when printed in percent (``units``, else the paper value's), else 1."""
        units = self.paper.units if self.paper is not None else (self.units or "probability")
        return 100.0 if units == "percent" else 1.0

    @property
    def difference(self) -> float | None:
        """ours − paper on the [0, 1] scale, or None when either is missing."""
        if self.ours is None or self.paper is None or self.paper.fraction is None:
            return None
        return float(self.ours.value) - self.paper.fraction

    @property
    def inside(self) -> bool | None:
        """Whether the paper's value lies in our interval [low, high] (None when either is
        missing, or ours has no interval). A value printed rounded counts as inside when its
        rounding interval meets ours."""
        if self.ours is None or self.ours.low is None or self.paper is None or self.paper.fraction is None:
            return None
        half = _rounding(self.paper.printed) / (100.0 if self.paper.units == "percent" else 1.0)
        p = self.paper.fraction
        return float(self.ours.low) <= p + half and p - half <= float(self.ours.high)


def _rounding(printed: str) -> float:
    """Half a unit of the last printed digit: "99.43" → 0.005, "54" → 0.5, "0.1" → 0.05."""
    text = printed.strip("()").split("±")[0]
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0 ** -decimals


def compare(label: str, ours: Any, paper: PaperValue | str | None, *, spread: float | None = None,
            note: str = "") -> Comparison:
    """A :class:`Comparison`; ``paper`` may be a paper value identifier.

    Raises:
        InvalidParameter: a malformed estimate or an unknown identifier.
    """
    if isinstance(paper, str):
        paper = paper_value(paper)
    return Comparison(label=label, ours=ours, paper=paper, spread=spread, note=note)


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def format_comparisons(rows: Sequence[Comparison], *, title: str = "", digits: int | None = None,
                       markdown: bool = False) -> str:
    """The comparison as an aligned text table (or a Markdown table).

    Columns: the label; ours as "value [low, high]" (plus "± spread" when given); the
    paper's value as printed (with its ± part); ours − paper; "yes"/"no" for the paper's
    value inside our interval ("—" where something is missing); the note. Numbers are in
    the paper's units: percent (1 decimal by default) or probability (3 decimals).

    Args:
        rows: the comparisons.
        title: a first line (text) or a heading line (Markdown); none when empty.
        digits: decimals for our numbers and the difference (default by units).
        markdown: a Markdown table instead of aligned text.
    """
    header = ["", "ours [95 % CI]", "paper", "ours − paper", "paper in CI"]
    body = []
    for r in rows:
        d = digits if digits is not None else (1 if r.scale == 100.0 else 3)
        s = r.scale
        if r.ours is None:
            ours = "—"
        elif r.ours.low is None:
            ours = f"{_fmt(s * r.ours.value, d)} (no interval)"
        else:
            ours = f"{_fmt(s * r.ours.value, d)} [{_fmt(s * r.ours.low, d)}, {_fmt(s * r.ours.high, d)}]"
            if r.spread is not None:
                ours += f" ± {_fmt(s * r.spread, d)}"
        if r.paper is None:
            paper = "—"
        elif r.paper.value is None:
            paper = r.paper.printed if r.paper.printed == "-" else f"{r.paper.printed}?"
        else:
            paper = r.paper.printed
        diff = "—" if r.difference is None else f"{s * r.difference:+.{d}f}"
        inside = {None: "—", True: "yes", False: "no"}[r.inside]
        body.append([r.label, ours, paper, diff, inside, r.note])
    has_notes = any(row[-1] for row in body)
    if has_notes:
        header.append("note")
    else:
        body = [row[:-1] for row in body]
    if markdown:
        lines = [f"**{title}**", ""] if title else []
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1 - has_notes) + [":--"] * has_notes) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:5], widths[1:5])] + list(row[5:])
        return "  ".join(cells).rstrip()

    lines = [title] if title else []
    lines += [line(header), "  ".join("-" * w for w in widths).rstrip()]
    lines += [line(row) for row in body]
    return "\n".join(lines)
