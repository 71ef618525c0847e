"""Experiment configurations: TOML files mapped to frozen attrs records with cattrs.

An experiment plays every defense of the configuration against every adversary, R games
per pair (a *cell*), on one data set and one model, under one set of game rules; it also
sweeps the noise magnitude δ for the figures. The whole run is a pure function of the
:class:`ExperimentConfig` (:func:`evcsa.experiments.run_experiment`).

The file format (every key optional unless marked; see ``docs/quickstart.md`` and
``examples/*.toml``)::

    name = "demo"               # names the results directory
    seed = 2024                 # the adversaries' and the run's own randomness derives from it
    runs = 100                  # R, games per cell
    reproducible = true         # defense keys derived from master_key (false: OS entropy)
    # master_key = "64 hex digits"  # omitted: drawn from OS entropy, recorded in the results
    legitimate_draws = 2        # classifications per legitimate test image
    device = "cpu"              # "cpu", "cuda" or "auto" (cuda when available)
    executor = "serial"         # "serial", "processes" (a local pool) or "dask"
    jobs = 2                    # worker processes of "processes" (default: one per core)
    dask_address = "tcp://…"    # the Dask scheduler ("dask"; default: a LocalCluster)

    [data]
    dataset = "mnist"           # "mnist", "digits" or a path to a .npz file
    split = "test"              # "all", "train" or "test" (embedded sets)
    samples = 100               # |X_D|, the first natural samples of the split
    correctly_classified = true # keep only samples the undefended model gets right

    [model]
    reference = "mnist"         # a shipped reference model: "mnist", "digits" or
                                # "mnist-carlini-evademl" (the seeds' model), or:
    # architecture = "carlini_mnist"; weights = "path/to/state_dict.pt"

    [game]                      # evcsa.games.Rules; n_chosen is required
    n_chosen = 25
    epsilon = 0.3               # omit for unbounded (seed 002)
    norm = "linf"

    [[defenses]]                # one table per defense; kind + its parameters
    kind = "randomized_squeezing"
    squeezer = "bit_depth:1"
    delta = 0.2

    [[adversaries]]             # one table per adversary; kind + its parameters
    kind = "greedy_a_star"
    attack = "bim"

    [figures]
    taus = [1.0]                # thresholds τ for the advantage
    n_values = [1, 5, 10, 25]   # N axis of the advantage-vs-N figure
    deltas = [0.0, 0.2, 0.5]    # δ axis of the accuracy-vs-δ figure
    draws = 50                  # classifications per sample and δ in the sweep
    attack = "bim"              # crafts the sweep's adversarial samples on the model
    examples = 5                # images in the example strip

Errors: a malformed file, an unknown key, a value of the wrong type or out of range raise
:class:`~evcsa.errors.ConfigError` with one line naming the file and the key, e.g.
``demo.toml: game.n_chosen: expected n_chosen as an integer ≥ 1, got 0``.
"""

from evcsa.config.files import config_from_dict, config_to_dict, config_to_toml, load_config, parse_config
from evcsa.config.records import ComponentSpec, DataConfig, ExperimentConfig, FiguresConfig, ModelConfig

__all__ = [
    "ComponentSpec",
    "DataConfig",
    "ExperimentConfig",
    "FiguresConfig",
    "ModelConfig",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "load_config",
    "parse_config",
]
