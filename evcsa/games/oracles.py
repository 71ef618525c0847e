"""One open game: its state (q, n, X_A and the counters), the Classify and Attack oracles
handed to the adversary (seed 002 Fig. 2 and seed 000 Fig. 1, lines 5–13), and the
:class:`Session` that holds them until :meth:`Session.finish` closes the game."""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from evcsa._validation import as_images, as_labels, describe
from evcsa.defenses.base import modules_of
from evcsa.errors import BudgetExhausted, GameOver, InvalidQuery, NotFresh
from evcsa.games.knowledge import Knowledge
from evcsa.games.results import GameResult, Submission
from evcsa.games.rules import Rules, check_distortion, judge_success

__all__ = ["GameState", "Oracles", "Referee", "Session"]


class Referee(Protocol):
    """What the oracles and the session need of their game (:class:`evcsa.games.EVCSA`
    implements it): the rules, X_D with its labels and K, and the one checked
    classification of the game's classifier."""

    rules: Rules
    samples: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    classifier: object
    record_samples: bool

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    @property
    def device(self) -> torch.device: ...

    def predict_checked(self, x: torch.Tensor, state: GameState | None = None) -> torch.Tensor: ...


class GameState:
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

    def __init__(self, game: Referee, state: GameState) -> None:
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
            labels = self._game.predict_checked(x, st)
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
        # 5. success, computed before any state changes, by the one rule (judge_success)
        judged = x_adv.detach().to("cpu", torch.float32, copy=True) if st.samples is not None else None
        x_nat = game.samples[src]
        d, ok = check_distortion(rules, x_nat, x_adv.to(x_nat.device))
        device = game.device
        pred = game.predict_checked(x_adv.to(device), st)
        reference_predictions = game.predict_checked(x_nat.to(device), st) if rules.needs_reference_predictions \
            else None
        hit = judge_success(rules, pred, game.labels[src], targets=tgt, reference_predictions=reference_predictions)
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
        if judged is not None and st.samples is not None:
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


def _is_single_image(x: object) -> bool:
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


class Session:
    """One open game: its oracles, the adversary's knowledge, and the running tallies.

    Made by :meth:`evcsa.games.EVCSA.start`. Read-only views (``successes``, ``submissions``,
    ``transcript``) show the game's state so far; :meth:`finish` closes both oracles and
    returns the :class:`GameResult`.
    """

    def __init__(self, game: Referee, knowledge: Knowledge, classifier: Any = None) -> None:
        record = bool(game.record_samples)
        if classifier is None or classifier is game.classifier:
            self._state = GameState(record_samples=record)
        else:
            self._state = GameState(classifier, modules_of(classifier), record_samples=record)
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

    def finish(self, report: object = None) -> GameResult:
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
