"""What the collapse of determined work (issue 25 item 1) no longer computes in the full plans.

    python benchmarks/bench_collapse.py

For every configuration of both full plans: each cell whose defense is deterministic
(:func:`evcsa.defenses.base.is_randomized` on the built defense) and whose adversary
declares its prepared play coin-free (``candidates_randomized = False``) plays one game per
play unit instead of R (:func:`evcsa.experiments.work.is_determined`). Printed per
configuration: the determined cells, the games and the classifications (games × N) no
longer played. Counted from the plans' structure; nothing is run but the defenses' build.
"""

from __future__ import annotations

import _shared  # noqa: F401,I001  (puts evcsa on sys.path)

from evcsa.defenses.base import is_randomized
from evcsa.experiments import build_adversary, build_defense, load_inputs
from evcsa.experiments.units import chunks
from evcsa.randomness import DerivedKeys
from evcsa.reproduction import build_plan


def main() -> int:
    total_games = total_classifications = 0
    for name in ("mix-n-squeeze", "randomized-squeezing"):
        plan = build_plan(name, scale="full")
        model = load_inputs(plan.parts[0].configs[0]).model
        for part in plan.parts:
            if part.run == "sweep":
                continue
            for config in part.configs:
                cells = games = 0
                for d_spec in config.defenses:
                    clf = build_defense(d_spec, model, DerivedKeys.from_seed(0, label="count"))
                    if is_randomized(clf):
                        continue
                    for a_spec in config.adversaries:
                        adversary = build_adversary(a_spec, base_dir=config.base_dir)
                        if getattr(adversary, "candidates_randomized", True) is False:
                            cells += 1
                            games += config.runs - chunks(config.runs)
                n = config.data.samples
                total_games += games
                total_classifications += games * n
                if games:
                    print(f"{name} {part.id} {config.name} (seed {config.seed}): {cells} determined cells, "
                          f"{games:,} games ({games * n:,} classifications) no longer played")
    print(f"total: {total_games:,} games, {total_classifications:,} classifications no longer played")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
