"""The EV-CSA game: rules, oracles, knowledge, results, repetition (DESIGN "The security
model, exactly"; seed 002 Fig. 2, seed 000 Fig. 1)."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from evcsa.adversaries import Adversary
from evcsa.defenses import REJECTED, Defense, ModelClassifier
from evcsa.defenses.base import is_randomized
from evcsa.errors import (BudgetExhausted, EvcsaError, GameOver, InvalidParameter, InvalidQuery, ModelTampered,
                          NotFresh)
from evcsa.games import EVCSA, Rules
from evcsa.randomness import DerivedKeys
from evcsa.stats import advantage_exact
from evcsa.testing import CoinFlipClassifier, PixelCodeModel, coded_samples

K = 10


def code_model() -> ModelClassifier:
    return ModelClassifier(PixelCodeModel(K), num_classes=K)


def coded(labels, shape=(1, 4, 4)) -> torch.Tensor:
    return coded_samples(labels, shape, num_classes=K)


def relabel(x: torch.Tensor, k: int) -> torch.Tensor:
    """x with its coded class changed to k (an L∞ move of |Δ| / K)."""
    x = x.clone()
    x[..., 0, 0, 0] = (k + 0.5) / K
    return x


LABELS = torch.arange(8) % K
SAMPLES = coded(LABELS)


def make_game(**kw) -> EVCSA:
    kw.setdefault("n_chosen", 4)
    return EVCSA(code_model(), SAMPLES, LABELS, **kw)


@attrs.frozen
class Scripted(Adversary):
    """Submits (source, class) pairs: x′ = x with its coded class moved."""

    moves: tuple = ()
    claim: bool = True

    def play(self, oracles, knowledge):
        for source, k in self.moves:
            oracles.attack(source, relabel(knowledge.samples[source], k))
        return {"claimed_successes": len(self.moves) if self.claim else 0}


# -- rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, match", [
    ("n_chosen", 0, "n_chosen as an integer ≥ 1"),
    ("n_chosen", 2.5, "n_chosen as an integer ≥ 1"),
    ("epsilon", -0.1, "epsilon as a finite number ≥ 0"),
    ("epsilon", float("inf"), "epsilon as a finite number ≥ 0"),
    ("epsilon", float("nan"), "epsilon as a finite number ≥ 0"),
    ("norm", "l3", "norm in"),
    ("goal", "evasion", "goal in"),
    ("freshness", "never", "freshness in"),
    ("reveal", "yes", "reveal as true or false"),
    ("untargeted_reference", "truth", "untargeted_reference in"),
    ("knowledge", "omniscient", "knowledge in"),
    ("classify_budget", -1, "classify_budget as an integer ≥ 0"),
    ("tolerance", 0.1, "tolerance in"),
])
def test_bad_rule_values_raise_naming_the_field(field, value, match):
    kw = {"n_chosen": 3, field: value}
    with pytest.raises(InvalidParameter, match=match) as info:
        Rules(**kw)
    assert info.value.key == field


def test_numpy_scalars_are_read_as_numbers():
    r = Rules(n_chosen=np.int64(25), epsilon=np.float32(0.25), classify_budget=np.int32(7),
              reveal=np.bool_(True))
    assert (r.n_chosen, r.epsilon, r.classify_budget, r.reveal) == (25, 0.25, 7, True)
    assert type(r.n_chosen) is int and type(r.epsilon) is float


def test_seed_presets_differ_only_by_configuration():
    r2, r0 = Rules.seed_002(25), Rules.seed_000(25, epsilon=0.3, goal="targeted")
    assert (r2.epsilon, r2.freshness, r2.reveal, r2.untargeted_reference) == (None, "sample", True, "label")
    assert (r0.epsilon, r0.freshness, r0.reveal, r0.untargeted_reference, r0.goal) == \
        (0.3, "source", False, "prediction", "targeted")
    assert Rules.seed_002(25, knowledge="graybox").knowledge == "graybox"


@pytest.mark.parametrize("kwargs, match", [
    ({"n_chosen": 9}, "N ≤ |X_D| = 8"),
    ({"n_chosen": 2, "knowledge": "graybox", "model": None, "classifier": object()}, "classifier with predict"),
])
def test_bad_game_construction(kwargs, match):
    clf = kwargs.pop("classifier", code_model())
    with pytest.raises(InvalidParameter, match=match):
        EVCSA(clf, SAMPLES, LABELS, **kwargs)


class _Predictor:
    """A duck-typed classifier without an undefended model."""

    randomized = False

    def predict(self, x):
        return code_model().predict(x)


def test_graybox_needs_an_undefended_model():
    with pytest.raises(InvalidParameter, match="undefended model for graybox"):
        EVCSA(_Predictor(), SAMPLES, LABELS, n_chosen=2, knowledge="graybox")
    game = EVCSA(_Predictor(), SAMPLES, LABELS, n_chosen=2, knowledge="blackbox")
    assert game.play(Scripted(moves=((0, 5),))).successes == 1


@pytest.mark.parametrize("samples, labels, match", [
    (SAMPLES.to(torch.int64), LABELS, "floating images"),
    (SAMPLES[0], LABELS, r"shape \[B, C, H, W\]"),
    (SAMPLES * 2, LABELS, r"values in \[0, 1\]"),
    (SAMPLES, LABELS[:5], "expected 8 labels, got 5"),
    (SAMPLES, LABELS + 10, r"labels in \[0, 9\]"),
    (SAMPLES, LABELS.float(), "integer class indices"),
])
def test_bad_samples_or_labels(samples, labels, match):
    with pytest.raises(InvalidParameter, match=match):
        EVCSA(code_model(), samples, labels, n_chosen=2)


# -- the Attack oracle ---------------------------------------------------------------------
def test_success_follows_the_rule_not_the_adversary_claim():
    """C09: success is re-checked by running x′ through the classifier; a report that claims
    every submission succeeded changes nothing."""
    result = make_game().play(Scripted(moves=((0, 0), (1, 7), (2, 2), (3, 9))))
    assert result.report == {"claimed_successes": 4}
    assert [e.success for e in result.transcript] == [False, True, False, True]
    assert result.successes == 2 and result.success_rate == 0.5


def test_null_attack_success_over_all_and_over_initially_correct():
    """C09: a null attack (x′ = x) on 10 samples of which the model gets 3 wrong. The game
    counts over all submitted: the 3 already-wrong ones succeed (3/10). Over the initially
    correct ones, its success is 0/7."""
    labels = torch.arange(10)
    samples = coded(labels)
    wrong = [2, 5, 8]
    samples[wrong] = coded(labels[wrong] + 1)  # the model reads another class there

    class Null(Adversary):
        def play(self, oracles, knowledge):
            oracles.attack_batch(range(10), knowledge.samples)

    result = EVCSA(code_model(), samples, labels, n_chosen=10).play(Null())
    assert result.successes == 3
    correct = [e for e in result.transcript if e.source not in wrong]
    assert len(correct) == 7 and sum(e.success for e in correct) == 0


def test_rejected_output_stays_in_the_denominator():
    """C09: a rejecting defense (REJECTED) is never a success, untargeted or targeted, and
    the rejected submission still counts in q."""

    class RejectAll(Defense):
        def predict(self, x):
            return torch.full((len(x),), REJECTED, dtype=torch.int64)

    for goal, target in (("untargeted", None), ("targeted", 3)):
        game = EVCSA(RejectAll(code_model()), SAMPLES, LABELS, n_chosen=2, goal=goal)
        s = game.start()
        s.oracles.attack(0, relabel(SAMPLES[0], 3), target)
        result = s.finish()
        assert (result.submissions, result.successes) == (1, 0)
        assert result.transcript[0].label == REJECTED
        assert result.success_rate == 0.0


def test_missing_submissions_count_as_failures():
    result = make_game(n_chosen=4).play(Scripted(moves=((0, 5),)))
    assert (result.successes, result.submissions, result.success_rate) == (1, 1, 0.25)


def test_epsilon_check_uses_the_stated_tolerance():
    """C06: a float32 point projected onto the ε-ball is accepted; one just over is not."""
    x = torch.full((2, 1, 4, 4), 0.3)
    labels = torch.tensor([0, 0])
    eps = 0.1
    game = EVCSA(code_model(), x, labels, n_chosen=2, epsilon=eps)
    s = game.start()
    projected = (x[0] + torch.full_like(x[0], 0.2)).clamp(x[0] - eps, x[0] + eps)  # float32 0.4
    s.oracles.attack(0, projected)
    over = x[1] + eps + 1e-5
    s.oracles.attack(1, over)
    t = s.finish().transcript
    assert t[0].within_epsilon and abs(t[0].distance - eps) < 1e-6
    assert not t[1].within_epsilon and not t[1].success


@pytest.mark.parametrize("norm, epsilon, move, ok", [
    ("l0", 1, 0.5, True), ("l0", 0, 0.5, False),
    ("l2", 0.5, 0.5, True), ("l2", 0.49, 0.5, False),
    ("linf", 0.5, 0.5, True), ("linf", 0.4, 0.5, False),
])
def test_each_norm_bounds_success(norm, epsilon, move, ok):
    game = make_game(norm=norm, epsilon=epsilon)
    s = game.start()
    x_adv = SAMPLES[0].clone()
    x_adv[0, 0, 0] += move  # class 0 → class 5
    s.oracles.attack(0, x_adv)
    assert s.transcript[0].success is ok


def test_freshness_by_source_seed_000():
    game = EVCSA.from_rules(code_model(), SAMPLES, LABELS, Rules.seed_000(3, epsilon=1.0))
    s = game.start()
    assert s.oracles.attack(0, relabel(SAMPLES[0], 4)) is None  # ŷ′ withheld
    with pytest.raises(NotFresh, match="one per source") as info:
        s.oracles.attack(0, relabel(SAMPLES[0], 6))  # another x′, same source: ⊥
    assert info.value.sources == [0]
    assert (s.submissions, s.stale_queries) == (1, 1)
    s.oracles.attack(1, relabel(SAMPLES[0], 4))  # same bits, another source: fresh
    assert s.submissions == 2


def test_freshness_by_sample_seed_002():
    game = EVCSA.from_rules(code_model(), SAMPLES, LABELS, Rules.seed_002(3))
    s = game.start()
    x_adv = relabel(SAMPLES[0], 4)
    assert s.oracles.attack(0, x_adv) == 4  # ŷ′ revealed
    with pytest.raises(NotFresh, match="bit-identical"):
        s.oracles.attack(1, x_adv.clone())  # bit-identical x′ from another source: ⊥
    assert s.oracles.attack(0, relabel(SAMPLES[0], 6)) == 6  # same source, new x′: fresh
    assert s.submissions == 2


def test_untargeted_reference_label_vs_prediction():
    """Seed 002 counts C(x′) ≠ f(x′) (the true label); seed 000 counts C(x′) ≠ C(x)."""
    labels = torch.tensor([3, 3])
    samples = coded(torch.tensor([4, 4]))  # the model reads 4: already wrong
    for reference, success in (("label", True), ("prediction", False)):
        game = EVCSA(code_model(), samples, labels, n_chosen=1, untargeted_reference=reference)
        s = game.start()
        s.oracles.attack(0, samples[0])
        assert s.transcript[0].success is success
        assert s.transcript[0].reference == (3 if reference == "label" else 4)


def test_targeted_success_only_on_the_target():
    """C08: targeted at 2 landing in 1 is a targeted failure."""
    game = make_game(goal="targeted", n_chosen=2)
    s = game.start()
    s.oracles.attack(0, relabel(SAMPLES[0], 1), target=2)
    s.oracles.attack(1, relabel(SAMPLES[1], 2), target=2)
    assert [e.success for e in s.transcript] == [False, True]


@pytest.mark.parametrize("goal, source, x_adv, target, match", [
    ("untargeted", 0, SAMPLES[0], 3, "no target in an untargeted game"),
    ("targeted", 0, SAMPLES[0], None, "target label y_t in a targeted game"),
    ("targeted", 1, SAMPLES[1], 1, "targets different from the true labels"),
    ("targeted", 0, SAMPLES[0], K, r"targets in \[0, 9\]"),
    ("untargeted", 8, SAMPLES[0], None, r"sources in \[0, 7\]"),
    ("untargeted", -1, SAMPLES[0], None, r"sources in \[0, 7\]"),
    ("untargeted", 1.0, SAMPLES[0], None, "sources as integer"),
    ("untargeted", 0, SAMPLES[0, :, :2], None, r"images of shape \(1, 4, 4\)"),
    ("untargeted", 0, SAMPLES[0] * float("nan"), None, "finite values"),
    ("untargeted", 0, SAMPLES[0] + 1.5, None, r"values in \[0, 1\]"),
    ("untargeted", 0, SAMPLES[0].double().numpy().astype(np.int8), None, "floating images"),
    ("untargeted", 0, "image", None, "torch tensor or numpy array"),
])
def test_malformed_attack_changes_nothing(goal, source, x_adv, target, match):
    game = make_game(goal=goal)
    s = game.start()
    with pytest.raises(InvalidQuery, match=match):
        s.oracles.attack(source, x_adv, target)
    assert (s.submissions, s.successes, s.stale_queries, s.transcript) == (0, 0, 0, ())


def test_attack_after_n_and_after_the_end_is_game_over():
    game = make_game(n_chosen=1)
    s = game.start()
    s.oracles.attack(0, SAMPLES[0])
    with pytest.raises(GameOver, match="at most N = 1"):
        s.oracles.attack(1, SAMPLES[1])
    s.finish()
    with pytest.raises(GameOver, match="after it ended"):
        s.oracles.classify(SAMPLES)
    with pytest.raises(GameOver, match="after it ended"):
        s.oracles.attack(1, SAMPLES[1])


def test_an_adversary_cannot_keep_the_oracles_after_the_game():
    kept = []

    class Keeper(Adversary):
        def play(self, oracles, knowledge):
            kept.append(oracles)

    make_game().play(Keeper())
    with pytest.raises(GameOver):
        kept[0].attack(0, SAMPLES[0])


def test_batch_attack_is_all_or_nothing():
    game = make_game(n_chosen=4)
    s = game.start()
    s.oracles.attack(2, SAMPLES[2])
    with pytest.raises(NotFresh) as info:
        s.oracles.attack_batch([0, 2, 3], SAMPLES[[0, 2, 3]])
    assert info.value.positions == [1]
    with pytest.raises(NotFresh) as info:
        s.oracles.attack_batch([0, 0], SAMPLES[[0, 0]])  # repeat inside the batch
    assert info.value.positions == [1]
    with pytest.raises(GameOver, match="at most 3 more submissions"):
        s.oracles.attack_batch([0, 1, 3, 4], SAMPLES[[0, 1, 3, 4]])
    assert s.submissions == 1
    labels = s.oracles.attack_batch(np.array([0, 1, 3]), SAMPLES[[0, 1, 3]])
    assert labels is None and s.submissions == 4 and s.oracles.remaining == 0


def test_classify_counts_images_and_respects_the_budget():
    game = make_game(classify_budget=5)
    s = game.start()
    assert s.oracles.classify(SAMPLES[:3]).tolist() == LABELS[:3].tolist()
    assert s.oracles.classify(SAMPLES[4]) == 4  # one image [C, H, W] → an int
    with pytest.raises(BudgetExhausted, match="at most 1 more Classify queries"):
        s.oracles.classify(SAMPLES[:2])
    assert s.classify_queries == 4
    with pytest.raises(InvalidQuery, match="finite"):
        s.oracles.classify(SAMPLES[:1] * float("inf"))
    assert s.finish().classify_queries == 4


# -- knowledge -------------------------------------------------------------------------------
def test_knowledge_levels_and_private_copies():
    keys = DerivedKeys(bytes(16))
    clf = CoinFlipClassifier(code_model(), keys=keys)
    for level, has_model, has_twin in (("blackbox", False, False), ("graybox", True, False),
                                       ("whitebox", True, True)):
        k = EVCSA(clf, SAMPLES, LABELS, n_chosen=2, knowledge=level).knowledge(seed=1)
        assert (k.model is not None, k.defense is not None) == (has_model, has_twin)
        assert k.randomized is True and k.level == level
    game = EVCSA(clf, SAMPLES, LABELS, n_chosen=2)
    k = game.knowledge(seed=1)
    k.samples.zero_()
    k.labels.fill_(9)
    assert torch.equal(game.samples, SAMPLES) and torch.equal(game.labels, LABELS)
    assert k.defense is not clf and k.defense.keys is not clf.keys
    assert keys.keys_issued == 0  # building the twin drew nothing from the defense's keys


def test_whitebox_twin_uses_the_adversary_keys_only():
    """The twin's randomness comes from the adversary's seed: two games with the same seed
    give the same twin draws, and the defense's own key source is untouched."""
    keys = DerivedKeys(bytes(16))
    clf = CoinFlipClassifier(code_model(), keys=keys)
    game = EVCSA(clf, SAMPLES, LABELS, n_chosen=2)
    x = SAMPLES.clone()
    x[:, 0, 0, 1] = 0.5
    draws = [game.knowledge(seed=7).defense.predict(x) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    assert keys.keys_issued == 0


def test_library_never_touches_the_global_generator():
    state = torch.random.get_rng_state().clone()
    np_state = np.random.get_state()[1].copy()
    clf = CoinFlipClassifier(code_model())
    EVCSA(clf, SAMPLES, LABELS, n_chosen=3).repeat(Scripted(moves=((0, 5), (1, 1))), 3, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])


