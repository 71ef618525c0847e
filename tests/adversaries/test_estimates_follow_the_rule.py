"""Every success estimate an adversary makes follows the game's own rule (issue 27 item 9).

A toy randomized defense answers, for each image, REJECTED with probability r, the next
class of its coded class b with probability t and b otherwise (r, t and b written in its
pixels); the natural samples are rejected with probability r_x. So the success probability
of every candidate under every goal is known exactly (targeted: C(x′) = y_t; untargeted
against the label: C(x′) ∉ {y, REJECTED}; against the prediction: C(x′) ∉ {C(x), REJECTED}
and C(x) ≠ REJECTED). Each estimator — A*'s online p̂ (fixed and adaptive), the twin's
offline p̂ (BPDA+EOT and DiscreteSearch selections), BPDA+EOT's online selection, rejudge —
must agree with it, and A*'s p̂ with the game's verdict on what it submitted.

Statistics: keys are fixed (DerivedKeys from fixed seeds), so every test is deterministic.
A candidate whose probability is 0 or 1 must be estimated exactly; any other must lie in
the Clopper–Pearson interval at α = 1e-7 of its k of n draws. With 14 candidates × 3 goals
× 6 estimators checked, a correct implementation would fail with probability below 2.6e-5
for a fresh choice of keys.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from evcsa.adversaries import BPDAEOT, GreedyAStar
from evcsa.adversaries._common import Candidates, rate_on_twin
from evcsa.adversaries.greedy import estimate_adaptive, estimate_online
from evcsa.attacks.gradients import GradientHealth
from evcsa.defenses import ModelClassifier
from evcsa.defenses.base import REJECTED, Defense
from evcsa.games import EVCSA, Rules, rejudge
from evcsa.games.rules import judge_success
from evcsa.randomness import DerivedKeys, keyed_uniform
from evcsa.stats import clopper_pearson
from evcsa.testing import PixelCodeModel

K = 10
ALPHA = 1e-7


class RejectOrNext(Defense):
    """REJECTED with probability x[0, 0, 1], (b + 1) mod K with probability x[0, 0, 2],
    else b, the class PixelCodeModel reads in x[0, 0, 0]; a fresh key per call."""

    randomized = True

    def __init__(self, base, keys):
        super().__init__(base)
        self.keys = keys

    def predict(self, x):
        b = self.base.predict(x).cpu()
        r, t = x[:, 0, 0, 1].detach().cpu(), x[:, 0, 0, 2].detach().cpu()
        u = keyed_uniform(self.keys.next_key(), (b.numel(),), 0.5) + 0.5
        return torch.where(u < r, torch.full_like(b, REJECTED), torch.where(u < r + t, (b + 1) % K, b))

    def with_keys(self, keys):
        return RejectOrNext(self.base, keys)


# (label y, offset of x′'s class b from y, r, t, r_x of the natural sample, offset of x's class)
CASES = [
    (0, 0, 1.0, 0.0, 0.0, 0),   # always rejected: never a success (`pred != y` counts it)
    (1, 1, 0.0, 0.0, 0.0, 0),   # always the target y + 1
    (2, 2, 0.0, 0.0, 0.0, 0),   # always y + 2: untargeted, not targeted
    (3, 0, 0.0, 0.0, 0.0, 0),   # always y
    (4, 0, 0.0, 1.0, 0.0, 0),   # always the next class (t = 1)
    (5, 1, 0.0, 0.0, 1.0, 0),   # the target, but C(x) is always rejected
    (6, 2, 0.0, 0.0, 0.0, 2),   # C(x′) = C(x) = y + 2 ≠ y: a success only against the label
    (7, 1, 0.5, 0.0, 0.0, 0),   # half rejected, half the target
    (8, 2, 0.3, 0.3, 0.0, 0),   # rejected, y + 3 or y + 2
    (0, 0, 0.2, 0.5, 0.0, 0),   # rejected, the target or y
    (1, 1, 0.1, 0.2, 0.4, 0),   # everything at once
    (2, 0, 0.5, 0.5, 0.5, 0),
    (3, 1, 0.25, 0.25, 0.25, 1),
    (9, 1, 0.0, 0.0, 0.0, 0),   # always the target (9 + 1) mod K = 0
]


def _dist(cls, r, t):
    """{label: probability} of RejectOrNext on an image of class ``cls``."""
    out = {}
    for label, p in ((REJECTED, r), ((cls + 1) % K, t), (cls, 1 - r - t)):
        if p > 0:
            out[label] = out.get(label, 0.0) + p
    return out


def _truth(rules):
    """The exact success probability of each candidate under ``rules``."""
    p = []
    for y, off, r, t, rx, xoff in CASES:
        cand = _dist((y + off) % K, r, t)
        nat = _dist((y + xoff) % K, rx, 0.0)
        total = 0.0
        for (a, pa), (c, pc) in itertools.product(cand.items(), nat.items()):
            pred, ref = torch.tensor([a]), torch.tensor([c])
            hit = judge_success(rules, pred, torch.tensor([y]),
                                targets=torch.tensor([(y + 1) % K]) if rules.goal == "targeted" else None,
                                reference_predictions=ref if rules.needs_reference_predictions else None)
            total += pa * pc * bool(hit)
        p.append(total)
    return np.array(p)


def _image(cls, r, t):
    x = torch.zeros((1, 4, 4))
    x[0, 0, 0] = (cls + 0.5) / K
    x[0, 0, 1], x[0, 0, 2] = r, t
    return x


def _setup(rules, seed=0):
    labels = torch.tensor([c[0] for c in CASES])
    samples = torch.stack([_image((y + xoff) % K, rx, 0.0) for y, _, _, _, rx, xoff in CASES])
    x_adv = torch.stack([_image((y + off) % K, r, t) for y, off, r, t, _, _ in CASES])
    keys = DerivedKeys.from_seed(seed).derive("defense")
    defense = RejectOrNext(ModelClassifier(PixelCodeModel(K), num_classes=K), keys)
    game = EVCSA.from_rules(defense, samples, labels, rules, num_classes=K)
    c = len(CASES)
    targets = (labels + 1) % K if rules.goal == "targeted" else None
    cands = Candidates(sources=np.arange(c, dtype=np.int64), x_adv=x_adv,
                       targets=None if targets is None else targets.numpy().astype(np.int64),
                       failed=np.zeros(c, dtype=bool), health=GradientHealth.clean(c))
    return game, defense, cands, samples, labels, targets


RULES = {
    "targeted": Rules(n_chosen=4, goal="targeted"),
    "untargeted-label": Rules(n_chosen=4),
    "untargeted-prediction": Rules(n_chosen=4, untargeted_reference="prediction"),
}


def _agree(truth, k, n, who):
    k, n = np.asarray(k), np.asarray(n)
    for i, (p, ki, ni) in enumerate(zip(truth, k.tolist(), n.tolist())):
        if ni == 0:
            continue
        if p in (0.0, 1.0):
            assert ki == p * ni, f"{who}: candidate {i} {CASES[i]}: {ki} of {ni}, the rule says p = {p}"
        else:
            lo, hi = clopper_pearson(int(ki), int(ni), ALPHA)
            assert lo <= p <= hi, f"{who}: candidate {i} {CASES[i]}: {ki} of {ni} (interval [{lo:.3f}, {hi:.3f}]), p = {p}"


@pytest.mark.parametrize("goal", list(RULES))
def test_every_estimator_follows_the_games_rule(goal):
    rules = RULES[goal]
    truth = _truth(rules)
    if goal == "targeted":
        assert truth[:7].tolist() == [0, 1, 0, 0, 1, 1, 0]
    elif goal == "untargeted-label":
        assert truth[:7].tolist() == [0, 1, 1, 0, 1, 1, 1]
    else:
        assert truth[:7].tolist() == [0, 1, 1, 0, 1, 0, 0]
    game, defense, cands, samples, labels, targets = _setup(rules)
    draws = 300

    session = game.start(seed=1)
    online = estimate_online(session.oracles, cands, session.knowledge, draws)
    _agree(truth, online.successes, online.draws, "A* online p̂")

    session = game.start(seed=2)
    adaptive = estimate_adaptive(session.oracles, cands, session.knowledge, max_draws=draws, round_draws=50)
    _agree(truth, adaptive.estimates.successes, adaptive.estimates.draws, "A* adaptive p̂")

    knowledge = game.knowledge(3)
    offline = rate_on_twin(knowledge.defense, cands, knowledge, draws, 0.05).offline
    _agree(truth, offline.successes, offline.draws, "the twin's offline p̂ (BPDA+EOT, DiscreteSearch)")

    session = game.start(seed=4)
    report = BPDAEOT(selection="online", estimate_draws=draws, epsilon=1.0).play_candidates(
        cands, session.oracles, session.knowledge)
    _agree(truth, report.estimates.successes, report.estimates.draws, "BPDA+EOT online selection")

    counts = rejudge(defense, cands.x_adv, samples, labels, rules, draws=draws, targets=targets,
                     keys=DerivedKeys.from_seed(5))
    _agree(truth, counts, np.full(len(CASES), draws), "rejudge")


class _Given:
    """A crafter handing A* the candidates as they are."""

    knowledge_needed = "blackbox"

    def __init__(self, candidates):
        self.candidates = candidates

    def craft(self, knowledge, sources):
        return self.candidates


@pytest.mark.parametrize("goal", list(RULES))
def test_astar_estimates_agree_with_the_games_verdict(goal):
    """A* plays the game: its p̂ follows the rule, it submits the N candidates the rule says
    always succeed, and the game's transcript judges every one a success."""
    rules = RULES[goal]
    truth = _truth(rules)
    game, _, cands, _, _, _ = _setup(rules)
    result = game.play(GreedyAStar(attack=_Given(cands), queries_per_candidate=200), seed=6)
    est = result.report.estimates
    _agree(truth, est.successes, est.draws, "A* in the game")
    sure = set(np.flatnonzero(truth == 1.0).tolist())
    assert len(sure) >= rules.n_chosen
    submitted = result.report.submitted.tolist()
    assert set(submitted) <= sure, (submitted, sure)
    assert [s.success for s in result.transcript] == [True] * rules.n_chosen


