"""The engine's units of a whole plan (evcsa.reproduction.unit_plan), listed without running
them: each unit once by its content key, so the work the configurations share counts once
(seed 002 on the digits at quick scale: Tables 1 and 2 and Figures 5–7 evaluate one graybox
set per attack; each of Table 3's repetitions runs under a key of its own)."""

from __future__ import annotations

import collections

from evcsa.randomness import MasterKey
from evcsa.reproduction import build_plan
from evcsa.reproduction.unit_plan import configurations, plan_units_of


def test_shared_units_count_once_and_repetitions_do_not_share(digits_cache) -> None:
    plan = build_plan("mix-n-squeeze", scale="quick", data="digits")
    key = MasterKey.generate().hex()
    owners = list(configurations(plan, master_key=key, cache_dir=str(digits_cache)))
    assert [o.config.name for o in owners] == [c.name for p in plan.parts for c in p.configs]
    planned = plan_units_of(plan, master_key=key, cache_dir=str(digits_cache))
    keys = [p.unit.key for p in planned]
    assert len(keys) == len(set(keys)) == len({u.key for o in owners for u in o.units})
    kinds = collections.Counter(p.unit.kind for p in planned)
    table1 = plan.part("table1").configs[0]
    attacks = {a.params["attack"] for a in table1.adversaries}
    # one graybox craft per attack for the whole plan (table 2 and the sweeps share table 1's)
    shared = [p for p in planned if p.unit.kind == "craft" and p.unit.params["defense"] is None]
    assert len(shared) == len(attacks) and kinds["sweep_craft"] == 0
    assert all(p.owner.part.id == "table1" for p in shared)
    # Table 3: a whitebox craft per cell and repetition, none shared across repetitions
    table3 = plan.part("table3")
    cells = len(table3.configs[0].defenses) * len(table3.configs[0].adversaries)
    whitebox = [p for p in planned if p.unit.kind == "craft" and p.unit.params["defense"] is not None]
    assert len(whitebox) == len(table3.configs) * cells
    masters = {o.config.master_key for o in owners if o.part.id == "table3"}
    assert len(masters) == len(table3.configs) and key not in masters
    assert {o.config.master_key for o in owners if o.part.id != "table3"} == {key}