# -- repetition and the advantage ----------------------------------------------------------------
@attrs.frozen
class FixedProbabilities(Adversary):
    """Submits x′ = x with error probability p_i written into pixel (0, 1)."""

    p: tuple

    def play(self, oracles, knowledge):
        x = knowledge.samples[: len(self.p)].clone()
        x[:, 0, 0, 1] = torch.tensor(self.p)
        oracles.attack_batch(range(len(self.p)), x)


@pytest.mark.parametrize("tau", [1.0, 0.6, 0.2])
def test_empirical_advantage_contains_the_exact_poisson_binomial_value(tau):
    """(a) and (b) agree: R = 400 games against a toy randomized classifier whose
    per-sample success probabilities are known exactly. The 99.9 % Clopper–Pearson interval
    misses the exact value with probability ≤ 0.001 for a random key; the key is fixed
    (DerivedKeys), so the test is deterministic."""
    p = (0.9, 0.8, 0.95, 0.7, 0.85)
    clf = CoinFlipClassifier(code_model(), keys=DerivedKeys(b"\x01" * 16))
    game = EVCSA(clf, SAMPLES, LABELS, n_chosen=len(p))
    result = game.repeat(FixedProbabilities(p=p), 400, seed=3, progress=False)
    estimate = result.advantage(tau, alpha=0.001)
    exact = advantage_exact(p, tau)
    assert estimate.low <= exact <= estimate.high, (estimate, exact)
    assert estimate.trials == 400
    assert abs(result.mean - np.mean(p)) < 0.05


