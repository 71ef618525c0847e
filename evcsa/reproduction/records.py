"""A reproduction's stored records: :class:`PartResult` and :class:`ReproductionResult`,
written by :func:`save_result` (``reproduction.json``, one ``<part>.json`` per part,
``reproduction.txt``), read back by :func:`load_result` and printed by
:func:`format_result`. Every file goes through :func:`evcsa._files.atomic_write`."""

from __future__ import annotations

import json
import pathlib
from typing import IO, Any

import attrs

from evcsa._files import atomic_write, umask_mode
from evcsa.errors import DataError
from evcsa.reproduction.compare import Comparison, Point, format_comparisons
from evcsa.reproduction.plans import Plan, build_plan
from evcsa.reproduction.values import paper_value
from evcsa.stats import BinomialEstimate, IntervalEstimate

__all__ = ["PartResult", "ReproductionResult", "estimate_from_dict", "estimate_to_dict", "format_result",
           "load_result", "part_to_dict", "save_result", "write_json", "write_text"]

@attrs.frozen(kw_only=True)
class PartResult:
    """One part's outcome: ``id``, ``title``, the ``comparisons`` (ours beside the paper),
    extra ``lines`` to print (e.g. Figure 5's matrix), the raw ``data`` written to
    ``<part>.json``, and ``seconds`` of wall time."""

    id: str
    title: str
    comparisons: tuple[Comparison, ...]
    lines: tuple[str, ...] = ()
    data: Any = None
    seconds: float = 0.0


@attrs.frozen(kw_only=True)
class ReproductionResult:
    """A plan's outcome: the plan, its :class:`PartResult` list, the wall time (seconds),
    the ``environment`` it ran in (evcsa, torch, the git commit when run from a
    checkout, the CPU, its cores, the workers, when it finished) and the ``model``'s
    provenance (its ``info``: name, source, weights SHA-256, where the weights come from;
    empty for runs stored before it was recorded)."""

    plan: Plan
    parts: tuple[PartResult, ...]
    seconds: float
    environment: dict[str, Any] = attrs.field(factory=dict)
    model: dict[str, Any] = attrs.field(factory=dict)


