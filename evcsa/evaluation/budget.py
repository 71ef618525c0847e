"""How much work an evaluation does: the :class:`Budget` record, its two presets
:data:`QUICK` and :data:`STANDARD`, and :func:`resolve_budget` for a user's own.

Every number an evaluation spends is a field here, and the report states the whole
record, so that a reader knows what "the strongest adversary" was allowed to do (Carlini
et al. 2019, *On Evaluating Adversarial Robustness*, § 3: "report the attack's
hyperparameters and its compute budget").

- :data:`STANDARD` is the seed's setting as the demo plays it (``evcsa demo``,
  ``evcsa/experiments/demo.toml``): |X_D| = 100 natural samples, R = 100 games per
  adversary, A* with adaptive sampling of at most 200 Classify draws per candidate and
  5,000 per game (seed 002 § 5.1 at the demo's precision), BPDA+EOT with 40 steps × 10 EOT
  draws, ranked offline with 100 draws of its twin; on top of it the strongest graybox
  attacks at AutoAttack's 100 steps (Croce & Hein 2020) and DiscreteSearch's 100 steps ×
  2 restarts.
- :data:`QUICK` checks the pipeline in seconds on the 8×8 digits (the test suite uses it):
  60 samples, 20 games, 10 steps × 4 EOT draws, 50 draws per estimate.
- A user budget is a mapping (a TOML table) of these fields over a base preset:
  ``{"base": "quick", "runs": 50}``; unknown keys are refused with the closest name.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Mapping

import attrs

from evcsa._text import did_you_mean
from evcsa._validation import int_at_least, is_bool
from evcsa.errors import ConfigError, InvalidParameter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["BUDGETS", "QUICK", "STANDARD", "Budget", "resolve_budget"]


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"expected {attribute.name} as a non-empty string, got {value!r}",
                               key=attribute.name, got=value)


_optional_positive = int_at_least(1, optional=True)


@attrs.frozen(kw_only=True)
class Budget:
    """The work an evaluation may spend (every field is stated in the report).

    Attributes:
        name: "quick", "standard" or the user's name for it.
        samples: |X_D|, the natural samples of the games (the first ones of the split the
            model classifies correctly), ≥ 1 and ≥ N.
        runs: R, games per adversary (the advantage's interval narrows as 1/√R).
        legitimate_samples: images of the legitimate split classified for the accuracy
            (None: all of them).
        legitimate_draws: classifications per legitimate image of a randomized defense.
        graybox_attacks: how many of the norm's strongest graybox attacks transfer from the
            undefended model (L∞: PGD/BIM, APGD-DLR, APGD-CE; L2: APGD-CE, APGD-DLR,
            DeepFool), ≥ 1.
        attack_steps: iterations of the iterative graybox attacks (BIM, APGD).
        whitebox_steps: gradient steps of BPDA+EOT (PGD) and APGD-EOT through the twin.
        eot_draws: EOT draws per gradient step against a randomized twin (1 when
            deterministic: no EOT where there is no randomness).
        whitebox_apgd: also run APGD-DLR with EOT through the twin (Croce & Hein 2020).
        twin_draws: draws of the twin rating each whitebox candidate offline (its p̂ for
            the selection; 1 when deterministic).
        astar_queries: A*'s cap of Classify draws per candidate (seed 002: 200).
        astar_budget: A*'s Classify queries per game (adaptive sampling).
        ensemble_budget: the ensemble's Classify queries per game (None: ``astar_budget``).
        discrete_steps, discrete_restarts: DiscreteSearch's iterations and runs per sample
            (quantizing defenses only).
        rejudge_draws: fresh-key classifications of every candidate for its per-sample
            success probability (the report's distribution figure and the checks; 1 when
            deterministic).
        check_samples: natural samples the extra check runs use (the unbounded attack, the
            2× reruns); None: all of X_D.
        unbounded_steps: steps of the unbounded attack of the unbounded-attack check.
        convergence_check: rerun the strongest whitebox attack at 2× steps and 2× EOT
            draws (the not-converged check); false skips it (stated in the report).

    Raises:
        InvalidParameter: a value of the wrong type or out of range (``key`` names it).
    """

    name: str = attrs.field(default="custom", validator=_name)
    samples: int = attrs.field(default=100, validator=int_at_least(1))
    runs: int = attrs.field(default=100, validator=int_at_least(1))
    legitimate_samples: int | None = attrs.field(default=None, validator=_optional_positive)
    legitimate_draws: int = attrs.field(default=2, validator=int_at_least(1))
    graybox_attacks: int = attrs.field(default=3, validator=int_at_least(1))
    attack_steps: int = attrs.field(default=100, validator=int_at_least(1))
    whitebox_steps: int = attrs.field(default=40, validator=int_at_least(1))
    eot_draws: int = attrs.field(default=10, validator=int_at_least(1))
    whitebox_apgd: bool = attrs.field(default=True, validator=is_bool)
    twin_draws: int = attrs.field(default=100, validator=int_at_least(1))
    astar_queries: int = attrs.field(default=200, validator=int_at_least(1))
    astar_budget: int = attrs.field(default=5000, validator=int_at_least(1))
    ensemble_budget: int | None = attrs.field(default=None, validator=_optional_positive)
    discrete_steps: int = attrs.field(default=100, validator=int_at_least(1))
    discrete_restarts: int = attrs.field(default=2, validator=int_at_least(1))
    rejudge_draws: int = attrs.field(default=100, validator=int_at_least(1))
    check_samples: int | None = attrs.field(default=None, validator=_optional_positive)
    unbounded_steps: int = attrs.field(default=40, validator=int_at_least(1))
    convergence_check: bool = attrs.field(default=True, validator=is_bool)

    @property
    def ensemble_queries(self) -> int:
        """The ensemble's Classify queries per game: ``ensemble_budget``, else A*'s."""
        return self.astar_budget if self.ensemble_budget is None else self.ensemble_budget

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (None kept), for results.json and the report."""
        return attrs.asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(field, value) rows for the report's budget table."""
        return [(k, "all" if v is None and k in ("legitimate_samples", "check_samples")
                 else "A*'s" if v is None else str(v)) for k, v in self.to_dict().items()]

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, where: str = "budget") -> Budget:
        """A budget from a mapping (a TOML table): ``base`` ("quick" or "standard", default
        "standard") and any fields to change; ``name`` defaults to "custom" when a field
        changes.

        Raises:
            ConfigError: an unknown key (with the closest name), a bad base or value (the
                message names ``where`` and the key).
        """
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table of budget fields, got {type(table).__name__}", key=where)
        table = dict(table)
        base_name = table.pop("base", "standard")
        if base_name not in BUDGETS:
            raise ConfigError(f"{where}.base: expected one of {tuple(BUDGETS)}, got {base_name!r}"
                              f"{did_you_mean(str(base_name), BUDGETS)}", key=f"{where}.base")
        names = [f.name for f in attrs.fields(cls)]
        for key in table:
            if key not in names:
                raise ConfigError(f"{where}.{key}: unknown budget field (expected base or one of: {', '.join(names)})"
                                  f"{did_you_mean(str(key), names)}", key=f"{where}.{key}")
        if table and "name" not in table:
            table["name"] = "custom"
        try:
            return attrs.evolve(BUDGETS[base_name], **table)
        except InvalidParameter as exc:
            field = exc.details.get("key")
            path = f"{where}.{field}" if field else where
            raise ConfigError(f"{path}: {exc.message}", key=path) from exc