def _transcripts(result):
    return [[(s.source, s.label, s.success) for s in g.transcript] for g in result.games]


@attrs.frozen
class Probing(Adversary):
    """Submits every sample with error probability 1/2 and classifies each again (a
    randomized classifier's answers then depend on each call's key)."""

    def play(self, oracles, knowledge):
        x = knowledge.samples.clone()
        x[:, 0, 0, 1] = 0.5
        oracles.classify(x)
        oracles.attack_batch(range(len(x)), x)


def test_every_game_of_a_series_draws_fresh_randomness_and_chunks_replay_nothing():
    """Game i's classifier randomness depends on (key source, i) alone: a series in chunks
    (repeat(start=...)) equals the series played at once, and no two games replay the same
    keys. (The engine's play units rebuilt the defense per chunk, so every chunk replayed
    games 0–24's keys; this is the property that fault breaks.)"""
    def series(*chunks):
        out = []
        for start, runs in chunks:  # each chunk on a defense built afresh, as a play unit does
            clf = CoinFlipClassifier(code_model(), keys=DerivedKeys(b"\x02" * 16))
            game = EVCSA(clf, SAMPLES, LABELS, n_chosen=len(SAMPLES))
            out += _transcripts(game.repeat(Probing(), runs, seed=11, start=start, progress=False))
        return out

    whole = series((0, 40))
    assert series((0, 15), (15, 25)) == whole
    assert series((0, 1), *[(i, 1) for i in range(1, 40)]) == whole  # one game per chunk
    # 8 fair coins per game: 40 games give about 37 distinct label rows (the key is fixed,
    # so the count is deterministic); chunks replaying games 0–14 would give at most 25
    rows = {tuple(label for _, label, _ in t) for t in whole}
    assert len(rows) >= 30, len(rows)
    clf = CoinFlipClassifier(code_model(), keys=DerivedKeys(b"\x02" * 16))
    game = EVCSA(clf, SAMPLES, LABELS, n_chosen=2)
    first_keys = {game.game_classifier(i).keys.next_key() for i in range(200)}
    assert len(first_keys) == 200, "every game has its own key stream"
    assert game.game_classifier(3).keys.next_key() == game.game_classifier(3).keys.next_key()


