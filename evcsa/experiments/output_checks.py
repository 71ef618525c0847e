"""Checks of what a unit stores (:func:`check_output`): the way the game checks a
classifier's answer — shapes, dtypes, label ranges, finiteness, counts ≤ totals — before
anything is committed to a store, and again when a stored output is reused."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from evcsa.config import ExperimentConfig
from evcsa.errors import InvalidOutput
from evcsa.experiments.inputs import Inputs
from evcsa.experiments.units import Output, Unit

__all__ = ["Facts", "check_integers", "check_output", "facts_of", "name_failure", "value_range"]


def name_failure(exc: InvalidOutput, unit: Unit) -> InvalidOutput:
    """``exc`` with the unit's name in front of its message (once)."""
    if exc.message.startswith(f"{unit.name}: "):
        return exc
    details = {k: v for k, v in exc.details.items() if k != "unit"}
    return InvalidOutput(f"{unit.name}: {exc.message}", unit=unit.name, **details)


@attrs.frozen(kw_only=True)
class Facts:
    """What a unit's output is checked against: |X_D|, the image shape, K, the size of the
    legitimate set and N."""
    samples: int
    image_shape: tuple[int, ...]
    num_classes: int
    legitimate: int
    n_chosen: int


def facts_of(config: ExperimentConfig, inputs: Inputs) -> Facts:
    """What :func:`check_output` checks a unit of ``config`` against, from its loaded inputs."""
    return Facts(samples=len(inputs.samples), image_shape=tuple(inputs.samples.image_shape),
                  num_classes=int(inputs.model.num_classes), legitimate=len(inputs.legitimate),
                  n_chosen=int(config.game.n_chosen))


def value_range(a: np.ndarray) -> str:
    """"values in [lo, hi]" (or the count of NaN/inf) of a numeric array, for messages."""
    a = np.asarray(a)
    if a.size == 0:
        return "no values"
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return f"{int((~np.isfinite(a)).sum())} NaN or infinite value(s)"
    return f"values in [{a.min()}, {a.max()}]"


def check_integers(a: Any, what: str, *, low: int | None = None, high: int | None = None,
                   length: int | None = None) -> np.ndarray:
    """``a`` as int64 [n] when it holds integers in [low, high) (``length`` of them), else
    InvalidOutput. An empty array of any dtype passes."""
    arr = np.asarray(a)
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidOutput(f"expected {what} as integers, got dtype {arr.dtype}", got=str(arr.dtype))
    if arr.ndim > 1:
        raise InvalidOutput(f"expected {what} as a 1-D array, got shape {arr.shape}", got=arr.shape)
    arr = arr.astype(np.int64).reshape(-1)
    if length is not None and arr.shape[0] != length:
        raise InvalidOutput(f"expected {length} {what}, got {arr.shape[0]}", expected=length, got=int(arr.shape[0]))
    if arr.size and ((low is not None and arr.min() < low) or (high is not None and arr.max() >= high)):
        lo = "−∞" if low is None else low
        hi = "∞" if high is None else high - 1
        raise InvalidOutput(f"expected {what} in [{lo}, {hi}], got {value_range(arr)}", got=value_range(arr))
    return arr


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidOutput(f"expected {what} as an integer, got {value!r}", got=repr(value))
    return int(value)


