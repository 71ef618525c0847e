"""The papers' own numbers, read from the package data file ``paper_values.toml``.

Every value of seed 002 (Mix'n'Squeeze) Tables 1, 2 and 3 and every number its text
states about Figures 5–7 and the setup; seed 000 (Randomized Squeezing) contributes only
the settings its text states (the text we hold ends in § 5.1, before any result). Each
value carries its source (paper, table or section, row, column), its units and what it
measures, and the cell exactly as printed, so a reproduction can print the paper's number
beside its own (:mod:`evcsa.reproduction.compare`).

Identifiers: table cells are ``"<table>/<dataset>/<squeezer>@<δ>/<column>"``, e.g.
``"table1/mnist/bit-depth-1@0/fgsm"`` or ``"table3/mnist/median-2x2@0.5/adversarial"``
(Table 3's bracketed values, without randomness, are the ``@0`` cells); numbers stated in
the text are ``"stated/<id>"``, e.g. ``"stated/fig6-cwinf-median2x2-delta0.5"``.
"""

from __future__ import annotations

import functools
import re
import sys
from importlib import resources
from typing import Any, Mapping

import attrs

from evcsa._text import did_you_mean
from evcsa.errors import DataError, InvalidParameter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PAPERS", "PaperTable", "PaperValue", "paper_table", "paper_value", "paper_values"]

#: The two seed papers by the name ``evcsa reproduce`` uses.
PAPERS = ("mix-n-squeeze", "randomized-squeezing")

_SCHEMA = 1
_TABLE3_CELL = re.compile(r"(?P<mean>\d+(?:\.\d+)?)±(?P<spread>\d+(?:\.\d+)?) \((?P<base>\d+(?:\.\d+)?)\)")


@attrs.frozen(kw_only=True)
class PaperValue:
    """One number of a paper.

    Attributes:
        id: the identifier (see the module docstring).
        paper: "mix-n-squeeze" (seed 002) or "randomized-squeezing" (seed 000).
        source: where it is printed: "Table 1", "§ 4.3 (on Figure 6, row 2, column 3)", ….
        table: "table1", "table2", "table3", or None for a number stated in the text.
        dataset: "mnist", "cifar10", "imagenet", or None.
        row: the table row as an evcsa squeezer spec ("none", "bit-depth-1",
            "median-2x2", "nlm-11-3-4"), or None.
        delta: the randomness magnitude δ of the row (0 without randomness), or None.
        column: an attack registry name ("fgsm", "cw_l2_next", …), "all_attacks",
            "legitimate", "non_adversarial", "adversarial", or None.
        value: the number in ``units`` (float), or None where the paper prints "-" (not
            evaluated) or the entry is not a single number.
        spread: the ± part (Table 3), else None.
        printed: the cell or number exactly as printed.
        units: "percent", "probability", "samples", ….
        measures: what the number measures.
        quote: for a number stated in the text, the sentence it is in; else "".
        context: the setting of a stated number (attack, squeezer, δ, N, τ, …).
    """

    id: str
    paper: str
    source: str
    table: str | None
    dataset: str | None
    row: str | None
    delta: float | None
    column: str | None
    value: float | None
    spread: float | None
    printed: str
    units: str
    measures: str
    quote: str = ""
    context: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def fraction(self) -> float | None:
        """:attr:`value` on the [0, 1] scale of a proportion (percent ÷ 100; a probability
        as is), or None when the value is missing or not a proportion."""
        if self.value is None:
            return None
        if self.units == "percent":
            return self.value / 100.0
        if self.units == "probability":
            return self.value
        return None


@attrs.frozen(kw_only=True)
class PaperTable:
    """A table's metadata: ``id``, ``paper``, ``source``, ``caption``, ``measures``,
    ``units``, ``columns`` (in printed order), ``notes`` (remarks on the transcription and
    on the paper's own inconsistencies)."""

    id: str
    paper: str
    source: str
    caption: str
    measures: str
    units: str
    columns: tuple[str, ...]
    notes: tuple[str, ...]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _delta_key(delta: float) -> str:
    return f"{delta:g}"