def test_game_classifier_is_the_classifier_itself_when_deterministic():
    game = make_game()
    assert game.game_classifier(5) is game.classifier
    with pytest.raises(InvalidParameter, match="expected a game index ≥ 0, got -1"):
        game.game_classifier(-1)
    with pytest.raises(InvalidParameter, match="expected start as an integer ≥ 0, got -2"):
        game.repeat(Scripted(), 1, start=-2)


class ForgotTheFlag(CoinFlipClassifier):
    """A randomized defense whose author forgot ``randomized = True``."""

    randomized = False


def test_a_defense_holding_a_key_source_but_declared_deterministic_is_refused():
    """Taken at its word, the game would hand a whitebox adversary a deep copy of the
    defense as its twin, keys and counter included (it could then predict every draw)."""
    clf = ForgotTheFlag(code_model(), keys=DerivedKeys(b"\x03" * 16))
    with pytest.raises(InvalidParameter, match="expected ForgotTheFlag to declare randomized = True, since it "
                                               "holds a key source .*got randomized = False"):
        EVCSA(clf, SAMPLES, LABELS, n_chosen=2)
    assert is_randomized(CoinFlipClassifier(code_model(), keys=DerivedKeys(b"\x03" * 16)))
    assert not is_randomized(code_model())


def test_deterministic_classifier_gives_a_degenerate_distribution():
    game = make_game(n_chosen=3)
    result = game.repeat(Scripted(moves=((0, 5), (1, 7), (2, 2))), 20, seed=0, progress=False)
    assert set(result.success_rates) == {2 / 3}
    assert result.advantage(1.0).value == 0.0 and result.advantage(0.6).value == 1.0
    assert result.advantage(0.6).low > 0.8


