"""``evcsa.evaluate``: one call from a defense to its worst-case advantage, honestly measured.

The steps (each timed, each stated in the report):

1. resolve the defense, the model, the data and the rules (:mod:`evcsa.evaluation.inputs`);
   X_D = the first ``budget.samples`` natural samples of the split the model classifies
   correctly; the legitimate set = the split's first ``budget.legitimate_samples`` images;
2. the twin check (a twin that breaks the contract is refused by the game: the evaluation
   then plays at graybox knowledge and says so);
3. the suite (:func:`~evcsa.evaluation.suite.choose_suite`) from the defense's traits;
4. crafting: every crafter once, on every natural sample (A* reuses the first graybox
   attack's candidates, the ensemble all of them);
5. the games: R games per adversary (:meth:`evcsa.games.EVCSA.repeat`, the preparation
   reused: seed 002 § 5.1), each adversary against its own re-keying of the defense
   (independent randomness per adversary, as the engine gives every cell);
6. re-judging: every candidate classified ``rejudge_draws`` times on fresh keys (the
   per-sample success probabilities of the distribution figure and of the checks);
7. the legitimate accuracy of the defense and of the undefended model, and the time per
   image of each;
8. the checks (:mod:`evcsa.evaluation.checks`): the unbounded attack, the 2× reruns.

Randomness: the adversaries' coins derive from ``seed`` and each adversary's label; a
defense evaluate builds draws its keys from a 256-bit master key (given, or drawn from OS
entropy and recorded in the results' config.toml); the re-judging and the legitimate
accuracy draw from keys derived from the same master key, independent of the games'.
Nothing seeds a global generator.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np
import torch

from evcsa.adversaries import BPDAEOT, Candidates, PreparedAdversary
from evcsa.config import ComponentSpec, DataConfig, ExperimentConfig, FiguresConfig, ModelConfig
from evcsa.defenses.base import is_randomized
from evcsa.errors import EvaluationWarning, InvalidParameter, TrivialEpsilonWarning
from evcsa.evaluation import checks as chk
from evcsa.evaluation.budget import Budget, resolve_budget
from evcsa.evaluation.ensemble import Ensemble
from evcsa.evaluation.inputs import DefenseInput, resolve_data, resolve_defense, resolve_rules
from evcsa.evaluation.measure import (Clock, adversary_seed, cell_result, environment_info, measure_accuracy,
                                      member_table, natural_samples, rekeyed)
from evcsa.evaluation.records import ENSEMBLE_LABEL, AdversaryRow
from evcsa.evaluation.report import Evaluation
from evcsa.evaluation.suite import Suite, choose_suite, describe_defense, trivial_epsilon
from evcsa.experiments.results import ExperimentResult
from evcsa.experiments.seeds import draw_master_key
from evcsa.games import EVCSA, rejudge
from evcsa.games.rules import Rules
from evcsa.randomness import DerivedKeys, KeySource, MasterKey
from evcsa.report import check_output
from evcsa.stats import BinomialEstimate, threshold_count

__all__ = ["AdversaryRow", "Evaluation", "evaluate"]


def evaluate(defense: Any, *, params: Mapping[str, Any] | None = None, model: Any = None, data: Any = None,
             split: str = "test", rules: Any = None, tau: float = 1.0, budget: Any = "standard",
             output: Any = None, overwrite: bool = False, seed: int = 0, master_key: str | None = None,
             label: str | None = None, cache_dir: str | None = None, base_dir: str | None = None,
             progress: bool | None = False, log: Callable[[str], None] | None = None, figures: bool = True,
             command: Sequence[str] | None = None) -> Evaluation:
    """Evaluate a defense against the standard suite and the ensemble of all of it.

    Args:
        defense: a shipped kind ("randomized_squeezing", …) with ``params``; a plugin
            ``package.module:Name``; a Classifier object (``evcsa.defenses.Defense``
            subclass, say) or a ``torch.nn.Module`` (see
            :func:`~evcsa.evaluation.inputs.resolve_defense`).
        params: the kind's parameters, e.g. ``{"squeezer": "median-2x2", "delta": 0.5}``.
        model: the undefended model: "mnist" (default for kinds), "digits", a
            ModelClassifier or nn.Module (default for objects: their ``model``).
        data: "mnist" (default, the embedded digits), "digits", a ``.npz`` path, an
            ImageSet, a torch Dataset or (images, labels); ``split`` for the embedded sets
            ("test" by default).
        rules: a :class:`~evcsa.games.Rules` or a mapping of its fields over the seed's
            (N = 25, ε = 0.3 L∞, untargeted, whitebox).
        tau: the threshold τ ∈ (0, 1] of Adv(N, τ) (default 1, the seed's).
        budget: "quick", "standard" (default), a mapping of
            :class:`~evcsa.evaluation.budget.Budget` fields over a base, a TOML path, or
            a Budget.
        output: a run directory to write (None: nothing written; :meth:`Evaluation.write`
            later). An existing one is refused unless ``overwrite``.
        seed: the adversaries' coins (public).
        master_key: 64 hex digits, the secret a built defense's keys derive from (None:
            drawn from OS entropy; recorded in the results either way).
        label: the defense's name in the report.
        cache_dir: the model cache (``$EVCSA_CACHE`` or ``~/.cache/evcsa``).
        base_dir: where plugin modules are looked for (the current directory by default).
        progress: progress bars for the games (None: only on a terminal).
        log: receives one line per step.
        figures: draw the figures when writing.
        command: the command line to record in results.json (the CLI passes its own).

    Returns:
        :class:`Evaluation`; each check that fired was also issued as an
        :class:`~evcsa.errors.EvaluationWarning`.

    Raises:
        InvalidParameter: a bad defense, model, data, rules, τ, budget or output (ConfigError
            for names and tables, DataError for data), before any game is played.
    """
    t_start = time.perf_counter()
    clock = Clock()
    say = log or (lambda line: None)
    budget = resolve_budget(budget)
    rules = resolve_rules(rules)
    threshold_count(tau, rules.n_chosen)  # validates τ
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameter(f"expected seed as an integer ≥ 0, got {seed!r}", got=seed)
    if output is not None:
        check_output(output, overwrite=overwrite)
    key = MasterKey.from_hex(master_key) if master_key is not None else draw_master_key()
    keys = DerivedKeys(key, "evaluate")
    base_dir = "." if base_dir is None else str(base_dir)
    with clock("inputs"):
        resolved: DefenseInput = resolve_defense(defense, params=params, model=model, keys=keys.derive("defense"),
                                                 cache_dir=cache_dir, base_dir=base_dir, label=label)
        full = resolve_data(data, split, base_dir=base_dir)
        x_d, dropped = natural_samples(full, resolved.model, budget.samples, rules.n_chosen, rules.freshness)
        legit = full if budget.legitimate_samples is None else full.head(budget.legitimate_samples)
    classifier, model_clf = resolved.classifier, resolved.model
    x, y = x_d.images, x_d.labels
    m = len(x_d)
    say(f"defense: {resolved.name}; X_D = {x_d.name} ({m} images); legitimate set {legit.name} ({len(legit)} images)")
    randomized = is_randomized(classifier)
    notes: list[str] = []
    with clock("traits"):
        twin_check = chk.check_twin_randomness(classifier, x[: min(4, m)])
        game_rules = rules
        if twin_check.fired and twin_check.values.get("contract") is False and rules.knowledge == "whitebox":
            game_rules = attrs.evolve(rules, knowledge="graybox")
            notes.append("the twin contract fails, so the games were played at graybox knowledge (no whitebox "
                         "adversary): see the twin-randomness check")
        traits = describe_defense(classifier, x[: min(8, m)], y[: min(8, m)], name=resolved.name)
        suite = choose_suite(traits, game_rules, budget, n_samples=m, image_shape=tuple(x_d.image_shape))
    say(f"suite: {', '.join(mb.label for mb in suite.members)} + {ENSEMBLE_LABEL}"
        + (f" ({'; '.join(suite.notes)})" if suite.notes else ""))

    def game_for(label_: str) -> EVCSA:
        return EVCSA.from_rules(rekeyed(classifier, randomized, label_), x, y, game_rules, model=model_clf)

    # -- crafting -------------------------------------------------------------------------------
    prepared: dict[str, Any] = {}
    games: dict[str, EVCSA] = {}
    craft_seconds: dict[str, float] = {}
    for member in suite.crafters:
        games[member.label] = game_for(member.label)
        t0 = time.perf_counter()
        with clock("crafting"):
            knowledge = games[member.label].knowledge(adversary_seed(seed, member.label, "prepare"))
            prepared[member.label] = member.adversary.prepare(knowledge)
        craft_seconds[member.label] = time.perf_counter() - t0
        say(f"crafted {member.label} on {m} samples ({craft_seconds[member.label]:.1f} s)")
    first_graybox = suite.crafters[0]
    for member in suite.members:
        if member.crafts:
            continue
        games[member.label] = game_for(member.label)
        prepared[member.label] = PreparedAdversary(member.adversary, prepared[first_graybox.label].candidates,
                                                   tuple(x_d.image_shape), m)
        craft_seconds[member.label] = 0.0
    crafters = suite.ensemble_order
    ensemble = Ensemble(members=[mb.adversary for mb in crafters], labels=[mb.label for mb in crafters],
                        sampling="adaptive" if randomized else "fixed",
                        queries_per_candidate=budget.astar_queries if randomized else 1,
                        query_budget=budget.ensemble_queries if randomized else None,
                        twin_draws=(budget.twin_draws if randomized else 1) if game_rules.knowledge == "whitebox"
                        else 0)
    games[ENSEMBLE_LABEL] = game_for(ENSEMBLE_LABEL)
    t0 = time.perf_counter()
    with clock("crafting"):
        prepared[ENSEMBLE_LABEL] = ensemble.from_candidates(
            [prepared[mb.label].candidates for mb in crafters],
            games[ENSEMBLE_LABEL].knowledge(adversary_seed(seed, ENSEMBLE_LABEL, "prepare")))
    craft_seconds[ENSEMBLE_LABEL] = time.perf_counter() - t0

    # -- the games --------------------------------------------------------------------------------
    order = [ENSEMBLE_LABEL] + [mb.label for mb in suite.members]
    results: dict[str, Any] = {}
    play_seconds: dict[str, float] = {}
    for name in order:
        t0 = time.perf_counter()
        with clock("games"), warnings.catch_warnings():
            warnings.simplefilter("ignore", TrivialEpsilonWarning)
            results[name] = games[name].repeat(prepared[name], runs=budget.runs, seed=adversary_seed(seed, name, "play"),
                                               progress=progress)
        play_seconds[name] = time.perf_counter() - t0
        say(f"played {name}: {budget.runs} games, Adv {results[name].advantage(tau)} ({play_seconds[name]:.1f} s)")

    # -- re-judging every candidate on fresh keys ---------------------------------------------------
    draws = budget.rejudge_draws if randomized else 1
    rejudge_keys = keys.derive("rejudge")
    counts: dict[str, np.ndarray] = {}
    with clock("re-judging"):
        for member in crafters:
            cand = prepared[member.label].candidates
            idx = torch.as_tensor(cand.sources)
            counts[member.label] = rejudge(classifier, cand.x_adv, x[idx], y[idx], game_rules, draws=draws,
                                           targets=cand.targets, keys=rejudge_keys if randomized else None)
    say(f"re-judged {len(crafters)} × {m} candidates, {draws} fresh draws each")
    per_sample: dict[str, np.ndarray] = {}
    for member in crafters:
        cand = prepared[member.label].candidates
        p = np.zeros(m)
        p[cand.sources] = counts[member.label] / draws
        per_sample[member.label] = p
    for member in suite.members:
        if not member.crafts:
            per_sample[member.label] = per_sample[first_graybox.label]
    best = np.max(np.stack([per_sample[mb.label] for mb in crafters]), axis=0)
    union_counts = np.concatenate([counts[mb.label] for mb in crafters])

    # -- legitimate accuracy ----------------------------------------------------------------------------
    with clock("legitimate accuracy"):
        legit_draws = budget.legitimate_draws if randomized else 1
        defended, t_def = measure_accuracy(rekeyed(classifier, randomized, "legitimate"), legit.images, legit.labels,
                                    legit_draws)
        undefended, t_model = measure_accuracy(model_clf, legit.images, legit.labels, 1)
    say(f"legitimate accuracy {defended.value:.3f} (undefended {undefended.value:.3f})")

    # -- checks -------------------------------------------------------------------------------------------
    with clock("checks"):
        results_checks, extras = _run_checks(suite, prepared, per_sample, games, classifier, game_rules, budget,
                                             seed, x, y, randomized, rejudge_keys, twin_check)
    for c in results_checks:
        say(c.line())

    # -- records ------------------------------------------------------------------------------------------
    rows = []
    for name in order:
        if name == ENSEMBLE_LABEL:
            role, why, cand_counts, ps = ("ensemble", f"per source the best candidate of {len(crafters)} crafters "
                                          f"({', '.join(mb.label for mb in crafters)}) by A*'s rule",
                                          union_counts, best)
        else:
            member = suite.member(name)
            role, why, ps = member.role, member.why, per_sample[name]
            cand_counts = counts[name] if member.crafts else counts[first_graybox.label]
        cell = cell_result(resolved.name, name, results[name], game_rules, tau, y, cand_counts, draws,
                     craft_seconds[name] + play_seconds[name])
        rows.append(AdversaryRow(label=name, role=role, why=why, cell=cell, per_sample=ps,
                                 craft_seconds=craft_seconds[name], play_seconds=play_seconds[name]))
    model_info = dict(getattr(model_clf, "info", None) or {"architecture": type(model_clf.module).__name__})
    data_info = {"samples": x_d.name, "n_samples": m, "skipped_misclassified": dropped, "legitimate": legit.name,
                 "n_legitimate": len(legit), "image_shape": list(x_d.image_shape)}
    environment = environment_info()
    experiment = _experiment(resolved, rows, suite, ensemble, game_rules, tau, budget, seed, key, data, split,
                             model, data_info, model_info, environment, {resolved.name: defended}, figures,
                             time.perf_counter() - t_start)
    evaluation = Evaluation(defense=resolved.name, spec=resolved.spec, rules=game_rules, tau=float(tau),
                            budget=budget, suite=suite, rows=tuple(rows), legitimate=defended, undefended=undefended,
                            seconds_per_image={"defense": t_def, "model": t_model}, checks=tuple(results_checks),
                            extras=extras, data=data_info, model=model_info, environment=environment,
                            experiment=experiment, seconds=time.perf_counter() - t_start,
                            timings=dict(clock.times), notes=tuple(notes))
    for c in evaluation.warnings:
        warnings.warn(EvaluationWarning(f"{c.name}: {c.finding}. What to do: {c.advice}", check=c.name,
                                        advice=c.advice), stacklevel=2)
    if output is not None:
        evaluation.write(output, overwrite=overwrite, figures=figures, command=command)
    return evaluation


def _check_sources(budget: Budget, m: int) -> np.ndarray:
    n = m if budget.check_samples is None else min(m, budget.check_samples)
    return np.arange(n, dtype=np.int64)


def _fresh_p(classifier: Any, cand: Candidates, x: torch.Tensor, y: torch.Tensor, rules: Rules, draws: int,
             keys: KeySource, randomized: bool) -> np.ndarray:
    idx = torch.as_tensor(cand.sources)
    k = rejudge(classifier, cand.x_adv, x[idx], y[idx], rules, draws=draws, targets=cand.targets,
                keys=keys if randomized else None)
    return k / draws


def _run_checks(suite: Suite, prepared: Mapping[str, Any], per_sample: Mapping[str, np.ndarray],
                games: Mapping[str, EVCSA], classifier: Any, rules: Rules, budget: Budget, seed: int,
                x: torch.Tensor, y: torch.Tensor, randomized: bool, rejudge_keys: KeySource,
                twin_check: chk.CheckResult) -> tuple[list[chk.CheckResult], dict[str, Any]]:
    """The five checks of :mod:`evcsa.evaluation.checks` (their runs: the unbounded attack
    and the 2× reruns, on the first ``check_samples`` natural samples)."""
    extras: dict[str, Any] = {}
    draws = budget.rejudge_draws if randomized else 1
    healths = {mb.label: prepared[mb.label].candidates.health for mb in suite.crafters}
    out = [chk.check_gradients(suite.traits.gradients, healths)]
    whitebox = [mb for mb in suite.members if mb.role == "whitebox"]
    pgd = next((mb for mb in whitebox if mb.adversary.method == "pgd"), None)
    srcs = _check_sources(budget, int(x.shape[0]))
    # unbounded
    if pgd is None:
        out.append(chk.check_unbounded(None, label="", reason="no whitebox gradient attack in the suite"
                                       + (f" ({suite.notes[0]})" if suite.notes else "")))
    else:
        eps = trivial_epsilon(rules.norm, tuple(x.shape[1:]))
        unbounded_rules = attrs.evolve(rules, epsilon=None)
        attack = BPDAEOT(epsilon=eps, norm=rules.norm, steps=budget.unbounded_steps, eot_samples=pgd.adversary.eot_samples,
                         random_start=False, loss="ce")
        game = EVCSA.from_rules(games[pgd.label].classifier, x, y, unbounded_rules, model=games[pgd.label].model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrivialEpsilonWarning)
            cand = attack.craft(game.knowledge(adversary_seed(seed, "check unbounded")), srcs)
        p = _fresh_p(classifier, cand, x, y, unbounded_rules, draws, rejudge_keys, randomized)
        extras["unbounded"] = p.tolist()
        out.append(chk.check_unbounded(p, label=f"PGD through the twin ({budget.unbounded_steps} steps, cross-entropy)",
                                       epsilon=eps))
    # transfer vs whitebox
    strong = {mb.label: per_sample[mb.label] for mb in suite.members if mb.role in ("whitebox", "search")}
    others = {mb.label: per_sample[mb.label] for mb in suite.members if mb.role == "graybox"}
    out.append(chk.check_transfer(strong, others, reason="no whitebox attack in the suite"
                                  + (f" ({'; '.join(suite.notes)})" if suite.notes else "")))
    # convergence
    if pgd is None:
        out.append(chk.check_convergence("", None, {}, reason="no whitebox gradient attack in the suite"))
    elif not budget.convergence_check:
        out.append(chk.check_convergence("", None, {}, reason="convergence_check = false in the budget"))
    else:
        base_adv = pgd.adversary
        reruns: dict[str, np.ndarray] = {}
        variants = {"2× steps": attrs.evolve(base_adv, steps=2 * base_adv.steps)}
        if randomized:
            variants["2× EOT draws"] = attrs.evolve(base_adv, eot_samples=2 * base_adv.eot_samples)
        for name, variant in variants.items():
            cand = variant.craft(games[pgd.label].knowledge(adversary_seed(seed, "check", name)), srcs)
            reruns[name] = _fresh_p(classifier, cand, x, y, rules, draws, rejudge_keys, randomized)
        extras["reruns"] = {k: v.tolist() for k, v in reruns.items()}
        out.append(chk.check_convergence(f"{pgd.label} ({base_adv.steps} steps × {base_adv.eot_samples} draws)",
                                         per_sample[pgd.label][srcs], reruns))
    out.append(twin_check)
    return out, extras


def _experiment(resolved: DefenseInput, rows: Sequence[AdversaryRow], suite: Suite, ensemble: Ensemble,
                rules: Rules, tau: float, budget: Budget, seed: int, key: MasterKey, data: Any, split: str,
                model: Any, data_info: Mapping[str, Any], model_info: Mapping[str, Any],
                environment: Mapping[str, Any], legitimate: Mapping[str, BinomialEstimate], figures: bool,
                seconds: float) -> ExperimentResult:
    """The evaluation as an :class:`~evcsa.experiments.ExperimentResult`: what ``evcsa play``
    writes (results.json's layout, config.toml, the tables and figures) — a record of the
    evaluation: its defense and model are named as given (an object by its class), so
    ``evcsa play`` runs it only when both are a kind or plugin and a reference model."""
    ensemble_spec = ComponentSpec(kind="evcsa.evaluation:Ensemble", label=ENSEMBLE_LABEL, params={
        "members": [member_table(mb) for mb in suite.ensemble_order], "labels": list(ensemble.member_labels),
        "sampling": ensemble.sampling, "queries_per_candidate": ensemble.queries_per_candidate,
        **({} if ensemble.query_budget is None else {"query_budget": ensemble.query_budget}),
        "twin_draws": ensemble.twin_draws})
    if isinstance(data, str):
        dataset = data
    elif data is None:
        dataset = "mnist"
    else:
        dataset = str(data_info.get("legitimate", "images"))
    model_name = model if isinstance(model, str) else model_info.get("name")
    reference = model_name if isinstance(model_name, str) and model_name in ("mnist", "digits") else None
    if reference is None:
        reference = str(model) if isinstance(model, str) else f"given: {model_info.get('architecture', 'model')}"
    config = ExperimentConfig(
        name="evaluate", seed=int(seed), runs=budget.runs, reproducible=True, master_key=key.hex(),
        legitimate_draws=budget.legitimate_draws,
        data=DataConfig(dataset=dataset, split=split if dataset in ("mnist", "digits") else "all",
                        samples=int(data_info["n_samples"]), correctly_classified=True),
        model=ModelConfig(reference=reference), game=rules, defenses=(resolved.spec,),
        adversaries=(ensemble_spec, *[mb.spec for mb in suite.members]),
        figures=FiguresConfig(taus=(float(tau),), n_values=(rules.n_chosen,), draws=budget.rejudge_draws,
                              attack=suite.crafters[0].spec.params.get("attack", "bim"), examples=0,
                              enabled=bool(figures)))
    return ExperimentResult(config=config, cells=tuple(r.cell for r in rows), legitimate=dict(legitimate), sweep=(),
                            examples=None, data=dict(data_info), model=dict(model_info),
                            environment=dict(environment), seconds=seconds)
