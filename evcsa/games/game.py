"""The EV-CSA game: the oracles, the adversary's knowledge, and repetition.

Seed 002 Fig. 2 and seed 000 Fig. 1, line by line (docs/concepts.md has the full map):

=====  ==================================  ===========================================
line   the figure                          here
=====  ==================================  ===========================================
1–2    q ← 0, n ← 0, X_A ← ∅               a fresh :class:`_GameState` per game
3      A(ε, N, ⟨C⟩, X_D)^{Classify,Attack}  ``adversary.prepare(k).play(oracles, k)``
4      return n / N                        :attr:`GameResult.success_rate`
5–6    Classify: ŷ ← C(x)                  :meth:`Oracles.classify`
7      Attack: if q ≥ N, end               :class:`~evcsa.errors.GameOver`
8      freshness (⊥)                       :class:`~evcsa.errors.NotFresh`, not counted
9–10   q ← q + 1, X_A ∪← x′                the transcript
11–12  success → n ← n + 1                 ε check, then the goal's label test
13     give ŷ′ to A (seed 002)             returned when ``reveal`` is on
=====  ==================================  ===========================================

The game owns every rule and checks it at the moment of the call. An adversary's own
claim of success is never consulted: success is recomputed from the submitted x′.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from typing import Any, Protocol, Sequence

import attrs
import numpy as np
import torch

from evcsa._validation import as_images, as_labels, check_positive_int, describe
from evcsa.defenses.base import (ModelClassifier, check_twin_contract, eval_mode, is_randomized, key_sources_of,
                                 modules_of, undefended_model)
from evcsa.distances import distance, within_epsilon
from evcsa.errors import BudgetExhausted, GameOver, InvalidParameter, InvalidQuery, ModelTampered, NotFresh
from evcsa.games.results import GameResult, RepeatResult, Submission
from evcsa.games.rules import Rules, check_predictions
from evcsa.randomness import DerivedKeys, KeySource, SystemKeys

__all__ = ["EVCSA", "AdversaryProtocol", "Knowledge", "Oracles", "Session"]


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


def _rule_alias(name: str) -> property:
    def get(self: Knowledge) -> Any:
        return getattr(self.rules, name)

    get.__doc__ = f"``rules.{name}`` (a view of the game's :class:`Rules`, not a copy)."
    return property(get)


@attrs.frozen(eq=False)
class Knowledge:
    """What the adversary is given: ⟨C⟩, X_D, N and ε (seed 000 Fig. 1 line 3).

    Everything here is the adversary's own: tensors are private copies, the model is a
    deep copy of the game's (eval mode; input gradients work), the whitebox twin is a
    distinct deep copy with the adversary's own keys. Changing any of them cannot change
    the game, and the defense's own keys are never reachable from here.

    Attributes:
        level: "blackbox", "graybox" or "whitebox".
        samples: X_D, float32 [M, C, H, W] in [0, 1] (CPU).
        labels: the true labels, int64 [M] (CPU).
        num_classes: K.
        rules: the game's :class:`Rules` record (N, ε, norm, goal, freshness, reveal, the
            untargeted reference, the Classify budget, the tolerance). The old attribute
            names (``n_chosen``, ``epsilon``, ``norm``, ``goal``, ``tolerance``,
            ``freshness``, ``reveal``, ``untargeted_reference``, ``classify_budget``) read
            through to it.
        randomized: whether the classifier says it is randomized (None: unknown).
        model: a copy of the undefended model (graybox and whitebox), else None.
        defense: a twin of the defended classifier with the adversary's own randomness
            (whitebox), else None.
        generator: the adversary's torch.Generator (CPU) for its own random choices.
        keys: the adversary's KeySource (the twin draws from keys derived from it).
    """

    level: str
    samples: torch.Tensor = attrs.field(repr=False)
    labels: torch.Tensor = attrs.field(repr=False)
    num_classes: int
    rules: Rules
    randomized: bool | None
    model: ModelClassifier | None = attrs.field(repr=False)
    defense: Any = attrs.field(repr=False)
    generator: torch.Generator = attrs.field(repr=False)
    keys: KeySource = attrs.field(repr=False)

    n_chosen = _rule_alias("n_chosen")
    epsilon = _rule_alias("epsilon")
    norm = _rule_alias("norm")
    goal = _rule_alias("goal")
    tolerance = _rule_alias("tolerance")
    freshness = _rule_alias("freshness")
    reveal = _rule_alias("reveal")
    untargeted_reference = _rule_alias("untargeted_reference")
    classify_budget = _rule_alias("classify_budget")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.samples.shape[1:])  # type: ignore[return-value]

    def is_success(self, predictions: Any, labels: Any, *, targets: Any = None,
                   reference_predictions: Any = None) -> torch.Tensor:
        """The game's success rule, :meth:`Rules.is_success` (use it; never write your own).

        Args:
            predictions: C(x′), int64 [..., B] (leading draw dimensions broadcast).
            labels: true labels of the sources, int64 [B].
            targets: y_t, int64 [B], in a targeted game (else None).
            reference_predictions: C(x) on fresh randomness, int64 [..., B], in an
                untargeted game against the prediction (``rules.untargeted_reference ==
                "prediction"``).

        Returns:
            torch.bool [..., B]; REJECTED (−1) is never a success, nor is anything judged
            against a REJECTED C(x).

        Raises:
            InvalidParameter: as :func:`evcsa.games.rules.is_success`.
        """
        return self.rules.is_success(predictions, labels, targets=targets,
                                     reference_predictions=reference_predictions)


class _GameState:
    """q, n, X_A and the counters of one game (seed Fig. lines 1–2), reset per game."""

    def __init__(self, classifier: Any = None, modules: Sequence[torch.nn.Module] = (),
                 record_samples: bool = False) -> None:
        #: the classifier this game's oracles query (a series re-keys it per game) and its modules
        self.classifier = classifier
        self.modules = tuple(modules)
        self.q = 0
        self.n = 0
        self.classify_queries = 0
        self.stale = 0
        self.used_sources: set[int] = set()
        self.digests: set[bytes] = set()
        self.transcript: list[Submission] = []
        #: with EVCSA.record_samples, the x′ of each accepted submission as the game judged it
        #: (its private copy), in transcript order; else None
        self.samples: list[torch.Tensor] | None = [] if record_samples else None
        self.closed = False
        #: every oracle call holds it from its first check to its last write (atomic per game)
        self.lock = threading.RLock()


def _digest(x: torch.Tensor) -> bytes:
    """Digest of one image's (dtype, shape, bytes): the identity of x′ for freshness.

    −0.0 is stored as +0.0 first (adding +0.0 does that): the two are the same pixel value,
    so flipping the sign of a zero does not make a sample fresh.
    """
    arr = (x.detach().to("cpu", torch.float32) + 0.0).contiguous().numpy()
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.digest()


class Oracles:
    """The Classify and Attack oracles of one game, handed to the adversary.

    Every rule is checked at the call, in the seeds' order (seed 000 Fig. 1): malformed input → InvalidQuery
    (nothing changes); q ≥ N → GameOver; stale → NotFresh (⊥, not counted); then q ← q + 1,
    the ε check and the label test (:meth:`Rules.is_success`), n ← n + 1 on success. After
    the adversary returns, both oracles are closed (GameOver).

    Thread-safe: each call is atomic for its game (one lock per game, held from the first
    check to the last write), and works on its own copy of x′, taken once on entry, so an
    adversary may call the oracles from several threads: N, freshness and the Classify
    budget hold, no success is lost, and changing a tensor during a call changes nothing
    the game sees.
    """

    def __init__(self, game: EVCSA, state: _GameState) -> None:
        self._game = game
        self._state = state

    # -- read-only views -------------------------------------------------------------
    @property
    def submitted(self) -> int:
        """q: accepted Attack queries so far."""
        return self._state.q

    @property
    def remaining(self) -> int:
        """N − q: how many submissions may still be made."""
        return self._game.rules.n_chosen - self._state.q

    @property
    def classify_queries(self) -> int:
        """Images sent to Classify so far."""
        return self._state.classify_queries

    # -- Classify --------------------------------------------------------------------
    def classify(self, x: Any) -> torch.Tensor | int:
        """Classify oracle (seed Fig. lines 5–6): ŷ ← C(x) on fresh classifier randomness.

        Args:
            x: float32 [B, C, H, W] (or one image [C, H, W]) in [0, 1], the shape of X_D.

        Returns:
            int64 tensor [B] (CPU) of labels, or an int for one image [C, H, W].
            A rejecting defense answers ``REJECTED`` (−1).

        Raises:
            InvalidQuery: malformed x (nothing counted).
            BudgetExhausted: B queries would exceed the classify budget (nothing counted).
            GameOver: the game has ended.
        """
        st = self._state
        single = _is_single_image(x)
        x = _private_copy(x, "x")
        with st.lock:
            if st.closed:
                raise GameOver("expected Classify during the game, got a call after it ended")
            x = as_images(x, name="x", shape=self._game.image_shape, allow_single=True, error=InvalidQuery)
            budget = self._game.rules.classify_budget
            if budget is not None and st.classify_queries + x.shape[0] > budget:
                raise BudgetExhausted(f"expected at most {budget - st.classify_queries} more Classify "
                                      f"queries (budget {budget}), got {x.shape[0]}",
                                      budget=budget, used=st.classify_queries, requested=x.shape[0])
            labels = self._game._predict(x, st)
            st.classify_queries += x.shape[0]
        return int(labels[0]) if single else labels

    # -- Attack ----------------------------------------------------------------------
    def attack(self, source: int, x_adv: Any, target: int | None = None) -> int | None:
        """Attack oracle (seed Fig. lines 7–13) for one chosen sample.

        Args:
            source: index of the natural sample x in X_D.
            x_adv: x′, float32 [C, H, W] (or [1, C, H, W]) in [0, 1].
            target: y_t for targeted games (required there, ≠ y); None otherwise.

        Returns:
            ŷ′ = C(x′) when the game reveals it (seed 002), else None (seed 000).

        Raises:
            InvalidQuery: malformed query (nothing counted).
            GameOver: q ≥ N, or the game has ended.
            NotFresh: stale query, the game's ⊥ (nothing counted).
        """
        if _is_single_image(x_adv):
            x_adv = x_adv[None]
        targets = None if target is None else [target]
        revealed = self.attack_batch([source], x_adv, targets)
        return None if revealed is None else int(revealed[0])

    def attack_batch(self, sources: Sequence[int] | torch.Tensor | np.ndarray, x_adv: Any,
                     targets: Sequence[int] | torch.Tensor | np.ndarray | None = None
                     ) -> torch.Tensor | None:
        """Attack oracle for B chosen samples at once, all-or-nothing.

        Equivalent to B calls of :meth:`attack` in order, except that the whole batch is
        checked before anything is counted: if any item is malformed, stale (also a repeat
        inside the batch) or beyond N, the call raises and nothing is recorded. The
        classifier sees the B samples in one batched call.

        Args:
            sources: B indices into X_D.
            x_adv: float32 [B, C, H, W] in [0, 1].
            targets: B target labels (targeted games), or None.

        Returns:
            int64 [B] (CPU) of ŷ′ when revealed, else None.

        Raises:
            InvalidQuery, GameOver, NotFresh: as :meth:`attack`; ``NotFresh.positions``
            lists the stale items.
        """
        st = self._state
        x_adv = _private_copy(x_adv, "x_adv")  # the one copy every check below reads
        with st.lock:
            return self._attack_locked(sources, x_adv, targets)

    def _attack_locked(self, sources: Any, x_adv: Any, targets: Any) -> torch.Tensor | None:
        game, st, rules = self._game, self._state, self._game.rules
        # 1. malformed input
        x_adv = as_images(x_adv, name="x_adv", shape=game.image_shape, error=InvalidQuery)
        b = x_adv.shape[0]
        src = _as_indices(sources, "sources", b, game.samples.shape[0])
        tgt = None
        if rules.goal == "targeted":
            if targets is None:
                raise InvalidQuery("expected a target label y_t in a targeted game, got none")
            tgt = _as_indices(targets, "targets", b, game.num_classes)
            clash = (tgt == game.labels[src]).nonzero().flatten().tolist()
            if clash:
                raise InvalidQuery(f"expected targets different from the true labels, got y_t = y at "
                                   f"position(s) {clash}", positions=clash)
        elif targets is not None:
            raise InvalidQuery("expected no target in an untargeted game, got one", targets=targets)
        # 2. game over
        if st.closed:
            raise GameOver("expected Attack during the game, got a call after it ended")
        if st.q >= rules.n_chosen:
            raise GameOver(f"expected at most N = {rules.n_chosen} submissions, got one more",
                           n_chosen=rules.n_chosen)
        if b > rules.n_chosen - st.q:
            raise GameOver(f"expected at most {rules.n_chosen - st.q} more submissions "
                           f"(N = {rules.n_chosen}), got {b}", remaining=rules.n_chosen - st.q,
                           requested=b)
        # 3. freshness
        src_list = src.tolist()
        if rules.freshness == "source":
            keys: list[Any] = src_list
            seen: set[Any] = st.used_sources
        else:
            keys = [_digest(img) for img in x_adv]
            seen = st.digests
        stale, batch_seen = [], set()
        for i, k in enumerate(keys):
            if k in seen or k in batch_seen:
                stale.append(i)
            batch_seen.add(k)
        if stale:
            st.stale += len(stale)
            what = "source" if rules.freshness == "source" else "bit-identical x′"
            raise NotFresh(f"expected fresh queries (one per {what}), got {len(stale)} stale at "
                           f"position(s) {stale}", positions=stale,
                           sources=[src_list[i] for i in stale])
        # 5. success, computed before any state changes, by the one rule (Rules.is_success)
        judged = x_adv.detach().to("cpu", torch.float32, copy=True) if st.samples is not None else None
        x_nat = game.samples[src]
        d, ok = rules.within_epsilon(x_nat, x_adv.to(x_nat.device))
        device = game.device
        pred = game._predict(x_adv.to(device), st)
        reference_predictions = game._predict(x_nat.to(device), st) if rules.needs_reference_predictions else None
        hit = rules.is_success(pred, game.labels[src], targets=tgt, reference_predictions=reference_predictions)
        if tgt is not None:
            reference = tgt
        elif reference_predictions is not None:
            reference = reference_predictions
        else:
            reference = game.labels[src]
        success = ok & hit.cpu()
        # 4 & 6. count, record, reward
        for i in range(b):
            st.transcript.append(Submission(
                position=st.q + i, source=src_list[i], target=None if tgt is None else int(tgt[i]),
                distance=float(d[i]), within_epsilon=bool(ok[i]), label=int(pred[i]),
                reference=int(reference[i]), revealed=rules.reveal, success=bool(success[i])))
        if judged is not None:
            st.samples.extend(judged.unbind(0))
        if rules.freshness == "source":
            st.used_sources.update(src_list)
        else:
            st.digests.update(keys)
        st.q += b
        st.n += int(success.sum())
        return pred.clone() if rules.reveal else None


def _private_copy(x: Any, name: str) -> Any:
    """The oracle's own copy of a query, taken once on entry: every check, the
    classification and the transcript read this copy, so a caller (another thread) that
    changes its tensor during the call changes nothing the game sees.

    Raises:
        InvalidQuery: a sparse (or otherwise non-strided) tensor.
    """
    if isinstance(x, torch.Tensor):
        x = _plain_tensor(x, name)
        if x.layout != torch.strided:
            raise InvalidQuery(f"expected {name} as a dense tensor, got layout {x.layout} "
                               "(call .to_dense())", got=str(x.layout))
        return x
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)  # subok=False: a plain ndarray, whatever the caller's subclass
    return x


def _plain_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """A plain ``torch.Tensor`` copy of ``x``, made with ``__torch_function__`` overrides
    switched off: a subclass of the caller's (whose methods the adversary wrote) could
    otherwise answer the game's own checks — distances, ranges, digests — with lies.

    Raises:
        InvalidQuery: a tensor whose data cannot be read as a plain tensor (a wrapper
            subclass without storage of its own).
    """
    with torch._C.DisableTorchFunction():
        try:
            plain = torch.Tensor.as_subclass(x, torch.Tensor) if type(x) is not torch.Tensor else x
            if plain.layout == torch.strided:
                plain = plain.detach().clone()
        except (RuntimeError, TypeError) as exc:
            raise InvalidQuery(f"expected {name} as a plain tensor, got {type(x).__name__} that cannot be read "
                               f"as one ({exc})", got=type(x).__name__) from None
    if type(plain) is not torch.Tensor:
        raise InvalidQuery(f"expected {name} as a plain tensor, got {type(x).__name__}", got=type(x).__name__)
    return plain


def _is_single_image(x: Any) -> bool:
    """Whether ``x`` is one image [C, H, W] (a tensor or array of rank 3)."""
    return isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim == 3


def _as_indices(values: Any, name: str, length: int, upper: int) -> torch.Tensor:
    """``values`` as ``length`` int64 indices in [0, upper), else InvalidQuery."""
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, torch.Tensor):
        values = _plain_tensor(values, name)
    elif isinstance(values, np.ndarray):
        values = np.array(values, copy=True)
    try:
        return as_labels(values, name=name, length=length, num_classes=upper, error=InvalidQuery)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidQuery):
            raise
        raise InvalidQuery(f"expected {name} as integers, got {describe(values)}") from exc


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
        given = dict(n_chosen=n_chosen, epsilon=epsilon, norm=norm, goal=goal, freshness=freshness, reveal=reveal,
                     untargeted_reference=untargeted_reference, knowledge=knowledge,
                     classify_budget=classify_budget, tolerance=tolerance)
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

    def _predict(self, x: torch.Tensor, state: _GameState | None = None) -> torch.Tensor:
        """``classifier.predict(x)`` (the classifier of the game ``state`` belongs to) checked: B labels in [REJECTED, K) as int64 (CPU).

        A classifier answering something else (a wrong count, scores, labels ≥ K) would
        corrupt the tallies (two successes for one submission), so it is an error before
        anything is counted.

        Raises:
            InvalidOutput: the classifier's answer is not B integer labels in range
                (:func:`~evcsa.games.rules.check_predictions`; an InvalidParameter).
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
        model, twin = _adversary_copy((model, twin))
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
        before = _model_state(knowledge.model)
        prepared = adversary.prepare(knowledge)
        _check_model_unchanged(before, knowledge.model, "prepare")
        if prepared is None or not callable(getattr(prepared, "play", None)):
            raise InvalidParameter(f"expected {type(adversary).__name__}.prepare(knowledge) to return the adversary "
                                   f"that plays (return self when there is nothing to prepare), got "
                                   f"{describe(prepared)}", got=type(prepared).__name__)
        return prepared

    def _play_prepared(self, adversary: AdversaryProtocol, knowledge: Knowledge, classifier: Any = None) -> GameResult:
        session = Session(self, knowledge, classifier)
        report = None
        before = _model_state(knowledge.model)
        try:
            report = adversary.play(session.oracles, knowledge)
        finally:
            result = session.finish(report)
        _check_model_unchanged(before, knowledge.model, "play")
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
        from tqdm.auto import tqdm

        runs = check_positive_int(runs, "runs")
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise InvalidParameter(f"expected start as an integer ≥ 0, got {start!r}", got=start)
        start = int(start)
        _check_adversary(adversary, self.rules)
        ss = _as_seed(seed)
        if ss is not None:
            _warn_if_not_reproducible(self.classifier)

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