#: The pipeline check: seconds on the 8×8 digits (the test suite's budget).
QUICK = Budget(name="quick", samples=60, runs=20, legitimate_samples=200, legitimate_draws=1, graybox_attacks=1,
               attack_steps=10, whitebox_steps=10, eot_draws=4, whitebox_apgd=False, twin_draws=50,
               astar_queries=50, astar_budget=600, discrete_steps=10, discrete_restarts=1, rejudge_draws=50,
               check_samples=None, unbounded_steps=20, convergence_check=True)

#: The seed's settings as the demo plays them (module docstring).
STANDARD = Budget(name="standard")

#: The presets by name.
BUDGETS: dict[str, Budget] = {"quick": QUICK, "standard": STANDARD}


def resolve_budget(value: Any) -> Budget:
    """The budget ``value`` names.

    Args:
        value: a :class:`Budget`; "quick" or "standard"; a mapping of fields over a base
            (:meth:`Budget.from_mapping`); or a path to a TOML file holding such a table at
            its top level or under ``[budget]``.

    Raises:
        ConfigError: an unknown name, an unreadable file, an unknown key or a bad value.
    """
    if isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        return Budget.from_mapping(value)
    if isinstance(value, str) and value in BUDGETS:
        return BUDGETS[value]
    if isinstance(value, (str, pathlib.Path)) and (str(value).endswith(".toml") or pathlib.Path(value).is_file()):
        path = pathlib.Path(value)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such budget file", path=str(path)) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the budget ({type(exc).__name__}: {exc})", path=str(path)) from exc
        table = doc.get("budget", doc) if isinstance(doc.get("budget", doc), Mapping) else doc
        return Budget.from_mapping(table, where=f"{path}: budget")
    raise ConfigError(f"budget: expected 'quick', 'standard', a table of budget fields or a .toml file, got "
                      f"{value!r}{did_you_mean(str(value), BUDGETS) if isinstance(value, str) else ''}", key="budget")