def test_repeat_prepares_once_or_every_game():
    calls = []

    @attrs.frozen
    class Counting(Adversary):
        def prepare(self, knowledge):
            calls.append(knowledge.generator.initial_seed())
            return self

        def play(self, oracles, knowledge):
            oracles.attack(0, knowledge.samples[0])

    game = make_game(n_chosen=1)
    assert game.repeat(Counting(), 4, seed=1, progress=False).reused_preparation
    assert len(calls) == 1
    game.repeat(Counting(), 4, seed=1, reuse_preparation=False, progress=False)
    assert len(calls) == 5 and len(set(calls[1:])) == 4


def test_repeat_is_reproducible_with_derived_keys_and_a_seed():
    p = (0.5, 0.5, 0.5)

    def run():
        clf = CoinFlipClassifier(code_model(), keys=DerivedKeys(b"\x02" * 16))
        return EVCSA(clf, SAMPLES, LABELS, n_chosen=3).repeat(FixedProbabilities(p=p), 30, seed=5,
                                                              progress=False)

    assert np.array_equal(run().success_rates, run().success_rates)
    rows = run().rows()
    assert len(rows) == 30 and set(rows[0]) >= {"run", "successes", "success_rate"}


@pytest.mark.parametrize("bad, match", [
    (object(), "expected an Adversary"),
])
def test_play_rejects_non_adversaries(bad, match):
    with pytest.raises(InvalidParameter, match=match):
        make_game().play(bad)
    with pytest.raises(InvalidParameter, match="runs ≥ 1"):
        make_game().repeat(Scripted(), 0)


