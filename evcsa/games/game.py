"""The EV-CSA game: :class:`EVCSA`, one game and a series of them (repetition).

Seed 002 Fig. 2 and seed 000 Fig. 1, line by line (docs/concepts.md has the full map):

=====  ==================================  ===========================================
line   the figure                          here
=====  ==================================  ===========================================
1–2    q ← 0, n ← 0, X_A ← ∅               a fresh :class:`~evcsa.games.oracles.GameState` per game
3      A(ε, N, ⟨C⟩, X_D)^{Classify,Attack}  ``adversary.prepare(k).play(oracles, k)``
4      return n / N                        :attr:`GameResult.success_rate`
5–6    Classify: ŷ ← C(x)                  :meth:`Oracles.classify`
7      Attack: if q ≥ N, end               :class:`~evcsa.errors.GameOver`
8      freshness (⊥)                       :class:`~evcsa.errors.NotFresh`, not counted
9–10   q ← q + 1, X_A ∪← x′                the transcript
11–12  success → n ← n + 1                 ε check, then the goal's label test
13     give ŷ′ to A (seed 002)             returned when ``reveal`` is on
=====  ==================================  ===========================================

The oracles and the session live in :mod:`evcsa.games.oracles`, the adversary's
knowledge and the tamper checks in :mod:`evcsa.games.knowledge`, the success rule in
:mod:`evcsa.judging` (through :class:`Rules`); this module re-exports ``Knowledge``,
``Oracles`` and ``Session`` where they have always been imported from.

The game owns every rule and checks it at the moment of the call. An adversary's own
claim of success is never consulted: success is recomputed from the submitted x′.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from evcsa._validation import as_images, as_labels, check_positive_int, describe
from evcsa.defenses.base import (ModelClassifier, check_twin_contract, eval_mode, is_randomized, key_sources_of,
                                 modules_of, undefended_model)
from evcsa.errors import InvalidParameter, NotReproducibleWarning
from evcsa.games.knowledge import Knowledge, adversary_copy, check_model_unchanged, model_state
from evcsa.games.oracles import GameState, Oracles, Session
from evcsa.games.results import GameResult, RepeatResult
from evcsa.games.rules import Rules
from evcsa.judging import check_predictions
from evcsa.randomness import DerivedKeys, KeySource, SystemKeys


class AdversaryProtocol(Protocol):
    """What the game needs of an adversary — :class:`evcsa.adversaries.Adversary` implements
    it; the game depends on this, not on the adversaries' package.

    ``prepare(knowledge)`` returns the adversary that plays (itself when there is nothing
    to prepare); ``play(oracles, knowledge)`` plays one game and returns its report (any
    object, kept as ``GameResult.report``). ``check_rules(rules)``, where present, refuses
    rules the adversary cannot play under.
    """

    def prepare(self, knowledge: Knowledge) -> AdversaryProtocol: ...

    def play(self, oracles: Oracles, knowledge: Knowledge) -> Any: ...


class EVCSA:
    """The EV-CSA game between an adversary and a (possibly randomized) classifier.

    Two spellings, the same game::

        EVCSA(classifier, samples, labels, Rules.seed_000(25, 0.3))   # the rules record
        EVCSA(classifier, samples, labels, n_chosen=25, epsilon=0.3)  # keyword shortcuts

    ``game.record_samples = True`` makes every game's :class:`GameResult` keep the accepted
    x′ as the game judged them (``GameResult.samples``, its private copies taken under the
    game's lock): what a record of the game must store, whatever the adversary does to its
    own tensors (the experiment engine uses it).

    Args:
        classifier: anything with ``predict(x) -> labels`` (int64 [B]); usually an
            :class:`evcsa.defenses.Classifier`; a bare ``torch.nn.Module`` (logits) is
            wrapped in :class:`~evcsa.defenses.ModelClassifier` for you. Its randomness is
            its own (key source).
        samples: X_D, float32 [M, C, H, W] in [0, 1] (numpy or torch).
        labels: the true labels, M integers in [0, K).
        rules: the game's :class:`Rules` record; or None and the keyword shortcuts below.
        n_chosen: N, 1 ≤ N (≤ M under freshness "source") (shortcut, without ``rules``).
        epsilon, norm, goal, freshness, reveal, untargeted_reference, knowledge,
            classify_budget, tolerance: the rules, see :class:`Rules` (shortcuts).
        model: the undefended model for graybox/whitebox knowledge (default: the
            classifier's ``model``).
        num_classes: K (default: the classifier's ``num_classes``, else max label + 1).

    Raises:
        InvalidParameter: bad samples, labels, rule values, ``num_classes`` (an integer
            ≥ 2) or ``model`` (a ModelClassifier); both ``rules`` and shortcuts, or
            neither; graybox knowledge without an undefended model; whitebox knowledge
            against a randomized classifier whose twin breaks the contract
            (:func:`evcsa.defenses.check_twin_contract`: no ``with_keys``, the twin is the
            classifier itself, shares its key source or draws its noise).
    """

    _SHORTCUTS = dict(n_chosen=None, epsilon=None, norm="linf", goal="untargeted", freshness="source",
                      reveal=False, untargeted_reference="label", knowledge="whitebox", classify_budget=None,
                      tolerance=1e-6)

    def __init__(self, classifier: Any, samples: Any, labels: Any, rules: Rules | None = None, *,
                 n_chosen: int | None = None, epsilon: float | None = None, norm: str = "linf",
                 goal: str = "untargeted", freshness: str = "source", reveal: bool = False,
                 untargeted_reference: str = "label", knowledge: str = "whitebox",
                 classify_budget: int | None = None, tolerance: float = 1e-6,
                 model: ModelClassifier | None = None, num_classes: int | None = None) -> None:
        given: dict[str, Any] = dict(
            n_chosen=n_chosen, epsilon=epsilon, norm=norm, goal=goal, freshness=freshness, reveal=reveal,
            untargeted_reference=untargeted_reference, knowledge=knowledge, classify_budget=classify_budget,
            tolerance=tolerance)
        if rules is not None:
            if not isinstance(rules, Rules):
                raise InvalidParameter(f"expected rules as a Rules record, got {type(rules).__name__}",
                                       got=type(rules).__name__)
            extra = sorted(k for k, v in given.items() if v is not self._SHORTCUTS[k] and v != self._SHORTCUTS[k])
            if extra:
                raise InvalidParameter(f"expected either a Rules record or keyword rules, got both (rules and "
                                       f"{', '.join(extra)}); use attrs.evolve(rules, ...) to change a field",
                                       got=extra)
        else:
            if n_chosen is None:
                raise InvalidParameter("expected the game's rules: a Rules record (EVCSA(classifier, samples, "
                                       "labels, rules)) or n_chosen=..., got neither")
            rules = Rules(**given)
        self._setup(classifier, samples, labels, rules, model, num_classes)

    @classmethod
    def from_rules(cls, classifier: Any, samples: Any, labels: Any, rules: Rules, *,
                   model: ModelClassifier | None = None, num_classes: int | None = None) -> EVCSA:
        """A game from a :class:`Rules` record (e.g. ``Rules.seed_002(25)``); the same as
        ``EVCSA(classifier, samples, labels, rules)``."""
        if not isinstance(rules, Rules):
            raise InvalidParameter(f"expected rules as a Rules record, got {type(rules).__name__}")
        return cls(classifier, samples, labels, rules, model=model, num_classes=num_classes)

    def _setup(self, classifier: Any, samples: Any, labels: Any, rules: Rules,
               model: ModelClassifier | None, num_classes: int | None) -> None:
        if isinstance(classifier, torch.nn.Module):
            classifier = ModelClassifier(classifier, num_classes=num_classes)
        if not callable(getattr(classifier, "predict", None)):
            raise InvalidParameter(f"expected a classifier with predict(x), got {type(classifier).__name__}")
        self.classifier = classifier
        self.rules = rules
        self.samples = as_images(samples, name="samples", device="cpu").clone()
        m = self.samples.shape[0]
        if num_classes is not None:
            num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        else:
            try:
                num_classes = int(classifier.num_classes)
            except Exception:
                num_classes = None
        self._declared_classes = num_classes
        self.labels = as_labels(labels, name="labels", length=m, num_classes=num_classes).clone()
        self.num_classes = int(num_classes) if num_classes is not None else int(self.labels.max()) + 1
        if rules.freshness == "source" and rules.n_chosen > m:
            raise InvalidParameter(f"expected N ≤ |X_D| = {m} under freshness 'source', got N = {rules.n_chosen}",
                                   n_chosen=rules.n_chosen, samples=m)
        if model is not None and not isinstance(model, ModelClassifier):
            raise InvalidParameter(f"expected model as a ModelClassifier or None, got {type(model).__name__} "
                                   "(wrap an nn.Module in evcsa.defenses.ModelClassifier)", got=type(model).__name__)
        self.model = model if model is not None else undefended_model(classifier)
        if rules.knowledge in ("graybox", "whitebox") and self.model is None:
            raise InvalidParameter(f"expected an undefended model for {rules.knowledge} knowledge "
                                   "(pass model=...), got none")
        #: whether the classifier may answer differently on the same input (is_randomized:
        #: declared, or holding a key source; a declared False that holds one is refused)
        self.randomized = is_randomized(classifier)
        #: whether each game's result keeps the accepted x′ as the game judged them
        #: (:attr:`GameResult.samples`; the experiment engine stores them)
        self.record_samples = False
        #: the torch modules the game's classifier holds: in eval mode whenever it classifies
        self._modules = modules_of(classifier)
        if rules.knowledge == "whitebox" and self.randomized is not False:
            with eval_mode(*self._modules):
                check_twin_contract(classifier, self.samples[: min(2, m)].to(self.device))

    def predict_checked(self, x: torch.Tensor, state: GameState | None = None) -> torch.Tensor:
        """``classifier.predict(x)`` (the classifier of the game ``state`` belongs to) checked: B labels in [REJECTED, K) as int64 (CPU).

        A classifier answering something else (a wrong count, scores, labels ≥ K) would
        corrupt the tallies (two successes for one submission), so it is an error before
        anything is counted.

        Raises:
            InvalidOutput: the classifier's answer is not B integer labels in range
                (:func:`~evcsa.judging.check_predictions`; an InvalidParameter).
        """
        classifier = self.classifier if state is None or state.classifier is None else state.classifier
        modules = self._modules if state is None or state.classifier is None else state.modules
        with torch.no_grad(), eval_mode(*modules):
            out = classifier.predict(x)
        return check_predictions(out, x.shape[0], self._declared_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the natural samples."""
        return tuple(self.samples.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        """The classifier's device (CPU when it does not say)."""
        return torch.device(getattr(self.classifier, "device", "cpu"))

    # -- one game ----------------------------------------------------------------------
    def knowledge(self, seed: int | np.random.SeedSequence | None = None) -> Knowledge:
        """The knowledge handed to the adversary in one game, with its own randomness.

        Args:
            seed: seeds the adversary's generator and key source (None: OS entropy).
        """
        seed = _as_seed(seed)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
            keys: KeySource = SystemKeys()
        else:
            words = seed.generate_state(6, dtype=np.uint32)
            generator.manual_seed(int(words[0]) << 32 | int(words[1]))
            keys = DerivedKeys(words[2:].tobytes(), label="adversary")
        level = self.rules.knowledge
        model, twin = None, None
        if level != "blackbox":
            model = self.model
        if level == "whitebox":
            twin = self.classifier.with_keys(keys.derive("twin")) if self.randomized is not False \
                else self.classifier
        # one deep copy of both, so that twin.model is knowledge.model and neither is the game's
        model, twin = adversary_copy((model, twin))
        if model is not None:
            model.module.eval()
        r = self.rules
        return Knowledge(
            level=level, samples=self.samples.clone(), labels=self.labels.clone(),
            num_classes=self.num_classes, rules=r, randomized=self.randomized, model=model,
            defense=twin, generator=generator, keys=keys)

    def start(self, *, seed: int | np.random.SeedSequence | None = None) -> Session:
        """Open one game for step-by-step play (a notebook, a test, a state machine).

        ``play`` is ``start`` + ``adversary.play(session.oracles, session.knowledge)`` +
        ``finish``. Each call opens a new game with fresh state (q = n = 0, X_A = ∅).

        Args:
            seed: the adversary's randomness (None: OS entropy).
        """
        return Session(self, self.knowledge(seed))

    def play(self, adversary: AdversaryProtocol, *, seed: int | np.random.SeedSequence | None = None
             ) -> GameResult:
        """Play one game: ``adversary.prepare(k)`` then ``.play(oracles, k)``.

        Args:
            adversary: an :class:`evcsa.adversaries.Adversary`.
            seed: the adversary's randomness (None: OS entropy). The classifier's
                randomness comes from its own key source, never from here.

        Returns:
            :class:`GameResult`; submissions never made count as failures.

        Raises:
            InvalidParameter: ``adversary`` has no ``play`` (or is a class), its
                ``check_rules`` refuses the game (too little knowledge, say), or a bad ``seed``.
            ModelTampered: the adversary changed the model in its knowledge (checked after
                ``prepare`` and after ``play``).
            Whatever the adversary lets escape (an uncaught InvalidQuery, say).
        """
        _check_adversary(adversary, self.rules)
        ss = _as_seed(seed)
        prep_seed, play_seed = (None, None) if ss is None else ss.spawn(2)
        prepared = self._prepare(adversary, self.knowledge(prep_seed))
        return self._play_prepared(prepared, self.knowledge(play_seed))

    def _prepare(self, adversary: AdversaryProtocol, knowledge: Knowledge) -> AdversaryProtocol:
        before = model_state(knowledge.model)
        prepared = adversary.prepare(knowledge)
        check_model_unchanged(before, knowledge.model, "prepare")
        if prepared is None or not callable(getattr(prepared, "play", None)):
            raise InvalidParameter(f"expected {type(adversary).__name__}.prepare(knowledge) to return the adversary "
                                   f"that plays (return self when there is nothing to prepare), got "
                                   f"{describe(prepared)}", got=type(prepared).__name__)
        return prepared

    def _play_prepared(self, adversary: AdversaryProtocol, knowledge: Knowledge, classifier: Any = None) -> GameResult:
        session = Session(self, knowledge, classifier)
        report = None
        before = model_state(knowledge.model)
        try:
            report = adversary.play(session.oracles, knowledge)
        finally:
            result = session.finish(report)
        check_model_unchanged(before, knowledge.model, "play")
        return result

    def series_keys(self) -> KeySource | None:
        """The key source a series of games derives each game's classifier randomness from:
        the classifier's ``keys`` when that is a :class:`~evcsa.randomness.KeySource`, else
        the first key source reachable through its attributes (a wrapped defense's), else
        None (a deterministic classifier, or a randomized one holding no key source)."""
        if self.randomized is False:
            return None
        own = getattr(self.classifier, "keys", None)
        if isinstance(own, KeySource):
            return own
        found = key_sources_of(self.classifier)
        return found[0] if found else None

    def game_classifier(self, index: int) -> Any:
        """The classifier that game ``index`` of a series (:meth:`repeat`) plays against.

        A randomized classifier is re-keyed for every game: ``classifier.with_keys(
        series_keys().derive(f"game {index}"))``, so game i's randomness is a function of the
        classifier's key source and i alone — the same whether the series is played at once,
        in chunks (the experiment engine) or from game i on (``repeat(start=i)``), and
        distinct between games. A deterministic classifier, or a randomized one that holds
        no key source, is the game's classifier itself (the latter's draws then continue
        its own stream from game to game; not reproducible in chunks).

        Args:
            index: the game's index in the series, ≥ 0.

        Raises:
            InvalidParameter: a negative ``index``.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise InvalidParameter(f"expected a game index ≥ 0, got {index!r}", got=index)
        keys = self.series_keys()
        if keys is None:
            return self.classifier
        return self.classifier.with_keys(keys.derive(f"game {int(index)}"))

    def repeat(self, adversary: AdversaryProtocol, runs: int, *, seed: int | np.random.SeedSequence | None = None,
               reuse_preparation: bool = True, progress: bool | None = None, start: int = 0) -> RepeatResult:
        """Play R games with fresh classifier randomness in each.

        Game i (``start`` ≤ i < ``start`` + R) plays against :meth:`game_classifier` (i): a
        randomized classifier re-keyed from its key source for that game alone, so every
        game draws its own randomness and games ``start`` … of a longer series are the
        same games as in the series played from 0. The adversary's coins of game i are
        child i + 1 of ``seed`` (child 0 prepares).

        Args:
            adversary: the adversary.
            runs: R ≥ 1.
            seed: the adversary's randomness for the whole series (None: OS entropy).
            start: the index of the first game in the series (default 0; the experiment
                engine plays a cell in chunks of games ``start`` … ``start + runs − 1``).
            reuse_preparation: run ``adversary.prepare`` once and play its result in every
                game (default; seed 002 § 5.1: samples crafted once, evaluated over many
                runs, so Adv is over the classifier's randomness given the adversary's
                coins). False prepares afresh in every game (Adv over all randomness).
            progress: show a progress bar (None: only on a terminal).

        Returns:
            :class:`RepeatResult` with the R games.

        Raises:
            InvalidParameter: runs < 1, a bad adversary or a bad ``seed``.
            ModelTampered: as :meth:`play`.
        """
        runs = check_positive_int(runs, "runs")
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise InvalidParameter(f"expected start as an integer ≥ 0, got {start!r}", got=start)
        start = int(start)
        _check_adversary(adversary, self.rules)
        ss = _as_seed(seed)
        if ss is not None:
            _warn_if_not_reproducible(self.classifier, self.randomized)

        def child() -> np.random.SeedSequence | None:
            # one at a time: the same children as ss.spawn(runs + 1), without holding them all
            return None if ss is None else ss.spawn(1)[0]

        first = child()
        if ss is not None and start:  # games start … : children start + 1 … of the same seed
            ss = np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key, pool_size=ss.pool_size,
                                        n_children_spawned=ss.n_children_spawned + start)
        prepared = self._prepare(adversary, self.knowledge(first)) if reuse_preparation else None
        games = []
        with tqdm(total=runs, desc=f"games ({type(adversary).__name__})", unit="game",
                  disable=None if progress is None else not progress, leave=False) as bar:
            for j in range(runs):  # not tqdm(range(runs)): len() of a huge range overflows
                seed_i = child()
                if prepared is None:
                    pair = [None, None] if seed_i is None else seed_i.spawn(2)
                    player = self._prepare(adversary, self.knowledge(pair[0]))
                    k = self.knowledge(pair[1])
                else:
                    player, k = prepared, self.knowledge(seed_i)
                games.append(self._play_prepared(player, k, self.game_classifier(start + j)))
                bar.update(1)
        return RepeatResult(games=tuple(games), n_chosen=self.rules.n_chosen,
                            reused_preparation=reuse_preparation)


def _as_seed(seed: object) -> np.random.SeedSequence | None:
    """``seed`` (an integer ≥ 0 or a SeedSequence) as a SeedSequence; None stays None.

    Raises:
        InvalidParameter: anything else (a string, a float, a negative number, a bool).
    """
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameter(f"expected seed as an integer ≥ 0, a SeedSequence or None, got {seed!r}",
                               got=seed)
    return np.random.SeedSequence(int(seed))


def _check_adversary(adversary: object, rules: Rules) -> None:
    """An Adversary instance (with prepare and play) whose ``check_rules`` accepts ``rules``."""
    if isinstance(adversary, type):
        raise InvalidParameter(f"expected an Adversary instance, got the class {adversary.__name__} "
                               f"(call it: {adversary.__name__}(...))", got=adversary.__name__)
    if not callable(getattr(adversary, "play", None)) or not callable(getattr(adversary, "prepare", None)):
        raise InvalidParameter(f"expected an Adversary (with prepare and play), got {type(adversary).__name__}")
    check = getattr(adversary, "check_rules", None)
    if callable(check):
        check(rules)


def _warn_if_not_reproducible(classifier: object, randomized: bool) -> None:
    """One :class:`~evcsa.errors.NotReproducibleWarning` when a seeded series plays a
    randomized classifier (``randomized``: the game's :func:`~evcsa.defenses.is_randomized`
    of it) whose key source is OS entropy (its numbers cannot repeat)."""
    if randomized and isinstance(getattr(classifier, "keys", None), SystemKeys):
        name = type(classifier).__name__
        warnings.warn(NotReproducibleWarning(
            f"results not reproducible: {name}'s keys come from OS entropy, so seed= repeats only the "
            f"adversary's coins; give it keys=DerivedKeys(MasterKey.generate(), label) and keep the key's "
            f".hex() to repeat every number", classifier=name), stacklevel=3)
