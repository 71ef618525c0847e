"""The referee cannot be cheated (issue 9): one success rule, atomic alias-safe oracles,
copies for the adversary, the twin contract, eval mode, secret reproducible keys."""

from __future__ import annotations

import copy
import pickle
import threading
import time

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evcsa.adversaries import Adversary
from evcsa.adversaries._common import Candidates, count_successes
from evcsa.attacks.gradients import GradientHealth
from evcsa.defenses import REJECTED, Classifier, Defense, ModelClassifier
from evcsa.errors import BudgetExhausted, GameOver, InvalidParameter, InvalidQuery, KeyStreamError, NotFresh
from evcsa.games import EVCSA, Rules
from evcsa.games.rules import is_success, judge_success
from evcsa.randomness import DerivedKeys, MasterKey, SystemKeys, keyed_uniform
from evcsa.stats import advantage_exact, log_advantage_exact
from evcsa.testing import CoinFlipClassifier, PixelCodeModel, coded_samples

K = 10
LABELS = torch.arange(8) % K
SAMPLES = coded_samples(LABELS, (1, 4, 4), num_classes=K)


def code_model() -> ModelClassifier:
    return ModelClassifier(PixelCodeModel(K), num_classes=K)


def relabel(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.clone()
    x[..., 0, 0, 0] = (k + 0.5) / K
    return x


# -- 1. one success rule ------------------------------------------------------------------
def test_rule_table():
    pred = torch.tensor([0, 1, REJECTED, 2])
    y = torch.tensor([0, 0, 0, 0])
    assert is_success(pred, y).tolist() == [False, True, False, True]
    assert is_success(pred, y, goal="targeted", targets=torch.tensor([1, 1, 1, 3])).tolist() == \
        [False, True, False, False]
    ref = torch.tensor([1, 0, 0, REJECTED])
    assert is_success(pred, y, untargeted_reference="prediction", reference_predictions=ref).tolist() == \
        [True, True, False, False]


def test_rule_broadcasts_draw_dimensions():
    pred = torch.tensor([[1, 0], [0, 0], [1, 1]])  # [draws, B]
    hit = judge_success(Rules(n_chosen=1), pred, torch.tensor([0, 0]))
    assert hit.shape == (3, 2) and hit.sum(0).tolist() == [2, 1]


def test_rule_errors():
    with pytest.raises(InvalidParameter, match="expected targets y_t"):
        is_success(torch.tensor([1]), torch.tensor([0]), goal="targeted")
    with pytest.raises(InvalidParameter, match="expected no targets"):
        is_success(torch.tensor([1]), torch.tensor([0]), targets=torch.tensor([1]))
    with pytest.raises(InvalidParameter, match="expected reference_predictions"):
        judge_success(Rules(n_chosen=1, untargeted_reference="prediction"), torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(InvalidParameter, match="same B"):
        is_success(torch.tensor([1, 2]), torch.tensor([0]))
    with pytest.raises(InvalidParameter, match="integer labels"):
        is_success(torch.tensor([1.0]), torch.tensor([0]))


class RejectsEveryOtherCall(Classifier):
    """Randomized toy: odd calls answer the model's label, even calls REJECTED."""

    randomized = True

    def __init__(self) -> None:
        self.base = code_model()
        self.calls = 0

    num_classes = property(lambda self: K)
    device = property(lambda self: torch.device("cpu"))
    model = property(lambda self: self.base)

    def predict(self, x):
        self.calls += 1
        y = self.base.predict(x)
        return y if self.calls % 2 else torch.full_like(y, REJECTED)


def test_prediction_reference_never_rewards_a_rejected_natural_sample():
    """Seed 000's reference: C(x′) = y and C(x) = REJECTED must not make x′ = x an evasion."""
    game = EVCSA(RejectsEveryOtherCall(), SAMPLES, LABELS, Rules.seed_000(2, 0.1, knowledge="blackbox"))
    s = game.start(seed=0)
    s.oracles.attack(0, SAMPLES[0])
    entry = s.transcript[0]
    assert entry.label == 0 and entry.reference == REJECTED and not entry.success
    assert s.successes == 0


def test_adversaries_estimate_with_the_games_rule():
    """count_successes (A*'s p̂) follows the same rule: a REJECTED C(x) is no success."""
    game = EVCSA(RejectsEveryOtherCall(), SAMPLES, LABELS, Rules.seed_000(2, 0.1, knowledge="blackbox"))
    k = game.knowledge(seed=0)
    clf = RejectsEveryOtherCall()
    cands = Candidates(sources=np.arange(2), x_adv=SAMPLES[:2].clone(), targets=None,
                       failed=np.zeros(2, dtype=bool), health=GradientHealth.clean(2))
    counts = count_successes(clf.predict, cands, k, draws=3, query_batch=100)
    assert counts.tolist() == [0, 0]


def test_knowledge_carries_the_rules_record():
    rules = Rules.seed_000(3, 0.2)
    game = EVCSA(code_model(), SAMPLES, LABELS, rules)
    k = game.knowledge(seed=0)
    assert k.rules is rules and k.n_chosen == 3 and k.epsilon == 0.2 and k.untargeted_reference == "prediction"
    hit = k.is_success(torch.tensor([1, REJECTED]), torch.tensor([0, 0]), reference_predictions=torch.tensor([0, 0]))
    assert hit.tolist() == [True, False]


def test_constructor_takes_the_rules_record_or_shortcuts():
    rules = Rules.seed_002(4)
    assert EVCSA(code_model(), SAMPLES, LABELS, rules).rules is rules
    assert EVCSA(code_model(), SAMPLES, LABELS, n_chosen=4).rules == Rules(n_chosen=4)
    with pytest.raises(InvalidParameter, match="got both"):
        EVCSA(code_model(), SAMPLES, LABELS, rules, n_chosen=4)
    with pytest.raises(InvalidParameter, match="got neither"):
        EVCSA(code_model(), SAMPLES, LABELS)
    with pytest.raises(InvalidParameter, match="expected rules as a Rules record"):
        EVCSA(code_model(), SAMPLES, LABELS, {"n_chosen": 4})


def test_a_bare_module_is_wrapped():
    game = EVCSA(PixelCodeModel(K), SAMPLES, LABELS, Rules(n_chosen=2))
    assert isinstance(game.classifier, ModelClassifier)
    assert game.start(seed=0).oracles.classify(SAMPLES[:3]).tolist() == [0, 1, 2]


# -- 2. atomic, alias-safe oracles --------------------------------------------------------
class SlowModel(ModelClassifier):
    """Deterministic; each classification sleeps (releasing the GIL) so that threads
    interleave inside an oracle call unless the game serialises them."""

    def predict(self, x):
        time.sleep(0.01)
        return super().predict(x)


def run_threads(fn, n=8):
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    results: list = [None] * n

    def body(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - collected and re-checked
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@attrs.frozen
class ThreadedAdversary(Adversary):
    """Eight threads submitting at once: thread i submits source ``i % sources`` with its
    coded class moved by one (a success on the deterministic model)."""

    sources: int = 8

    def play(self, oracles, knowledge):
        def submit(i):
            s = i % self.sources
            return oracles.attack(s, relabel(knowledge.samples[s], (int(knowledge.labels[s]) + 1) % K))

        return run_threads(submit)[0]


@pytest.mark.parametrize("repeat", range(4))
def test_eight_threads_never_pass_n(repeat):
    game = EVCSA(SlowModel(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, Rules(n_chosen=3))
    result = game.play(ThreadedAdversary(), seed=repeat)
    outcomes = result.report
    assert result.submissions == 3 and result.successes == 3 and result.success_rate == 1.0
    assert sum(isinstance(o, GameOver) for o in outcomes) == 5
    assert len({e.source for e in result.transcript}) == 3


@pytest.mark.parametrize("repeat", range(4))
def test_eight_threads_never_get_a_stale_pair_through(repeat):
    game = EVCSA(SlowModel(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, Rules(n_chosen=8))
    result = game.play(ThreadedAdversary(sources=2), seed=repeat)
    assert result.submissions == 2 and result.successes == 2
    assert sum(isinstance(o, NotFresh) for o in result.report) == 6 and result.stale_queries == 6


@pytest.mark.parametrize("repeat", range(4))
def test_eight_honest_threads_lose_no_success(repeat):
    game = EVCSA(SlowModel(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, Rules(n_chosen=8))
    result = game.play(ThreadedAdversary(), seed=repeat)
    assert result.submissions == 8 and result.successes == 8
    assert sorted(e.position for e in result.transcript) == list(range(8))
    assert all(o is None for o in result.report)


def test_classify_budget_holds_under_threads():
    game = EVCSA(SlowModel(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, Rules(n_chosen=1, classify_budget=600))
    s = game.start(seed=0)
    x = SAMPLES[:1].repeat(150, 1, 1, 1)
    outcomes, _ = run_threads(lambda i: s.oracles.classify(x))
    assert s.classify_queries == 600
    assert sum(isinstance(o, BudgetExhausted) for o in outcomes) == 4


GATE = {"entered": threading.Event(), "changed": threading.Event()}


class GatedModel(ModelClassifier):
    """Signals when the game classifies, then waits until the test has changed x′."""

    def predict(self, x):
        GATE["entered"].set()
        GATE["changed"].wait(5)
        return super().predict(x)


def test_changing_x_adv_during_attack_changes_nothing_the_game_sees():
    """x′ = x is submitted; while the game classifies, another thread moves x′ far out of ε
    (and into another class). The oracle works on its copy: distance 0, label y, no
    success — never an out-of-ε sample recorded at distance 0 and counted."""
    model = GatedModel(PixelCodeModel(K), num_classes=K)
    game = EVCSA(model, SAMPLES, LABELS, Rules(n_chosen=1, epsilon=0.01))
    s = game.start(seed=0)
    x_adv = SAMPLES[0].clone()

    for event in GATE.values():
        event.clear()

    def change():
        GATE["entered"].wait(5)
        x_adv.copy_(relabel(x_adv, 5))
        GATE["changed"].set()

    t = threading.Thread(target=change)
    t.start()
    s.oracles.attack(0, x_adv)
    t.join()
    entry = s.transcript[0]
    assert entry.distance == 0.0 and entry.within_epsilon and entry.label == 0 and not entry.success


def test_a_sparse_tensor_is_an_invalid_query():
    s = EVCSA(code_model(), SAMPLES, LABELS, Rules(n_chosen=1)).start(seed=0)
    with pytest.raises(InvalidQuery, match="expected x_adv as a dense tensor, got layout torch.sparse_coo"):
        s.oracles.attack(0, SAMPLES[0].to_sparse())
    with pytest.raises(InvalidQuery, match="expected x as a dense tensor"):
        s.oracles.classify(SAMPLES[:1].to_sparse())
    assert s.submissions == 0 and s.classify_queries == 0


def test_prepare_returning_none_is_a_clear_error():
    class Forgetful(Adversary):
        def prepare(self, knowledge):
            pass

        def play(self, oracles, knowledge):
            pass

    with pytest.raises(InvalidParameter, match=r"Forgetful.prepare\(knowledge\) to return the adversary .*got "
                                               r"NoneType"):
        EVCSA(code_model(), SAMPLES, LABELS, Rules(n_chosen=1)).play(Forgetful(), seed=0)


# -- 3. copies for the adversary ----------------------------------------------------------
def test_the_model_handed_over_is_an_independent_copy_in_eval_mode():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, K), torch.nn.Dropout(0.5))
    clf = ModelClassifier(net, num_classes=K)
    game = EVCSA(clf, SAMPLES, LABELS, Rules(n_chosen=1, knowledge="graybox"))
    net.train()
    k = game.knowledge(seed=0)
    assert k.model is not clf and k.model.module is not net
    assert not any(m.training for m in k.model.module.modules())
    x = SAMPLES[:2].clone().requires_grad_(True)
    k.model.surrogate_logits(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    before = game.start(seed=0).oracles.classify(SAMPLES)
    k.model.module[1].weight.data.zero_()  # a .data swap on the copy
    k.model.module.register_forward_hook(lambda m, i, o: o * 0)
    k.model.predict = lambda x: torch.zeros(x.shape[0], dtype=torch.int64)
    assert torch.equal(game.start(seed=0).oracles.classify(SAMPLES), before)


def test_the_whitebox_twin_of_a_deterministic_defense_is_a_distinct_copy():
    class Shift(Defense):
        def __init__(self, base):
            super().__init__(base)
            self.offset = 0

        def predict(self, x):
            return (self.base.predict(x) + self.offset) % K

    defense = Shift(code_model())
    game = EVCSA(defense, SAMPLES, LABELS, Rules(n_chosen=2))
    k = game.knowledge(seed=0)
    assert k.defense is not defense and k.defense.base is not defense.base
    assert k.defense.model is k.model  # one copy: the twin runs on the model the adversary holds
    k.defense.offset = 3
    s = game.start(seed=0)
    s.oracles.attack(0, SAMPLES[0])
    assert s.transcript[0].label == 0 and s.successes == 0


class NoTwin(Defense):
    """A randomized defense that forgot with_keys (the base's, formerly ``return self``)."""

    randomized = True

    def __init__(self, base, keys=None):
        super().__init__(base)
        self.keys = keys or SystemKeys()

    def predict(self, x):
        u = keyed_uniform(self.keys.next_key(), (x.shape[0],), 0.5)
        return torch.where(u > 0.45, (self.base.predict(x) + 1) % K, self.base.predict(x))

    def surrogate_logits(self, x):
        return self.base.surrogate_logits(x) + keyed_uniform(self.keys.next_key(), (x.shape[0], K), 0.5)


class SharedKeys(NoTwin):
    def with_keys(self, keys):
        return SharedKeys(self.base, self.keys)


class CopiedStream(NoTwin):
    def with_keys(self, keys):
        return CopiedStream(self.base, copy.deepcopy(self.keys))


class GoodTwin(NoTwin):
    def with_keys(self, keys):
        return GoodTwin(self._twin_base(keys), keys)


def test_the_base_with_keys_refuses_a_randomized_classifier():
    with pytest.raises(NotImplementedError, match="NoTwin is randomized but does not implement with_keys"):
        NoTwin(code_model()).with_keys(SystemKeys())
    assert code_model().with_keys(SystemKeys()) is not None  # deterministic: unchanged


@pytest.mark.parametrize("cls, message", [
    (NoTwin, r"NoTwin.with_keys\(keys\) to make a twin, got NotImplementedError: implement NoTwin.with_keys"),
    (SharedKeys, r"SharedKeys.with_keys\(keys\) to give a twin with its own keys, got a twin sharing"),
    (CopiedStream, r"CopiedStream.with_keys\(keys\) to give a twin with other noise, got a twin whose draw equals"),
])
def test_a_twin_that_could_predict_the_noise_is_refused_when_the_game_is_built(cls, message):
    defense = cls(code_model(), DerivedKeys(MasterKey.generate()))
    with pytest.raises(InvalidParameter, match=message):
        EVCSA(defense, SAMPLES, LABELS, Rules(n_chosen=2))
    EVCSA(defense, SAMPLES, LABELS, Rules(n_chosen=2, knowledge="graybox"))  # no twin handed out
    EVCSA(GoodTwin(code_model(), DerivedKeys(MasterKey.generate())), SAMPLES, LABELS, Rules(n_chosen=2))


def test_a_twin_returning_itself_is_refused():
    class Itself(NoTwin):
        def with_keys(self, keys):
            return self

    with pytest.raises(InvalidParameter, match="got the classifier itself"):
        EVCSA(Itself(code_model()), SAMPLES, LABELS, Rules(n_chosen=2))


# -- 4. eval mode whenever the game classifies --------------------------------------------
def bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.BatchNorm2d(1), torch.nn.Dropout(0.5), torch.nn.Flatten(),
                               torch.nn.Linear(16, K))


def test_classify_runs_in_eval_mode_and_changes_no_module_state():
    net = bn_net()
    game = EVCSA(ModelClassifier(net, num_classes=K), SAMPLES, LABELS, Rules(n_chosen=1, knowledge="graybox"))
    expected = game.start(seed=0).oracles.classify(SAMPLES)
    net.train()  # the user, after wrapping
    stats = [b.clone() for b in net.buffers()]
    answers = [game.start(seed=0).oracles.classify(SAMPLES) for _ in range(3)]
    assert all(torch.equal(a, expected) for a in answers)
    assert all(torch.equal(a, b) for a, b in zip(stats, net.buffers()))
    assert net.training and all(m.training for m in net.modules())  # the user's mode is left as it was


def test_an_honest_adversary_is_not_blamed_for_the_games_own_classifications():
    @attrs.frozen
    class Honest(Adversary):
        def play(self, oracles, knowledge):
            oracles.classify(knowledge.samples)
            oracles.attack(0, knowledge.samples[0])

    net = bn_net()
    game = EVCSA(ModelClassifier(net, num_classes=K), SAMPLES, LABELS, Rules(n_chosen=1, knowledge="graybox"))
    net.train()
    assert game.repeat(Honest(), runs=2, seed=0).runs == 2


# -- 5. keys ------------------------------------------------------------------------------
def test_master_key_round_trip_and_secrecy_of_repr():
    mk = MasterKey.generate()
    assert len(mk.hex()) == 64 and MasterKey.from_hex(mk.hex()) == mk and mk != MasterKey.generate()
    assert mk.hex() not in repr(mk) and pickle.loads(pickle.dumps(mk)) == mk
    with pytest.raises(KeyStreamError, match="expected a master key of 32 bytes"):
        MasterKey(bytes(16))
    with pytest.raises(KeyStreamError, match="expected a master key as 64 hex digits, got 62"):
        MasterKey.from_hex("ab" * 31)
    with pytest.raises(KeyStreamError, match="not all hex digits"):
        MasterKey.from_hex("zz" * 32)


def test_derived_keys_from_a_master_key_reproduce():
    mk = MasterKey.from_hex("01" * 32)
    a, b = DerivedKeys(mk, "cell"), DerivedKeys(mk, "cell")
    assert [a.next_key() for _ in range(3)] == [b.next_key() for _ in range(3)]
    assert DerivedKeys(mk, "cell").next_key() != DerivedKeys(MasterKey.generate(), "cell").next_key()


def test_labels_containing_slashes_never_share_keys():
    mk = MasterKey.generate()
    one = DerivedKeys(mk, "a/b").derive("c")
    two = DerivedKeys(mk, "a").derive("b/c")
    three = DerivedKeys(mk, "a").derive("b").derive("c")
    keys = {one.next_key(), two.next_key(), three.next_key()}
    assert len(keys) == 3


def test_derived_keys_copy_and_pickle_with_their_position():
    k = DerivedKeys(MasterKey.generate(), "x")
    k.next_key()
    c, p = copy.deepcopy(k), pickle.loads(pickle.dumps(k))
    assert c.next_key() == p.next_key() == k.next_key()


def test_the_adversary_seed_reveals_nothing_of_the_defense_keys():
    """The adversary's generator and keys come from the game seed; the defense's from the
    master key: the same seed with two master keys gives the adversary the same coins
    and the defense different noise."""
    def noise(mk):
        defense = CoinFlipClassifier(code_model(), keys=DerivedKeys(mk, "defense"))
        return defense.keys.next_key()

    g1 = EVCSA(code_model(), SAMPLES, LABELS, Rules(n_chosen=1)).knowledge(seed=7).generator.initial_seed()
    g2 = EVCSA(code_model(), SAMPLES, LABELS, Rules(n_chosen=1)).knowledge(seed=7).generator.initial_seed()
    assert g1 == g2 and noise(MasterKey.generate()) != noise(MasterKey.generate())


# -- 6. exact advantages are probabilities ------------------------------------------------
def test_advantage_of_5000_near_certain_submissions_is_at_most_one():
    assert advantage_exact(np.full(5000, 0.999), 0.99) <= 1.0
    assert log_advantage_exact(np.full(5000, 0.999), 0.99) <= 0.0


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1000, 6000), p=st.floats(0.95, 1.0), tau=st.floats(0.5, 1.0))
def test_advantage_lies_in_the_unit_interval(n, p, tau):
    probs = np.full(n, p)
    probs[::7] = 1.0
    adv = advantage_exact(probs, tau)
    assert 0.0 <= adv <= 1.0 and log_advantage_exact(probs, tau) <= 0.0


# -- 7. evcsa.testing: the twin contract for defense authors -------------------------------
def test_check_twin_passes_a_good_twin_and_names_what_fails():
    from evcsa.testing import check_twin

    check_twin(GoodTwin(code_model(), DerivedKeys(MasterKey.generate())), SAMPLES[:2])
    check_twin(code_model(), SAMPLES[:2])  # deterministic: nothing to check

    class IgnoresKeys(NoTwin):
        def with_keys(self, keys):
            return IgnoresKeys(self.base, SystemKeys())

    with pytest.raises(AssertionError, match="IgnoresKeys.with_keys.*equal key sources drew different noise"):
        check_twin(IgnoresKeys(code_model()), SAMPLES[:2])
    with pytest.raises(InvalidParameter, match="SharedKeys.with_keys.*sharing"):
        check_twin(SharedKeys(code_model()), SAMPLES[:2])