def test_errors_share_one_hierarchy_and_carry_values():
    with pytest.raises(EvcsaError) as info:
        make_game(classify_budget=0).start().oracles.classify(SAMPLES[:2])
    assert info.value.details == {"budget": 0, "used": 0, "requested": 2}


# -- misuse: malformed queries, odd values, broken collaborators -----------------------------
def _state(s):
    return (s.submissions, s.successes, s.stale_queries, s.classify_queries, s.transcript)


def test_meta_tensors_are_malformed_queries_and_change_nothing():
    s = make_game().start()
    with pytest.raises(InvalidQuery, match="expected x with data, got a tensor on the 'meta' device"):
        s.oracles.classify(torch.empty(2, 1, 4, 4, device="meta"))
    with pytest.raises(InvalidQuery, match="expected x_adv with data, got a tensor on the 'meta' device"):
        s.oracles.attack(0, torch.empty(1, 4, 4, device="meta"))
    with pytest.raises(InvalidQuery, match="expected sources with data, got a tensor on the 'meta' device"):
        s.oracles.attack_batch(torch.zeros(1, dtype=torch.int64, device="meta"), SAMPLES[:1])
    assert _state(s) == (0, 0, 0, 0, ())


def test_negative_zero_does_not_make_a_sample_fresh():
    """Seed 002's freshness is x′ ∉ X_A: −0.0 and +0.0 are the same pixel value, so flipping
    the sign of a zero must not let the same sample be submitted (and scored) twice."""
    game = EVCSA.from_rules(code_model(), SAMPLES, LABELS, Rules.seed_002(3))
    s = game.start()
    x_adv = relabel(SAMPLES[0], 4)
    s.oracles.attack(0, x_adv)
    twin = x_adv.clone()
    twin[0, 3, 3] = -0.0
    assert bool((twin == x_adv).all())
    with pytest.raises(NotFresh, match="bit-identical"):
        s.oracles.attack(0, twin)
    assert (s.submissions, s.successes) == (1, 1)


