"""The reproductions' settings table: each setting, the seed's value, the cited code's
value, ours, and where ours comes from (issue 22, item 7).

The table is data, the package file ``settings.toml``: one ``[[setting]]`` per row, each
with the plans it belongs to, the seed's value and where the seed states it, the value in
the code the seed cites (EvadeML-Zoo, Xu et al.'s release, and the Carlini–Wagner code it
pins) with its file and commit, our value, where ours comes from, and ``differs`` — which
of the seed and the cited code ours departs from. :func:`settings_table` loads and checks
it; :func:`format_settings` renders one plan's rows as a Markdown table for
``docs/reproducing.md`` (:func:`evcsa.reproduction.document.generated_section`).

Where ours can be read from the plan (:func:`~evcsa.reproduction.plans.build_plan`, its
:class:`~evcsa.reproduction.plans.Scale`, its configurations and the attack registry), a
row names a reader in ``read`` and the table shows what the reader finds in the plan, never
the typed ``ours``; :func:`check_against_plan` lists the rows whose typed claim and the plan
disagree (the test suite requires none). Readers (``read = "<reader>:<arg>:…"``):

=====================================  ==============================================
``model``                              the plan's reference model
``model-accuracy``                     its test accuracy as shipped (percent)
``samples``                            |X_D| (the configurations' ``data.samples``)
``runs:<config>``                      that configuration's games per cell
``legitimate-draws:<config>``          its classifications of each legitimate digit
``repetitions:<part>``                 the part's configurations (Table 3's repetitions)
``epsilon:<config>``, ``norm:<config>``  its game's ε and norm
``values:<config>:<kind>:<param>``     the values of a parameter over its defenses of
                                       that kind (optional 5th ``key=value`` filter)
``adversary:<config>:<label>:<param>`` a parameter of its adversary of that label
``attack:<name>:<param>``              the parameter an attack of the registry runs
                                       with in the plan: its function's default, the
                                       registry's setting, the plan's override
``figures:<config>:<field>``           a field of its figures (the δ sweep)
=====================================  ==============================================
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from importlib import resources
from typing import Any, Callable, Mapping

import attrs

from evcsa.attacks import carlini_wagner
from evcsa.attacks.gradient_sign import default_step_size
from evcsa.attacks.registry import ATTACKS
from evcsa.errors import DataError
from evcsa.experiments.registry import ADVERSARIES
from evcsa.shipped import SHIPPED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["READERS", "SettingRow", "check_against_plan", "format_settings", "load_settings", "ours_from_plan",
           "settings_table"]

_SCHEMA = 1
_PLANS = ("mix-n-squeeze", "randomized-squeezing")
_DIFFERS = ("seed", "code")
_TEXT_FIELDS = ("part", "setting", "seed", "seed_where", "code", "code_where", "ours", "source")
_FIELDS = frozenset(("plans", "read", "differs", *_TEXT_FIELDS))


@attrs.frozen(kw_only=True)
class SettingRow:
    """One row of the settings table.

    Attributes:
        plans: the plans it belongs to ("mix-n-squeeze", "randomized-squeezing").
        part: the table, figure or group it belongs to ("Model", "Table 1", …).
        setting: what is set ("FGSM ε (L∞)", "samples |X_D|", …).
        seed: the seed's value ("not stated" where the seed gives none).
        seed_where: where in the seed ("§ 5.1, Setup", …), "" if not stated.
        code: the cited code's value ("—" where it has none).
        code_where: its file and commit ("EvadeML-Zoo Reproduce_FeatureSqueezing.md @
            4dbeee0"), "" if none.
        ours: our value as typed; where ``read`` is set, a claim checked against the plan.
        read: the reader of ours in the plan (module docstring), or "" (ours typed).
        source: where ours comes from: "the seed", "EvadeML-Zoo <file>", "evcsa's
            choice: <why>", ….
        differs: which of "seed" and "code" ours departs from (empty: neither).
    """

    plans: tuple[str, ...]
    part: str
    setting: str
    seed: str
    seed_where: str
    code: str
    code_where: str
    ours: str
    read: str
    source: str
    differs: tuple[str, ...]


def _fail(where: str, message: str) -> DataError:
    return DataError(f"settings table, {where}: {message}")


def _row(raw: Any, index: int) -> SettingRow:
    where = f"row {index + 1}"
    if not isinstance(raw, Mapping):
        raise _fail(where, f"expected a table of fields, got {type(raw).__name__}")
    if isinstance(raw.get("setting"), str):
        where += f" ({raw['setting']!r})"
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _fail(where, f"expected fields among {sorted(_FIELDS)}, got unknown {unknown}")
    missing = [f for f in ("plans", *_TEXT_FIELDS) if f not in raw]
    if missing:
        raise _fail(where, f"expected every field of a row, got none for {missing}")
    for f in (*_TEXT_FIELDS, "read"):
        if f in raw and not isinstance(raw[f], str):
            raise _fail(where, f"expected {f} as a string, got {type(raw[f]).__name__}")
    for f in ("part", "setting", "seed", "code", "ours", "source"):
        if not raw[f].strip():
            raise _fail(where, f"expected a non-empty {f}, got {raw[f]!r}")
    plans = raw["plans"]
    if not isinstance(plans, list) or not plans or any(p not in _PLANS for p in plans):
        raise _fail(where, f"expected plans as a non-empty list of {_PLANS}, got {plans!r}")
    differs = raw.get("differs", [])
    if not isinstance(differs, list) or any(d not in _DIFFERS for d in differs):
        raise _fail(where, f"expected differs as a list of {_DIFFERS}, got {differs!r}")
    read = raw.get("read", "")
    if read and read.split(":", 1)[0] not in READERS:
        raise _fail(where, f"expected read to name a reader in {sorted(READERS)}, got {read!r}")
    return SettingRow(plans=tuple(plans), part=raw["part"], setting=raw["setting"], seed=raw["seed"],
                      seed_where=raw["seed_where"], code=raw["code"], code_where=raw["code_where"], ours=raw["ours"],
                      read=read, source=raw["source"], differs=tuple(differs))


def load_settings(text: str) -> tuple[SettingRow, ...]:
    """The rows of a settings table in TOML (the format of the package's ``settings.toml``).

    Raises:
        DataError: not TOML, another schema, no ``[[setting]]`` rows, or a malformed row
            (an unknown or missing field, a field of the wrong type, an unknown plan,
            ``differs`` entry or reader); the message names the row.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"settings table: expected TOML, got a parse error: {exc}") from None
    if doc.get("schema") != _SCHEMA:
        raise DataError(f"settings table: expected schema = {_SCHEMA}, got {doc.get('schema')!r}")
    rows = doc.get("setting")
    if not isinstance(rows, list) or not rows:
        raise DataError(f"settings table: expected [[setting]] rows, got {type(rows).__name__}")
    return tuple(_row(raw, i) for i, raw in enumerate(rows))


@functools.cache
def settings_table() -> tuple[SettingRow, ...]:
    """The package's settings table (``evcsa/reproduction/settings.toml``), checked by
    :func:`load_settings`.

    Raises:
        DataError: the file is malformed.
    """
    return load_settings(resources.files("evcsa.reproduction").joinpath("settings.toml").read_text(encoding="utf-8"))


# --- the readers: ours, from the plan --------------------------------------------------

def _text(value: Any) -> str:
    """A value as the table prints it: integers with thousands separators, floats in %g,
    sequences joined by ", "."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_text(v) for v in value)
    if value is None:
        return "—"
    return str(value)


def _configs(plan: Any) -> dict[str, Any]:
    return {c.name: c for p in plan.parts for c in p.configs}


def _config(plan: Any, name: str) -> Any:
    configs = _configs(plan)
    if name not in configs:
        raise DataError(f"expected a configuration of plan {plan.name!r} in {sorted(configs)}, got {name!r}")
    return configs[name]


def _model(plan: Any) -> str:
    return plan.model


def _model_accuracy(plan: Any) -> str:
    record = json.loads(SHIPPED[plan.model].provenance_path.read_text(encoding="utf-8"))
    return f"{100 * float(record['test_accuracy']):.1f} %"


def _samples(plan: Any) -> str:
    return _text(sorted({c.data.samples for c in _configs(plan).values()}))


def _runs(plan: Any, config: str) -> str:
    return _text(_config(plan, config).runs)


def _legitimate_draws(plan: Any, config: str) -> str:
    return _text(_config(plan, config).legitimate_draws)


def _repetitions(plan: Any, part: str) -> str:
    return _text(len(plan.part(part).configs))


def _epsilon(plan: Any, config: str) -> str:
    return _text(_config(plan, config).game.epsilon)


def _norm(plan: Any, config: str) -> str:
    return _text(_config(plan, config).game.norm)


def _values(plan: Any, config: str, kind: str, param: str, where: str = "") -> str:
    key, _, wanted = where.partition("=")
    found = [d.params[param] for d in _config(plan, config).defenses
             if d.kind == kind and param in d.params and (not where or str(d.params.get(key)) == wanted)]
    if not found:
        raise DataError(f"expected a {kind} defense with {param!r} in {config!r}"
                        + (f" where {where}" if where else "") + ", got none")
    return _text(list(dict.fromkeys(found)))


def _adversary(plan: Any, config: str, label: str, param: str) -> str:
    """The parameter as the configuration sets it, else the adversary class's default
    ("—" where the default is None: left to the adversary)."""
    for adv in _config(plan, config).adversaries:
        if adv.label == label:
            if param in adv.params:
                return _text(adv.params[param])
            fields = attrs.fields_dict(ADVERSARIES[adv.kind]) if adv.kind in ADVERSARIES else {}
            if param not in fields or fields[param].default is attrs.NOTHING:
                raise DataError(f"expected {param!r} among the parameters of {label!r} in {config!r}, got "
                                f"{sorted(set(adv.params) | set(fields))}")
            return _text(fields[param].default)
    raise DataError(f"expected an adversary labelled {label!r} in {config!r}, got none")


def _attack(plan: Any, name: str, param: str) -> str:
    """The value ``param`` of registry attack ``name`` takes in the plan: the attack
    function's default, overridden by the registry's setting, overridden by the plan's
    (the graybox adversary's ``params``); a default left to the attack (None) is resolved
    by the attack's own rule (BIM's step 2ε/steps, C&W L∞'s Adam step per schedule)."""
    if name not in ATTACKS:
        raise DataError(f"expected an attack of the registry in {sorted(ATTACKS)}, got {name!r}")
    spec = ATTACKS[name]
    overrides = None
    for config in _configs(plan).values():
        for adv in config.adversaries:
            if adv.kind == "graybox_transfer" and adv.params.get("attack") == name:
                overrides = dict(adv.params.get("params", {}))
                break
        if overrides is not None:
            break
    if overrides is None:
        raise DataError(f"expected plan {plan.name!r} to run attack {name!r}, got no adversary with it")
    defaults = {k: p.default for k, p in inspect.signature(spec.attack).parameters.items()
                if p.default is not inspect.Parameter.empty}
    params = {**defaults, **spec.params, **overrides}
    if param not in params:
        raise DataError(f"expected a parameter of {name} in {sorted(params)}, got {param!r}")
    value = params[param]
    if value is None and param == "step_size" and "steps" in params:
        value = default_step_size(params["epsilon"], params["steps"])
    if value is None and param == "learning_rate" and spec.attack is carlini_wagner.cw_linf:
        value = (carlini_wagner.FAST_LINF_LEARNING_RATE if params.get("schedule") == "fast"
                 else carlini_wagner.LINF_LEARNING_RATE)
    return _text(value)


def _figures(plan: Any, config: str, field: str) -> str:
    figures = _config(plan, config).figures
    if not hasattr(figures, field):
        raise DataError(f"expected a field of the figures' settings, got {field!r}")
    return _text(getattr(figures, field))


#: Reader name → function(plan, *arguments) → the value as the table prints it.
READERS: dict[str, Callable[..., str]] = {
    "model": _model, "model-accuracy": _model_accuracy, "samples": _samples, "runs": _runs,
    "legitimate-draws": _legitimate_draws, "repetitions": _repetitions, "epsilon": _epsilon, "norm": _norm,
    "values": _values, "adversary": _adversary, "attack": _attack, "figures": _figures,
}


def ours_from_plan(row: SettingRow, plan: Any) -> str:
    """Our value of ``row``: read from ``plan`` where the row names a reader, else the
    row's typed ``ours``.

    Raises:
        DataError: the reader's arguments name nothing in the plan (a configuration,
            defense, adversary, attack or parameter it lacks), or their number is wrong.
    """
    if not row.read:
        return row.ours
    name, *args = row.read.split(":")
    reader = READERS[name]
    try:
        inspect.signature(reader).bind(plan, *args)
    except TypeError:
        raise DataError(f"settings table, {row.setting!r}: expected read = {name}:<…> with the reader's "
                        f"arguments, got {row.read!r}") from None
    return reader(plan, *args)


def check_against_plan(plan: Any, rows: tuple[SettingRow, ...] | None = None) -> list[tuple[SettingRow, str]]:
    """The rows of ``plan`` whose typed ``ours`` disagrees with the plan: (row, the
    plan's value) for each row with a reader whose claim is not what the reader finds.

    Raises:
        DataError: as :func:`ours_from_plan`.
    """
    rows = settings_table() if rows is None else rows
    out = []
    for row in rows:
        if plan.name in row.plans and row.read:
            value = ours_from_plan(row, plan)
            if value != row.ours:
                out.append((row, value))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_settings(plan: Any, rows: tuple[SettingRow, ...] | None = None) -> str:
    """``plan``'s rows of the settings table as a Markdown table: part, setting, the
    seed's value (where), the cited code's value (where), ours (read from the plan where
    the row names a reader, marked †), where ours comes from, and the flag "≠ seed",
    "≠ code" where ours departs from them. The table's typed ``ours`` and ``source``
    describe the default plan (:func:`~evcsa.reproduction.plans.build_plan` with its
    defaults); where ``plan`` (e.g. a stored run's, made with another model or scale)
    holds another value, ours is shown in bold with the default's value beside it and
    the flag "≠ default plan".

    Raises:
        DataError: as :func:`ours_from_plan`; or the table has no row for the plan.
    """
    rows = settings_table() if rows is None else rows
    mine = [r for r in rows if plan.name in r.plans]
    if not mine:
        raise DataError(f"expected settings rows for plan {plan.name!r}, got none")
    lines = ["| part | setting | seed (where) | cited code (where) | ours | ours from | differs |",
             "|:--|:--|:--|:--|:--|:--|:--|"]
    for r in mine:
        seed = r.seed + (f" ({r.seed_where})" if r.seed_where else "")
        code = r.code + (f" ({r.code_where})" if r.code_where else "")
        value = ours_from_plan(r, plan)
        flags = [f"≠ {d}" for d in r.differs]
        if r.read and value != r.ours:
            ours = f"**{value}** † (default plan: {r.ours})"
            flags.append("≠ default plan")
        else:
            ours = value + (" †" if r.read else "")
        flag = ", ".join(flags)
        lines.append("| " + " | ".join(_cell(t) for t in (r.part, r.setting, seed, code, ours, r.source, flag)) + " |")
    return "\n".join(lines)