def write_text(path: pathlib.Path, text: str, *, permissions: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`evcsa._files.atomic_write`), with
    ``permissions`` (default: the mode a plain ``open(path, "w")`` gives, :func:`evcsa._files.umask_mode`).

    Raises:
        OSError: the disk refused.
    """
    def write(fh: IO[Any]) -> None:
        fh.write(text)

    atomic_write(path, write, mode="w", permissions=umask_mode() if permissions is None else permissions)


def write_json(path: pathlib.Path, data: Any) -> None:
    """Write ``data`` as indented JSON (one space, UTF-8, a final newline) to ``path``
    atomically.

    Raises:
        OSError: the disk refused.
    """
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def estimate_to_dict(e: Any) -> dict[str, Any] | None:
    """An estimate (a :class:`~evcsa.stats.BinomialEstimate`, an
    :class:`~evcsa.stats.IntervalEstimate`, a :class:`~evcsa.reproduction.compare.Point`)
    as the JSON ``<part>.json`` stores it; None stays None."""
    if e is None:
        return None
    if getattr(e, "low", None) is None:
        return {"type": "point", "value": float(e.value)}
    if hasattr(e, "successes") and hasattr(e, "trials"):
        return {"type": "binomial", "successes": int(e.successes), "trials": int(e.trials),
                "alpha": float(getattr(e, "alpha", 0.05)), "value": float(e.value), "low": float(e.low),
                "high": float(e.high)}
    return {"type": "interval", "value": float(e.value), "low": float(e.low), "high": float(e.high),
            "alpha": float(getattr(e, "alpha", 0.05)), "method": str(getattr(e, "method", ""))}


def estimate_from_dict(d: Any) -> Any:
    """The estimate :func:`estimate_to_dict` stored, back.

    Raises:
        KeyError, TypeError, ValueError: a malformed dict (:func:`load_result` reports them as DataError).
    """
    if d is None:
        return None
    if d["type"] == "point":
        return Point(d["value"])
    if d["type"] == "binomial":
        return BinomialEstimate.from_counts(d["successes"], d["trials"], d["alpha"])
    return IntervalEstimate(d["value"], d["low"], d["high"], d["alpha"], d["method"])


def part_to_dict(part: PartResult) -> dict[str, Any]:
    """``part`` as ``<part>.json`` stores it: its rows with the paper values by id."""
    return {"id": part.id, "title": part.title, "seconds": part.seconds, "lines": list(part.lines),
            "comparisons": [{"label": c.label, "ours": estimate_to_dict(c.ours),
                             "paper": None if c.paper is None else c.paper.id, "spread": c.spread,
                             "note": c.note, "units": c.units} for c in part.comparisons],
            "data": part.data}


def save_result(result: ReproductionResult, path: str | pathlib.Path) -> pathlib.Path:
    """Write ``reproduction.json`` (the plan's name, scale, data, C&W schedule, the parts
    run, the wall time, the environment, the model and its provenance), one
    ``<part>.json`` per part (its comparison rows, extra lines and raw counts) and
    ``reproduction.txt`` (:func:`format_result`) into ``path``.
    :func:`load_result` reads them back."""
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    plan = result.plan
    for part in result.parts:
        write_json(out / f"{part.id}.json", part_to_dict(part))
    write_json(out / "reproduction.json", {"name": plan.name, "scale": plan.scale.name, "data": plan.data,
                                           "cw_schedule": plan.scale.cw_schedule,
                                           "parts": [p.id for p in result.parts], "seconds": result.seconds,
                                           "environment": result.environment,
                                           "model": {"reference": plan.model, **result.model}})
    write_text(out / "reproduction.txt", format_result(result) + "\n")
    return out


def load_result(path: str | pathlib.Path) -> ReproductionResult:
    """A :class:`ReproductionResult` from a directory :func:`~evcsa.reproduction.run.run_plan`
    (``output=``) or :func:`save_result` wrote: the same comparison rows, so
    :func:`format_result` prints the same tables (how the docs' tables are regenerated from
    a stored run).

    Raises:
        DataError: a missing or malformed file.
    """
    root = pathlib.Path(path)
    try:
        meta = json.loads((root / "reproduction.json").read_text(encoding="utf-8"))
        model = dict(meta.get("model") or {})
        # runs stored before the model was recorded ran evcsa's own model of their data set
        reference = model.pop("reference", meta["data"])
        plan = build_plan(meta["name"], scale=meta["scale"], data=meta["data"], model=reference,
                          cw_schedule=meta["cw_schedule"])
        parts = []
        for pid in meta["parts"]:
            d = json.loads((root / f"{pid}.json").read_text(encoding="utf-8"))
            rows = tuple(Comparison(label=c["label"], ours=estimate_from_dict(c["ours"]),
                                    paper=None if c["paper"] is None else paper_value(c["paper"]),
                                    spread=c["spread"], note=c["note"], units=c["units"])
                         for c in d["comparisons"])
            parts.append(PartResult(id=d["id"], title=d["title"], comparisons=rows, lines=tuple(d["lines"]),
                                    data=d["data"], seconds=float(d["seconds"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{root}: expected a reproduction results directory, got {type(exc).__name__}: {exc}") \
            from exc
    return ReproductionResult(plan=plan, parts=tuple(parts), seconds=float(meta["seconds"]),
                              environment=dict(meta.get("environment", {})), model=model)


def format_result(result: ReproductionResult, *, markdown: bool = False) -> str:
    """Every part's comparison table (and its extra lines), then the plan's gaps."""
    plan = result.plan
    head = (f"evcsa reproduce {plan.name} (seed {plan.paper}), scale {plan.scale.name}, data {plan.data}, "
            f"{result.seconds:.0f} s")
    env = result.environment
    if env:
        head += (f"\nran on {env.get('cpu', '?')} ({env.get('cores', '?')} cores), {env.get('workers', 1)} "
                 f"worker(s) ({env.get('executor', '?')}); evcsa {env.get('evcsa', '?')}, commit "
                 f"{env.get('commit') or 'unknown'}, torch {env.get('torch', '?')}; finished {env.get('finished', '?')}")
    if result.model:
        m = result.model
        head += (f"\nmodel {plan.model}: {m.get('source', '?')} weights {m.get('weights_file', '?')} (SHA-256 "
                 f"{m.get('weights_sha256', '?')})")
    blocks = [head]
    if plan.scale.name != "full" or plan.data != "mnist":
        blocks.append("NOTE: not the papers' setting (scale or data reduced): the numbers check the pipeline "
                      "and are not comparable to the papers'.")
    for part in result.parts:
        text = format_comparisons(part.comparisons, title=part.title, markdown=markdown) if part.comparisons \
            else part.title
        if part.lines:
            text += "\n" + "\n".join(part.lines)
        blocks.append(text)
    blocks.append("Known gaps (what the plan does instead):\n" + "\n".join(
        f"- [{g.part}] {g.missing} → {g.instead}" + (f" ({g.owner})" if g.owner else "") for g in plan.gaps))
    return "\n\n".join(blocks)