class _Labels:
    """A classifier whose predict returns whatever ``make(x)`` gives."""

    randomized = False
    num_classes = K

    def __init__(self, make):
        self.make = make

    def predict(self, x):
        return self.make(x)


@pytest.mark.parametrize("make, match", [
    (lambda x: torch.full((x.shape[0] + 1,), 5), r"1 label\(s\) \[B\], got torch tensor .* shape \(2,\)"),
    (lambda x: torch.full((x.shape[0], K), 0.1), r"got torch tensor of dtype torch.float32 and shape \(1, 10\)"),
    (lambda x: torch.full((x.shape[0],), K), r"labels in \[-1, 9\], got values in \[10, 10\]"),
    (lambda x: [5] * x.shape[0], "got list"),
])
def test_a_classifier_answering_garbage_is_an_error_and_changes_nothing(make, match):
    """A broken classifier must not inflate n (2 successes for 1 submission) nor crash with
    an AttributeError; the query is not counted."""
    game = EVCSA(_Labels(make), SAMPLES, LABELS, n_chosen=2, knowledge="blackbox")
    s = game.start()
    with pytest.raises(InvalidParameter, match=match):
        s.oracles.attack(0, SAMPLES[0])
    with pytest.raises(InvalidParameter, match=match):
        s.oracles.classify(SAMPLES[:1])
    assert _state(s) == (0, 0, 0, 0, ())


def test_a_classifier_answering_numpy_labels_is_accepted():
    game = EVCSA(_Labels(lambda x: np.full(x.shape[0], 5)), SAMPLES, LABELS, n_chosen=2, knowledge="blackbox")
    s = game.start()
    assert s.oracles.classify(SAMPLES[:2]).tolist() == [5, 5]
    s.oracles.attack(0, SAMPLES[0])
    assert (s.submissions, s.successes) == (1, 1)


def test_a_classifier_raising_mid_attack_changes_nothing():
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return torch.full((x.shape[0],), 5)

    game = EVCSA(_Labels(flaky), SAMPLES, LABELS, n_chosen=2, knowledge="blackbox")
    s = game.start()
    with pytest.raises(RuntimeError, match="device lost"):
        s.oracles.attack(0, SAMPLES[0])
    assert _state(s) == (0, 0, 0, 0, ())
    s.oracles.attack(0, SAMPLES[0])  # the same source is still fresh
    assert (s.submissions, s.successes) == (1, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": "10"}, "num_classes as an integer ≥ 2, got '10'"),
    ({"num_classes": 0}, "num_classes ≥ 2, got 0"),
    ({"num_classes": 2.5}, "num_classes as an integer ≥ 2, got 2.5"),
    ({"model": "resnet"}, "model as a ModelClassifier or None, got str"),
    ({"model": torch.nn.Linear(2, 2)}, "model as a ModelClassifier or None, got Linear"),
])
def test_bad_game_arguments_raise_with_expected_got(kwargs, match):
    with pytest.raises(InvalidParameter, match=match):
        EVCSA(code_model(), SAMPLES, LABELS, n_chosen=2, knowledge="graybox", **kwargs)


@pytest.mark.parametrize("seed", ["1", -1, 1.5, True, [1, "a"]])
def test_bad_seeds_raise_everywhere(seed):
    game = make_game()
    for call in (lambda: game.start(seed=seed), lambda: game.play(Scripted(), seed=seed),
                 lambda: game.repeat(Scripted(), 1, seed=seed, progress=False),
                 lambda: game.knowledge(seed)):
        with pytest.raises(InvalidParameter, match="expected seed as an integer ≥ 0, a SeedSequence or None"):
            call()