def _pair(value: Any, what: str, legitimate: int | None = None) -> None:
    """A [correct, trials] pair: see :func:`_check_counts`."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InvalidOutput(f"expected {what} as [correct, trials], got {value!r}", got=repr(value))
    _check_counts(value[0], value[1], what, legitimate)


def _check_counts(correct: Any, trials: Any, what: str, legitimate: int | None) -> None:
    """0 ≤ correct ≤ trials, trials ≥ 1 (a multiple of the legitimate set's size when given)."""
    correct, trials = _integer(correct, f"{what} correct"), _integer(trials, f"{what} trials")
    if trials < 1:
        raise InvalidOutput(f"expected {what} trials ≥ 1, got {trials}", got=trials)
    if legitimate is not None and trials % legitimate:
        raise InvalidOutput(f"expected {what} trials a multiple of the {legitimate} legitimate images, got {trials}",
                            got=trials)
    if not 0 <= correct <= trials:
        raise InvalidOutput(f"expected 0 ≤ {what} correct ≤ trials = {trials}, got {correct}", got=correct)


def _images(a: Any, what: str, shape: tuple[int, ...]) -> None:
    """float32 [n, *shape], finite, in [0, 1]."""
    arr = np.asarray(a)
    if arr.dtype != np.float32 or arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != tuple(shape):
        raise InvalidOutput(f"expected {what} as float32 [n, {', '.join(map(str, shape))}], got dtype {arr.dtype} "
                            f"and shape {arr.shape}", got=str(arr.shape))
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise InvalidOutput(f"expected {what} finite in [0, 1], got {value_range(arr)}", got=value_range(arr))


def _probabilities(a: Any, what: str, length: int | None = None) -> None:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        want = f"[{length}]" if length is not None else "[n]"
        raise InvalidOutput(f"expected {what} as real numbers {want}, got dtype {arr.dtype} and shape {arr.shape}")
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise InvalidOutput(f"expected {what} in [0, 1], got {value_range(arr)}", got=value_range(arr))


def _check_candidates(out: Output, facts: Facts) -> None:
    form = out.record.get("form")
    if form not in ("candidates", "self", "pickle", "replay"):
        raise InvalidOutput(f"expected a crafting of form candidates, self, pickle or replay, got {form!r}")
    if form != "candidates":
        return
    a = out.arrays
    _images(a["x_adv"], "the crafted x′", facts.image_shape)
    c = int(np.asarray(a["x_adv"]).shape[0])
    if out.record.get("candidates") != c:
        raise InvalidOutput(f"expected the record to count the {c} candidates, got {out.record.get('candidates')!r}")
    check_integers(a["sources"], "candidate sources", low=0, high=facts.samples, length=c)
    if "targets" in a:
        check_integers(a["targets"], "candidate targets", low=0, high=facts.num_classes, length=c)
    failed = np.asarray(a["failed"])
    if failed.dtype != bool or failed.shape != (c,):
        raise InvalidOutput(f"expected failed as bool [{c}], got dtype {failed.dtype} and shape {failed.shape}")


def _check_play(unit: Unit, out: Output, facts: Facts) -> None:
    a, n_max = out.arrays, facts.n_chosen
    start, stop = int(unit.params["start"]), int(unit.params["stop"])
    games = stop - start
    if out.record.get("games") != games:
        raise InvalidOutput(f"expected {games} games, got {out.record.get('games')!r}")
    successes = check_integers(a["game_successes"], "per-game successes", low=0, high=n_max + 1, length=games)
    submissions = check_integers(a["game_submissions"], "per-game submissions", low=0, high=n_max + 1, length=games)
    if (successes > submissions).any():
        g = int(np.argmax(successes > submissions))
        raise InvalidOutput(f"expected successes ≤ submissions in every game, got {successes[g]} > "
                            f"{submissions[g]} in game {start + g}")
    for k in ("classify_queries", "stale_queries"):
        check_integers(a[f"game_{k}"], f"per-game {k.replace('_', ' ')}", low=0, length=games)
    rows = int(submissions.sum())
    game = check_integers(a["sub_game"], "submission games", low=start, high=stop, length=rows)
    check_integers(a["sub_position"], "submission positions", low=0, high=n_max, length=rows)
    check_integers(a["sub_source"], "submission sources", low=0, high=facts.samples, length=rows)
    check_integers(a["sub_target"], "submission targets", low=-1, high=facts.num_classes, length=rows)
    check_integers(a["sub_label"], "submission labels C(x′)", low=-1, high=facts.num_classes, length=rows)
    check_integers(a["sub_reference"], "submission references", low=-1, high=facts.num_classes, length=rows)
    check_integers(a["sub_true_label"], "submission true labels", low=0, high=facts.num_classes, length=rows)
    success = np.asarray(a["sub_success"])
    if success.dtype != bool or success.shape != (rows,):
        raise InvalidOutput(f"expected submission successes as bool [{rows}], got {success.dtype} {success.shape}")
    if not np.array_equal(np.bincount(game - start, weights=success, minlength=games).astype(np.int64), successes):
        raise InvalidOutput("expected each game's successes to count its successful submissions, got other counts")
    distance = np.asarray(a["sub_distance"], dtype=np.float64)
    if distance.shape != (rows,) or (distance.size and not (np.isfinite(distance).all() and distance.min() >= 0)):
        raise InvalidOutput(f"expected submission distances finite ≥ 0 [{rows}], got {value_range(distance)}")
    _images(a["samples"], "the submitted samples", facts.image_shape)
    check_integers(a["sub_sample"], "submission sample indices", low=0, high=int(np.asarray(a["samples"]).shape[0]),
              length=rows)
    if "est_weighted" in a:
        weighted = np.asarray(a["est_weighted"], dtype=np.float64)
        draws = check_integers(a["est_draws"], "p̂ draws", low=0)
        check_integers(a["est_sources"], "p̂ sources", low=0, high=facts.samples, length=draws.shape[0])
        if weighted.shape != draws.shape or (weighted.size and not (
                np.isfinite(weighted).all() and weighted.min() >= 0 and (weighted <= draws + 1e-9 * draws).all())):
            raise InvalidOutput(f"expected the adversary's p̂ in [0, 1], got successes {value_range(weighted)} for "
                                f"draws {value_range(draws)}")


def check_output(unit: Unit, out: Output, facts: Facts) -> None:
    """Check a unit's output the way the game checks a classifier's answer — shapes, dtypes,
    label ranges, finiteness, counts ≤ totals — before anything is committed to a store.

    Args:
        unit: the :class:`~evcsa.experiments.units.Unit` (its kind, name and parameters).
        out: what it produced.
        facts: |X_D|, the image shape, K, the legitimate set's size and N.

    Raises:
        InvalidOutput: "<unit name>: expected …, got …".
    """
    try:
        if not isinstance(out, Output):
            raise InvalidOutput(f"expected an Output, got {type(out).__name__}")
        kind, r = unit.kind, out.record
        if kind in ("craft", "sweep_craft"):
            _check_candidates(out, facts)
        elif kind == "play":
            _check_play(unit, out, facts)
        elif kind == "rejudge":
            draws = _integer(r.get("draws"), "rejudge draws")
            if draws < 1:
                raise InvalidOutput(f"expected rejudge draws ≥ 1, got {draws}")
            check_integers(np.asarray(r.get("successes")), "successes", low=0, high=draws + 1)
            if len(r["successes"]) > facts.n_chosen:
                raise InvalidOutput(f"expected at most N = {facts.n_chosen} rejudged samples, got "
                                    f"{len(r['successes'])}")
        elif kind == "legitimate":
            _check_counts(r.get("correct"), r.get("trials"), "legitimate", facts.legitimate)
        elif kind == "sweep_legitimate":
            _pair(r.get("legitimate"), "legitimate", facts.legitimate)
        elif kind == "sweep_point":
            _pair(r.get("legitimate"), "legitimate", facts.legitimate)
            _pair(r.get("adversarial"), "adversarial")
            p = np.asarray(out.arrays.get("p_hat"))
            _probabilities(p, "p̂")
            if "sample_correct" in out.arrays:
                check_integers(np.asarray(out.arrays["sample_correct"]), "per-sample correct counts", low=0,
                          high=int(r.get("draws", 1)) + 1, length=int(p.size))
            _probabilities(np.asarray(list(r.get("advantage_exact", {}).values()), dtype=np.float64),
                           "the exact advantages")
        elif kind == "examples":
            k = int(np.asarray(out.arrays["original"]).shape[0])
            for name in ("original", "adversarial", "randomized", "squeezed"):
                _images(out.arrays[name], f"the {name} examples", facts.image_shape)
                if np.asarray(out.arrays[name]).shape[0] != k:
                    raise InvalidOutput(f"expected {k} {name} examples, got {np.asarray(out.arrays[name]).shape[0]}")
            for name, values in r["labels"].items():
                check_integers(np.asarray(values, dtype=np.int64), f"the {name} labels", low=-1, high=facts.num_classes,
                          length=k)
    except InvalidOutput as exc:
        raise name_failure(exc, unit) from exc
