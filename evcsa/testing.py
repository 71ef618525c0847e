"""Property-testing tools for EV-CSA games: hypothesis strategies, toy classifiers and a
state machine that drives random oracle calls and checks the game's invariants.

Use them on your own classifier or adversary::

    from evcsa.testing import game_machine
    TestMyGame = game_machine(lambda rules: EVCSA.from_rules(my_classifier, xs, ys, rules)).TestCase

The invariants checked after every step (seed 000 Fig. 1, seed 002 Fig. 2):

- q ≤ N, n ≤ q, the transcript has q entries, n counts its successes;
- freshness: sources (rule "source") or bit-identical samples (rule "sample") never repeat;
- a malformed query raises InvalidQuery and changes nothing; a stale one raises NotFresh and
  is not counted; an Attack at q = N raises GameOver and changes nothing;
- success is exactly "within ε AND (targeted: ŷ′ = y_t; untargeted: ŷ′ ≠ reference, not
  REJECTED, and a REJECTED C(x) reference never a success)", recomputed independently
  from the submitted x′;
- several threads calling the oracles at once (the ``attack_concurrently`` rule) never pass
  N or freshness and lose no submission;
- a randomized classifier's whitebox twin (the ``twin_independent`` rule) is a distinct
  object with its own keys and its own noise (:func:`check_twin`).

Every failed assertion says what failed, with the numbers.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from evcsa.defenses.base import REJECTED, Defense, check_twin_contract, continuous_output, is_randomized, reachable_objects
from evcsa.distances import NORMS, distance
from evcsa.errors import GameOver, InvalidQuery, NotFresh
from evcsa.games.game import EVCSA
from evcsa.games.oracles import Session
from evcsa.games.rules import FRESHNESS, GOALS, REFERENCES, Rules
from evcsa.randomness import DerivedKeys, KeySource, MasterKey, SystemKeys, keyed_uniform

__all__ = [
    "CoinFlipClassifier",
    "PixelCodeModel",
    "check_twin",
    "coded_samples",
    "game_machine",
    "image_batches",
    "malformed_images",
    "rules",
]


# -- toy classifiers ---------------------------------------------------------------------
class PixelCodeModel(torch.nn.Module):
    """A deterministic toy model whose class is written in pixel (0, 0) of channel 0.

    Class k is the bin of that pixel's value v ∈ [0, 1]: k = min(⌊v·K⌋, K − 1); the logits
    are −|v·K − (k + ½)|, so the prediction is that bin. Write class k as v = (k + ½) / K.
    """

    centres: torch.Tensor  # a buffer: the bins' centres, 0.5 … K − 0.5

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("centres", torch.arange(num_classes, dtype=torch.float32) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, 0, 0:1] * self.num_classes
        return -(v - self.centres).abs()


def coded_samples(labels: Any, shape: tuple[int, int, int] = (1, 4, 4),
                  num_classes: int = 10) -> torch.Tensor:
    """Images for :class:`PixelCodeModel`: class y written in pixel (0, 0), zeros elsewhere.

    Returns float32 [M, C, H, W] in [0, 1].
    """
    y = torch.as_tensor(labels, dtype=torch.float32)
    x = torch.zeros((y.numel(), *shape), dtype=torch.float32)
    x[:, 0, 0, 0] = (y + 0.5) / num_classes
    return x


class CoinFlipClassifier(Defense):
    """A randomized toy classifier with known error probabilities (for statistics tests).

    The base model's label ŷ is flipped to (ŷ + 1) mod K with probability p = x[:, 0, 0, 1]
    (pixel (0, 1) of channel 0), independently per image and per call, using a fresh key
    from ``keys`` for each call. So an adversary that writes p_i into that pixel submits a
    sample that succeeds with probability exactly p_i (untargeted, if ŷ = y).

    Args:
        base: the deterministic classifier (e.g. ``ModelClassifier(PixelCodeModel())``).
        keys: the key source (default: SystemKeys).
    """

    randomized = True

    def __init__(self, base: Any, keys: KeySource | None = None) -> None:
        super().__init__(base)
        self.keys = keys if keys is not None else SystemKeys()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        labels = self.base.predict(x)
        p = torch.as_tensor(x)[:, 0, 0, 1].detach().cpu()
        u = keyed_uniform(self.keys.next_key(), (p.numel(),), 0.5) + 0.5  # uniform in (0, 1)
        flip = (u < p).to(labels.device)
        return torch.where(flip, (labels + 1) % self.num_classes, labels)

    def with_keys(self, keys: KeySource) -> CoinFlipClassifier:
        return CoinFlipClassifier(self.base, keys)


# -- the twin contract -------------------------------------------------------------------
def check_twin(classifier: Any, probe: Any) -> None:
    """Check a randomized classifier's whitebox twin contract, for defense authors' tests.

    The game refuses (at construction) a classifier failing (1)–(3); (4) is what makes a
    twin useful for a reproducible evaluation:

    1. ``classifier.with_keys(keys)`` is a distinct object;
    2. it holds none of the classifier's key sources;
    3. its draws are not the classifier's draws;
    4. twins from two independent key sources draw different noise, and twins from two
       equal key sources draw the same noise (where the classifier has a continuous
       output, ``surrogate_logits`` or ``predict_proba``).

    Args:
        classifier: the randomized classifier (a deterministic one passes trivially).
        probe: float32 [B, C, H, W] in [0, 1], a few natural images.

    Raises:
        AssertionError (for (4)) or InvalidParameter (for (1)–(3)); the message names the
        class and what failed.
    """
    probe = torch.as_tensor(probe)
    check_twin_contract(classifier, probe)
    if not is_randomized(classifier):
        return
    name = type(classifier).__name__
    mk = MasterKey.generate()
    a = continuous_output(classifier.with_keys(DerivedKeys(mk, "twin")), probe)
    a_again = continuous_output(classifier.with_keys(DerivedKeys(mk, "twin")), probe)
    b = continuous_output(classifier.with_keys(DerivedKeys(MasterKey.generate(), "twin")), probe)
    if a is None or a_again is None or b is None:
        return
    assert torch.equal(a, a_again), (f"{name}.with_keys(keys): two twins from equal key sources drew different "
                                     f"noise (max difference {float((a - a_again).abs().max()):.3g}); a twin must "
                                     "draw all its randomness from keys")
    assert not torch.equal(a, b), (f"{name}.with_keys(keys): twins from independent key sources drew the same "
                                   "output; the twin ignores keys")


# -- strategies --------------------------------------------------------------------------
def image_batches(shape: tuple[int, int, int] = (1, 4, 4), min_batch: int = 1,
                  max_batch: int = 4) -> st.SearchStrategy[torch.Tensor]:
    """Valid image batches: float32 [B, *shape] with values in [0, 1]."""
    return st.integers(min_batch, max_batch).flatmap(
        lambda b: hnp.arrays(np.float32, (b, *shape),
                             elements=st.floats(0, 1, width=32, allow_subnormal=False))
    ).map(torch.from_numpy)


def malformed_images(shape: tuple[int, int, int] = (1, 4, 4)) -> st.SearchStrategy[Any]:
    """Inputs every image-taking oracle must reject with InvalidQuery: NaN, ±inf, values
    outside [0, 1], integer dtype, the wrong image shape, the wrong rank, an empty batch."""
    c, h, w = shape
    good = torch.full((1, c, h, w), 0.5)

    def poke(value: float) -> torch.Tensor:
        x = good.clone()
        x[0, 0, 0, 0] = value
        return x

    return st.one_of(
        st.sampled_from([float("nan"), float("inf"), float("-inf")]).map(poke),
        st.floats(1.0001, 10).map(poke),
        st.floats(-10, -0.0001).map(poke),
        st.just(good.to(torch.int64)),
        st.just(torch.full((1, c, h + 1, w), 0.5)),
        st.just(torch.full((c, h, w, 1, 1), 0.5)),
        st.just(torch.zeros((0, c, h, w))),
        st.just([[0.5]]),
    )


def rules(max_n_chosen: int = 4) -> st.SearchStrategy[Rules]:
    """Arbitrary game rules with N ≤ ``max_n_chosen`` (ε on the [0, 1] scale, or pixels)."""
    return st.builds(
        lambda n, norm, eps, goal, fresh, reveal, ref: Rules(
            n_chosen=n, norm=norm, epsilon=None if eps is None else (round(eps * 16) if norm == "l0" else eps),
            goal=goal, freshness=fresh, reveal=reveal, untargeted_reference=ref, knowledge="whitebox"),
        st.integers(1, max_n_chosen), st.sampled_from(NORMS),
        st.none() | st.floats(0, 1), st.sampled_from(GOALS), st.sampled_from(FRESHNESS),
        st.booleans(), st.sampled_from(REFERENCES))


# -- the state machine -------------------------------------------------------------------
def game_machine(make_game: Callable[[Rules], EVCSA],
                 rule_strategy: st.SearchStrategy[Rules] | None = None) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine over games built by ``make_game(rules)``.

    Args:
        make_game: builds the game for drawn rules (its samples must be ≥ N and of one
            shape; its classifier any evcsa classifier).
        rule_strategy: rules to draw (default :func:`rules`).

    Returns:
        A ``RuleBasedStateMachine`` subclass; its ``TestCase`` attribute is a unittest case.
    """
    strategy: st.SearchStrategy[Rules] = rules() if rule_strategy is None else rule_strategy

    class EVCSAMachine(RuleBasedStateMachine):
        session: Session

        @initialize(r=strategy)
        def open_game(self, r: Rules) -> None:
            self.game = make_game(r)
            self.session = self.game.start(seed=0)
            self.oracles = self.session.oracles
            self.used_sources: set[int] = set()
            self.used_bytes: set[bytes] = set()
            self.classified = 0
            self.submitted: list[torch.Tensor] = []

        # -- helpers ------------------------------------------------------------------
        def snapshot(self) -> tuple:
            s = self.session
            return (s.submissions, s.successes, s.classify_queries, len(s.transcript))

        def is_fresh(self, source: int, x: torch.Tensor) -> bool:
            if self.game.rules.freshness == "source":
                return source not in self.used_sources
            return x.numpy().tobytes() not in self.used_bytes

        def draw_target(self, data: st.DataObject, source: int) -> int | None:
            if self.game.rules.goal != "targeted":
                return None
            y = int(self.game.labels[source])
            others = [k for k in range(self.game.num_classes) if k != y]
            return data.draw(st.sampled_from(others))

        # -- Classify -----------------------------------------------------------------
        @rule(data=st.data())
        def classify_valid(self, data: st.DataObject) -> None:
            x = data.draw(image_batches(self.game.image_shape, max_batch=3))
            labels = self.oracles.classify(x)
            assert isinstance(labels, torch.Tensor) and labels.shape == (x.shape[0],) and labels.dtype == torch.int64
            self.classified += x.shape[0]

        @rule(bad=st.data())
        def classify_malformed(self, bad: st.DataObject) -> None:
            x = bad.draw(malformed_images(self.game.image_shape))
            before = self.snapshot()
            try:
                self.oracles.classify(x)
            except InvalidQuery:
                pass
            else:
                raise AssertionError(f"Classify accepted malformed input {x!r}")
            assert self.snapshot() == before

        # -- Attack -------------------------------------------------------------------
        @rule(data=st.data())
        def attack_valid(self, data: st.DataObject) -> None:
            m = self.game.samples.shape[0]
            source = data.draw(st.integers(0, m - 1), label="source")
            x = self.game.samples[source]
            noise = data.draw(hnp.arrays(np.float32, tuple(x.shape),
                                         elements=st.floats(-1, 1, width=32)), label="noise")
            scale = data.draw(st.sampled_from([0.0, 1e-7, 0.05, 0.5, 1.0]), label="scale")
            x_adv = (x + scale * torch.from_numpy(noise)).clamp(0, 1)
            target = self.draw_target(data, source)
            self.submit(source, x_adv, target)

        @precondition(lambda self: bool(self.session.transcript))
        @rule(data=st.data())
        def attack_repeat(self, data: st.DataObject) -> None:
            """Resubmit an earlier (source, x′): always stale under either freshness rule."""
            entry = data.draw(st.sampled_from(self.session.transcript))
            x_adv = self.submitted[entry.position]
            self.submit(entry.source, x_adv, self.draw_target(data, entry.source))

        def submit(self, source: int, x_adv: torch.Tensor, target: int | None) -> None:
            before = self.snapshot()
            full = self.session.submissions >= self.game.rules.n_chosen
            fresh = self.is_fresh(source, x_adv)
            try:
                revealed = self.oracles.attack(source, x_adv, target)
            except GameOver:
                assert full, "GameOver before N submissions"
                assert self.snapshot() == before
                return
            except NotFresh:
                assert not full and not fresh, "NotFresh for a fresh query"
                assert self.snapshot() == before
                return
            assert not full and fresh, "an Attack query past N or stale was accepted"
            self.check_entry(source, x_adv, target, revealed)
            self.used_sources.add(source)
            self.used_bytes.add(x_adv.numpy().tobytes())
            self.submitted.append(x_adv)

        def check_entry(self, source: int, x_adv: torch.Tensor, target: int | None,
                        revealed: int | None) -> None:
            r, game = self.game.rules, self.game
            entry = self.session.transcript[-1]
            x = game.samples[source][None]
            d = float(distance(x, x_adv[None], r.norm, tolerance=r.tolerance)[0])
            slack = 0 if r.norm == "l0" else r.tolerance
            within = r.epsilon is None or d <= r.epsilon + slack
            assert entry.source == source and entry.target == target
            assert abs(entry.distance - d) <= 1e-9 and entry.within_epsilon == within, (
                f"distance recorded {entry.distance} (within ε {entry.within_epsilon}), recomputed {d} ({within})")
            if r.goal == "targeted":
                hit = entry.label == target and entry.reference == target
            else:
                hit = entry.label != entry.reference and entry.label != REJECTED and entry.reference != REJECTED
                if r.untargeted_reference == "label":
                    assert entry.reference == int(game.labels[source]), (
                        f"reference {entry.reference} is not the true label {int(game.labels[source])}")
            assert entry.success == (within and hit), (
                f"success recorded {entry.success}, the rule gives {within and hit} (within ε {within}, "
                f"label {entry.label}, reference {entry.reference}, goal {r.goal})")
            if getattr(game.classifier, "randomized", True) is False:
                assert entry.label == int(game.classifier.predict(x_adv[None])[0])
                if r.untargeted_reference == "prediction" and r.goal == "untargeted":
                    assert entry.reference == int(game.classifier.predict(x)[0])
            assert (revealed == entry.label) if r.reveal else revealed is None

        @rule(data=st.data())
        def attack_malformed(self, data: st.DataObject) -> None:
            game = self.game
            m = game.samples.shape[0]
            good_source = data.draw(st.integers(0, m - 1))
            good_x = game.samples[good_source]
            targeted = game.rules.goal == "targeted"
            right_target = self.draw_target(data, good_source)
            kind = data.draw(st.sampled_from(["image", "source", "target"]))
            args: tuple[object, object, object]  # (source, x, target), one of them malformed
            if kind == "image":
                args = (good_source, data.draw(malformed_images(game.image_shape)), right_target)
            elif kind == "source":
                args = (data.draw(st.sampled_from([-1, m, m + 7, 1.5, "0", None])), good_x, right_target)
            else:
                if targeted:
                    y = int(game.labels[good_source])
                    bad = data.draw(st.sampled_from([None, y, -1, game.num_classes]))
                else:
                    bad = data.draw(st.integers(0, game.num_classes - 1))
                args = (good_source, good_x, bad)
            before = self.snapshot()
            try:
                self.oracles.attack(*args)
            except InvalidQuery:
                pass
            else:
                raise AssertionError(f"Attack accepted a malformed query ({kind})")
            assert self.snapshot() == before

        @rule(data=st.data(), threads=st.integers(2, 8))
        def attack_concurrently(self, data: st.DataObject, threads: int) -> None:
            """Several threads submit at once (some of them the same source or sample): the
            game must accept exactly the fresh ones up to N, as one thread would."""
            m = self.game.samples.shape[0]
            picks = [data.draw(st.integers(0, m - 1), label="source") for _ in range(threads)]
            queries = []
            for source in picks:
                x = self.game.samples[source].clone()
                queries.append((source, x, self.draw_target(data, source)))
            before = self.session.submissions
            barrier = threading.Barrier(threads)
            outcomes: list[Any] = [None] * threads

            def go(i: int) -> None:
                barrier.wait()
                try:
                    self.oracles.attack(*queries[i])
                    outcomes[i] = "accepted"
                except (GameOver, NotFresh) as exc:
                    outcomes[i] = type(exc).__name__

            workers = [threading.Thread(target=go, args=(i,)) for i in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            accepted = [i for i, o in enumerate(outcomes) if o == "accepted"]
            assert all(o is not None for o in outcomes), f"a thread's Attack raised something else: {outcomes}"
            # the fresh ones (by this machine's own account), up to the remaining N
            fresh, seen_s, seen_b = [], set(self.used_sources), set(self.used_bytes)
            for i, (source, x, _) in enumerate(queries):
                if self.game.rules.freshness == "source":
                    new = source not in seen_s
                    seen_s.add(source)
                else:
                    key = x.numpy().tobytes()
                    new = key not in seen_b
                    seen_b.add(key)
                if new:
                    fresh.append(i)
            expected = min(len(fresh), self.game.rules.n_chosen - before)
            assert len(accepted) == expected == self.session.submissions - before, (
                f"{threads} concurrent Attack calls: {len(accepted)} accepted, {expected} fresh within N "
                f"(q went {before} → {self.session.submissions}); outcomes {outcomes}")
            by_position = self.session.transcript[before:]
            for entry in by_position:
                i = next(j for j in accepted if queries[j][0] == entry.source
                         and (self.game.rules.freshness == "source"
                              or queries[j][1].numpy().tobytes() not in self.used_bytes))
                source, x, _ = queries[i]
                self.used_sources.add(source)
                self.used_bytes.add(x.numpy().tobytes())
                self.submitted.append(x)

        @rule()
        def twin_independent(self) -> None:
            """The whitebox twin handed over is a distinct object with its own keys, and no
            part of it is the game's classifier (check_twin's contract)."""
            game = self.game
            k = game.knowledge(seed=1)
            twin = k.defense
            assert twin is not game.classifier, "the whitebox twin is the game's classifier itself"
            if getattr(game.classifier, "randomized", None) is not False:
                own = reachable_objects(game.classifier, (KeySource,))
                shared = [repr(v) for i, v in reachable_objects(twin, (KeySource,)).items() if i in own]
                assert not shared, f"the twin shares the defense's key source(s) {shared}"
            if k.model is not None and game.model is not None:
                assert k.model is not game.model and k.model.module is not game.model.module, \
                    "the model handed to the adversary is the game's own"

        # -- invariants ---------------------------------------------------------------
        @invariant()
        def counters_consistent(self) -> None:
            if not hasattr(self, "session"):
                return
            s, n_chosen = self.session, self.game.rules.n_chosen
            t = s.transcript
            assert s.submissions <= n_chosen and s.successes <= s.submissions
            assert len(t) == s.submissions == len(self.submitted)
            assert s.successes == sum(e.success for e in t)
            assert s.classify_queries == self.classified
            assert self.oracles.remaining == n_chosen - s.submissions
            if self.game.rules.freshness == "source":
                assert len({e.source for e in t}) == len(t)
            else:
                assert len({x.numpy().tobytes() for x in self.submitted}) == len(t)

        def teardown(self) -> None:
            if hasattr(self, "session"):
                result = self.session.finish()
                assert result.successes == self.session.successes
                assert 0.0 <= result.success_rate <= 1.0

    return EVCSAMachine