def _table_values(table: Mapping[str, Any]) -> list[PaperValue]:
    out = []
    columns = list(table["columns"])
    for row in table["rows"]:
        common = dict(paper=table["paper"], source=table["source"], table=table["id"],
                      dataset=row["dataset"], row=row["squeezer"], units=table["units"],
                      measures=table["measures"])
        delta = float(row["delta"])
        if table["id"] == "table3":
            cells = _TABLE3_CELL.findall(row["cells"])
            if len(cells) != len(columns):
                raise DataError(f"paper_values.toml: {table['id']} {row['squeezer']}: expected {len(columns)} "
                                f"cells 'mean±spread (baseline)', got {row['cells']!r}")
            for column, (mean, spread, base) in zip(columns, cells):
                out.append(PaperValue(id=f"{table['id']}/{row['dataset']}/{row['squeezer']}@{_delta_key(delta)}/{column}",
                                      delta=delta, column=column, value=float(mean), spread=float(spread),
                                      printed=f"{mean}±{spread}", **common))
                out.append(PaperValue(id=f"{table['id']}/{row['dataset']}/{row['squeezer']}@0/{column}",
                                      delta=0.0, column=column, value=float(base), spread=None,
                                      printed=f"({base})", **common))
            continue
        cells = row["cells"].split()
        if len(cells) != len(columns):
            raise DataError(f"paper_values.toml: {table['id']} {row['squeezer']}: expected {len(columns)} cells, "
                            f"got {len(cells)}")
        for column, cell in zip(columns, cells):
            out.append(PaperValue(id=f"{table['id']}/{row['dataset']}/{row['squeezer']}@{_delta_key(delta)}/{column}",
                                  delta=delta, column=column, value=_number(cell), spread=None, printed=cell,
                                  **common))
    return out


def _stated_value(entry: Mapping[str, Any]) -> PaperValue:
    context = dict(entry.get("context", {}))
    delta = context.get("delta")
    return PaperValue(id=f"stated/{entry['id']}", paper=entry["paper"], source=entry["source"], table=None,
                      dataset=context.get("dataset"), row=context.get("squeezer"),
                      delta=None if delta is None else float(delta), column=None,
                      value=_number(entry["value"]), spread=None, printed=entry["value"], units=entry["units"],
                      measures=entry["measures"], quote=entry["quote"], context=context)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, PaperValue], dict[str, PaperTable]]:
    text = resources.files("evcsa.reproduction").joinpath("paper_values.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if data.get("schema") != _SCHEMA:
        raise DataError(f"paper_values.toml: expected schema {_SCHEMA}, got {data.get('schema')!r}")
    values: dict[str, PaperValue] = {}
    tables: dict[str, PaperTable] = {}
    for table in data["tables"]:
        tables[table["id"]] = PaperTable(id=table["id"], paper=table["paper"], source=table["source"],
                                         caption=table["caption"], measures=table["measures"],
                                         units=table["units"], columns=tuple(table["columns"]),
                                         notes=tuple(table.get("notes", ())))
        for v in _table_values(table):
            values[v.id] = v
    for entry in data["stated"]:
        v = _stated_value(entry)
        values[v.id] = v
    return values, tables


def paper_value(id: str) -> PaperValue:
    """The paper value with identifier ``id`` (see the module docstring).

    Raises:
        InvalidParameter: no such identifier (with the closest one).
    """
    values, _ = _load()
    try:
        return values[id]
    except KeyError:
        raise InvalidParameter(f"expected a paper value identifier, got {id!r}{did_you_mean(id, values)}",
                               got=id) from None


def paper_values(*, paper: str | None = None, table: str | None = None, dataset: str | None = None,
                 row: str | None = None, delta: float | None = None,
                 column: str | None = None) -> tuple[PaperValue, ...]:
    """The paper values matching every given filter, in file order (rows, then columns).

    Args:
        paper: one of :data:`PAPERS`.
        table: "table1", "table2", "table3" (``"stated"`` for numbers stated in the text).
        dataset, row, delta, column: as the :class:`PaperValue` attributes.

    Raises:
        InvalidParameter: an unknown paper.
    """
    if paper is not None and paper not in PAPERS:
        raise InvalidParameter(f"expected paper in {PAPERS}, got {paper!r}{did_you_mean(paper, PAPERS)}",
                               got=paper)
    values, _ = _load()
    out = []
    for v in values.values():
        if paper is not None and v.paper != paper:
            continue
        if table is not None and (v.table or "stated") != table:
            continue
        if dataset is not None and v.dataset != dataset:
            continue
        if row is not None and v.row != row:
            continue
        if delta is not None and (v.delta is None or abs(v.delta - delta) > 1e-9):
            continue
        if column is not None and v.column != column:
            continue
        out.append(v)
    return tuple(out)


def paper_table(id: str) -> PaperTable:
    """A table's metadata ("table1", "table2", "table3").

    Raises:
        InvalidParameter: no such table.
    """
    _, tables = _load()
    try:
        return tables[id]
    except KeyError:
        raise InvalidParameter(f"expected a table in {tuple(tables)}, got {id!r}{did_you_mean(id, tables)}",
                               got=id) from None