def test_numpy_seeds_are_seeds():
    game = make_game()
    assert game.start(seed=np.int64(3)).knowledge.keys is not None
    a = game.repeat(Scripted(moves=((0, 5),)), 2, seed=np.uint32(7), progress=False)
    assert a.runs == 2


def test_an_adversary_class_instead_of_an_instance_is_named():
    with pytest.raises(InvalidParameter, match=r"expected an Adversary instance, got the class Scripted \(call it"):
        make_game().play(Scripted)


# -- the model handed to the adversary is the game's model: changing it voids the game ------
@attrs.frozen
class Tamperer(Adversary):
    """Changes knowledge.model in ``phase`` ("prepare" or "play") by ``how``."""

    how: str
    phase: str = "play"

    def _tamper(self, knowledge):
        module = knowledge.model.module
        if self.how == "train mode":
            module.train()
        elif self.how == "in place":
            module.centres.add_(1.0)
        elif self.how == "through .data":
            module.centres.data.add_(1.0)
        elif self.how == "replaced":
            module.centres = module.centres + 1.0
        elif self.how == "on a copy":
            import copy

            copy.deepcopy(module).centres.add_(1.0)

    def prepare(self, knowledge):
        if self.phase == "prepare":
            self._tamper(knowledge)
        return self

    def play(self, oracles, knowledge):
        if self.phase == "play":
            self._tamper(knowledge)


@pytest.mark.parametrize("phase", ["prepare", "play"])
@pytest.mark.parametrize("how", ["train mode", "in place", "through .data", "replaced"])
def test_an_adversary_changing_the_model_voids_the_game(how, phase):
    game = make_game(knowledge="graybox")
    with pytest.raises(ModelTampered, match=f"unchanged, got .* changed during {phase}"):
        game.play(Tamperer(how, phase), seed=0)
    with pytest.raises(ModelTampered, match="deepcopy"):
        make_game(knowledge="whitebox").repeat(Tamperer(how, phase), runs=2, seed=0)


def test_an_adversary_changing_a_copy_of_the_model_is_fine():
    game = make_game(knowledge="graybox")
    assert game.play(Tamperer("on a copy"), seed=0).submissions == 0
    assert game.repeat(Tamperer("on a copy", "prepare"), runs=2, seed=0).runs == 2


def test_repeat_with_a_huge_run_count_starts_and_stops_on_the_adversary_error():
    """R = 10**20 must not fail up front (no list of R seeds, no len() of a huge range):
    it plays until something stops it, here the adversary's own error in the third game."""

    @attrs.define
    class StopsAfterTwo(Adversary):
        played: int = 0

        def play(self, oracles, knowledge):
            self.played += 1
            if self.played > 2:
                raise KeyboardInterrupt

    adversary = StopsAfterTwo()
    with pytest.raises(KeyboardInterrupt):
        make_game().repeat(adversary, runs=10**20, seed=0, progress=True)
    assert adversary.played == 3


def _evcsa_modules_after(statement: str) -> list[str]:
    """The evcsa modules loaded by ``statement`` in a fresh interpreter."""
    import subprocess
    import sys

    code = f"import sys\n{statement}\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('evcsa'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_game_is_split_by_job_and_imports_no_adversary():
    """games/: the oracles, the knowledge and the game in their own modules, the old import
    path kept; importing the game loads nothing of evcsa.adversaries (it depends on the
    AdversaryProtocol), and the attacks load nothing of the game."""
    from evcsa.games import game, knowledge, oracles

    assert game.Knowledge is knowledge.Knowledge and game.Oracles is oracles.Oracles
    assert game.Session is oracles.Session
    loaded = _evcsa_modules_after("import evcsa.games")
    assert "evcsa.games.game" in loaded and not [m for m in loaded if m.startswith("evcsa.adversaries")]
    loaded = _evcsa_modules_after("import evcsa.attacks")
    assert "evcsa.attacks" in loaded and not [m for m in loaded if m.startswith("evcsa.games")]


def test_a_play_accepts_any_object_of_the_adversary_protocol():
    """The game needs prepare and play, not the Adversary base class."""
    from evcsa.games import AdversaryProtocol

    class Plain:
        def prepare(self, knowledge):
            return self

        def play(self, oracles, knowledge):
            oracles.attack(0, knowledge.samples[0])
            return "played"

    player: AdversaryProtocol = Plain()
    assert not isinstance(player, Adversary)
    result = make_game().play(player, seed=0)
    assert result.submissions == 1 and result.report == "played"