class Session:
    """One open game: its oracles, the adversary's knowledge, and the running tallies.

    Made by :meth:`EVCSA.start`. Read-only views (``successes``, ``submissions``,
    ``transcript``) show the game's state so far; :meth:`finish` closes both oracles and
    returns the :class:`GameResult`.
    """

    def __init__(self, game: EVCSA, knowledge: Knowledge, classifier: Any = None) -> None:
        record = bool(getattr(game, "record_samples", False))
        if classifier is None or classifier is game.classifier:
            self._state = _GameState(record_samples=record)
        else:
            self._state = _GameState(classifier, modules_of(classifier), record_samples=record)
        self.game = game
        self.knowledge = knowledge
        self.oracles = Oracles(game, self._state)

    @property
    def successes(self) -> int:
        """n so far."""
        return self._state.n

    @property
    def submissions(self) -> int:
        """q so far."""
        return self._state.q

    @property
    def classify_queries(self) -> int:
        """Images sent to Classify so far."""
        return self._state.classify_queries

    @property
    def stale_queries(self) -> int:
        """Attack queries answered ⊥ so far."""
        return self._state.stale

    @property
    def transcript(self) -> tuple[Submission, ...]:
        """The accepted submissions so far."""
        return tuple(self._state.transcript)

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` has been called."""
        return self._state.closed

    def finish(self, report: Any = None) -> GameResult:
        """End the game (seed Fig. line 4): close the oracles, return n / N and the rest.

        Args:
            report: the adversary's diagnostics, kept as ``GameResult.report``.
        """
        st = self._state
        with st.lock:
            st.closed = True
        return GameResult(successes=st.n, n_chosen=self.game.rules.n_chosen, submissions=st.q,
                          classify_queries=st.classify_queries, stale_queries=st.stale,
                          transcript=tuple(st.transcript), report=report,
                          samples=None if st.samples is None else tuple(st.samples))


def _adversary_copy(objects: Any) -> Any:
    """A deep copy of what the adversary receives (the model, the twin), so that nothing
    it does to them (hooks, monkeypatched methods, ``.data`` swaps, attributes) reaches
    the game's objects.

    Raises:
        InvalidParameter: an object that cannot be deep-copied (named).
    """
    try:
        return copy.deepcopy(objects)
    except Exception as exc:
        names = ", ".join(type(o).__name__ for o in objects if o is not None)
        raise InvalidParameter(f"expected the model and twin handed to the adversary ({names}) to be deep-copyable "
                               f"(copy.deepcopy), got {type(exc).__name__}: {exc}") from exc


def _model_state(model: ModelClassifier | None) -> tuple | None:
    """What identifies the state of the model handed to the adversary: each parameter's
    and buffer's storage and version counter, a float64 sum of its values (which catches
    writes through ``.data`` that bypass the counter), and every submodule's train/eval
    mode. None when there is no model (blackbox knowledge)."""
    if model is None:
        return None
    module = model.module
    tensors = [*module.parameters(), *module.buffers()]
    with torch.no_grad():
        sums = torch.stack([t.detach().double().sum() for t in tensors]).cpu().numpy().tobytes() \
            if tensors else b""
    return (tuple((t.data_ptr(), _version(t)) for t in tensors), sums,
            tuple(m.training for m in module.modules()))


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # inference tensors have no version counter
        return None


def _check_model_unchanged(before: tuple | None, model: ModelClassifier | None, phase: str) -> None:
    """Raise ModelTampered when the model's state differs from ``before`` after the
    adversary's ``phase`` ("prepare" or "play")."""
    if before is None or _model_state(model) == before:
        return
    raise ModelTampered(
        f"expected the adversary to leave the model it was given unchanged, got its parameters, "
        f"buffers or train/eval mode changed during {phase}; the game's result is void "
        "(work on a copy: copy.deepcopy(knowledge.model.module))", phase=phase)


def _as_seed(seed: Any) -> np.random.SeedSequence | None:
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


def _check_adversary(adversary: Any, rules: Rules) -> None:
    """An Adversary instance (with prepare and play) whose ``check_rules`` accepts ``rules``."""
    if isinstance(adversary, type):
        raise InvalidParameter(f"expected an Adversary instance, got the class {adversary.__name__} "
                               f"(call it: {adversary.__name__}(...))", got=adversary.__name__)
    if not callable(getattr(adversary, "play", None)) or not callable(getattr(adversary, "prepare", None)):
        raise InvalidParameter(f"expected an Adversary (with prepare and play), got {type(adversary).__name__}")
    check = getattr(adversary, "check_rules", None)
    if callable(check):
        check(rules)


def _warn_if_not_reproducible(classifier: Any) -> None:
    """One :class:`~evcsa.errors.NotReproducibleWarning` when a seeded series plays a
    randomized classifier whose key source is OS entropy (its numbers cannot repeat)."""
    import warnings

    from evcsa.errors import NotReproducibleWarning
    from evcsa.randomness import SystemKeys

    if getattr(classifier, "randomized", False) and isinstance(getattr(classifier, "keys", None), SystemKeys):
        name = type(classifier).__name__
        warnings.warn(NotReproducibleWarning(
            f"results not reproducible: {name}'s keys come from OS entropy, so seed= repeats only the "
            f"adversary's coins; give it keys=DerivedKeys(MasterKey.generate(), label) and keep the key's "
            f".hex() to repeat every number", classifier=name), stacklevel=3)