def test_bpda_restarts_are_chosen_by_the_targeted_goal():
    """Targeted game, 8 restarts from random points of the ε-ball (one negligible step): a
    sample keeps a restart that hits the target whenever one does. Each restart lands in
    the target's bin with probability 1/6, so about 1 − (5/6)⁸ = 77 % of the 30 samples hit it;
    judging the goal as untargeted keeps a restart that misses it (≈ 0 %). Fixed seed: a
    correct implementation falls below 40 % with probability < 1e-4 (binomial tail)."""
    labels = torch.arange(30) % 8  # the target y + 1 is reachable (≤ 0.3 away) from every y
    x = torch.zeros((30, 1, 4, 4))
    x[:, 0, 0, 0] = (labels.float() + 0.5) / K
    model = ModelClassifier(PixelCodeModel(K), num_classes=K)
    game = EVCSA(model, x, labels, n_chosen=30, epsilon=0.3, goal="targeted")
    adversary = BPDAEOT(steps=1, step_size=1e-6, restarts=8, random_start=True)
    cands = adversary.craft(game.knowledge(7), np.arange(30))
    hit = (model.predict(cands.x_adv) == torch.as_tensor(cands.targets)).float().mean()
    assert hit >= 0.4, float(hit)


def test_discrete_search_keeps_the_better_by_the_games_rule():
    """DiscreteSearch with ``combine`` keeps the BPDA+EOT sample where only it meets the goal
    on the twin, by the game's rule: a REJECTED answer is no success (`pred != y` said it
    was), a targeted goal needs the target, the prediction reference compares with C(x)."""
    from evcsa.adversaries.discrete import keep_the_better

    class Table:
        """Answers by the image's pixel (0, 0, 0): a class index, or −1 (rejected) below 0.05."""

        num_classes = K

        def predict(self, x):
            v = x[:, 0, 0, 0]
            return torch.where(v < 0.05, torch.full(v.shape, REJECTED), (v * K).long() - 1)

    def img(label):
        out = torch.zeros((1, 1, 4, 4))
        out[0, 0, 0, 0] = 0.0 if label == REJECTED else (label + 1.5) / K
        return out

    y = torch.tensor([0])
    model = ModelClassifier(PixelCodeModel(K), num_classes=K)
    for rules, x_nat, searched, started, target, keep_started in (
            # rejected vs a wrong class: the wrong class (`pred != y` counted the rejection)
            (Rules(n_chosen=1), img(0), img(REJECTED), img(3), None, True),
            # neither is the target 1; then the start reaches the target 3
            (Rules(n_chosen=1, goal="targeted"), img(0), img(2), img(3), 1, False),
            (Rules(n_chosen=1, goal="targeted"), img(0), img(2), img(3), 3, True),
            # against C(x) = 3: the search's y = 0 succeeds, the start's 3 does not
            (Rules(n_chosen=1, untargeted_reference="prediction"), img(3), img(0), img(3), None, False)):
        game = EVCSA.from_rules(model, x_nat, y, rules, num_classes=K)
        targets = None if target is None else torch.tensor([target])
        out = keep_the_better(game.knowledge(0), Table(), x_nat, y, targets, searched, started)
        assert torch.equal(out, started if keep_started else searched), (rules, target)
