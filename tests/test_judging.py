"""evcsa.judging: the judge's primitives (REJECTED, the success rule, the answer check and
count_successes over fresh draws), on hand-made labels and counting fake classifiers.

Every test is deterministic: the fake classifiers answer from a fixed table or a fixed
torch.Generator seed, so none can fail by chance.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from evcsa import defenses, judging
from evcsa.errors import InvalidOutput, InvalidParameter
from evcsa.games import rules as game_rules
from evcsa.games.rules import Rules, count_judged_successes
from evcsa.judging import GOALS, REFERENCES, REJECTED, check_predictions, count_successes, is_success

K = 5


def test_rejected_is_defined_once_and_reexported():
    assert REJECTED == -1
    assert defenses.REJECTED is judging.REJECTED and game_rules.REJECTED is judging.REJECTED
    assert game_rules.is_success is judging.is_success and game_rules.GOALS is GOALS


@pytest.mark.parametrize("goal, reference", list(itertools.product(GOALS, REFERENCES)))
def test_rejected_is_never_a_success(goal, reference):
    """A REJECTED C(x′) never succeeds, whatever y, y_t or C(x); nor does anything judged
    against a REJECTED C(x)."""
    labels = torch.tensor([0, 1, 2, 3])
    targets = torch.tensor([1, 2, 3, 4]) if goal == "targeted" else None
    rejected = torch.full((3, 4), REJECTED)
    for ref in (torch.tensor([4, 0, 1, 2]), torch.full((4,), REJECTED)):
        hit = is_success(rejected, labels, goal=goal, untargeted_reference=reference, targets=targets,
                         reference_predictions=ref)
        assert hit.dtype == torch.bool and hit.shape == (3, 4) and not hit.any()
    if goal == "untargeted" and reference == "prediction":
        anything = torch.tensor([[4, 4, 4, 4]])
        assert not is_success(anything, labels, untargeted_reference="prediction",
                              reference_predictions=torch.full((4,), REJECTED)).any()


def test_targeted_needs_the_target():
    labels = torch.tensor([0, 0, 0])
    targets = torch.tensor([2, 2, 2])
    pred = torch.tensor([2, 1, REJECTED])
    assert is_success(pred, labels, goal="targeted", targets=targets).tolist() == [True, False, False]


def test_prediction_reference_compares_with_the_fresh_prediction():
    labels = torch.tensor([0, 0, 0])
    pred = torch.tensor([[0, 3, 3], [1, 1, 3]])      # two draws of C(x′)
    ref = torch.tensor([[1, 3, 2], [1, 0, 3]])       # C(x) in the same draws
    hit = is_success(pred, labels, untargeted_reference="prediction", reference_predictions=ref)
    assert hit.tolist() == [[True, False, True], [False, True, False]]
    # against the label, C(x′) = y is the only failure (besides REJECTED)
    assert is_success(pred, labels).tolist() == [[False, True, True], [True, True, True]]


class Table:
    """A counting fake classifier: answers call c with row c of ``answers`` (one row per
    call, as many labels as images asked about) and records what it was asked."""

    def __init__(self, answers):
        self.answers = [torch.as_tensor(a) for a in answers]
        self.calls: list[torch.Tensor] = []

    def __call__(self, x):
        self.calls.append(x.clone())
        return self.answers[len(self.calls) - 1]


def test_count_successes_is_the_sum_of_is_success_over_the_draws():
    """One call per draw (batch_size = B): the counts are Σ_d is_success(answer of call d)."""
    labels = torch.tensor([0, 1, 2, 3])
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1)
    answers = [[0, 2, 2, REJECTED], [1, 1, REJECTED, 4], [3, 0, 2, 3]]
    clf = Table(answers)
    k = count_successes(clf, x, labels, draws=3, batch_size=4)
    expected = sum(is_success(torch.tensor(a), labels).to(torch.int64) for a in answers)
    assert k.dtype == torch.int64 and k.tolist() == expected.tolist() == [2, 2, 0, 1]
    assert len(clf.calls) == 3 and all(torch.equal(c, x) for c in clf.calls)


def test_count_successes_against_the_prediction_draws_the_clean_images_afresh():
    labels = torch.tensor([0, 0])
    x, clean = torch.ones(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)
    # calls 0-1: C(x′) in draws 0 and 1; calls 2-3: C(x) in draws 0 and 1
    clf = Table([[1, 1], [2, 0], [1, 0], [REJECTED, 0]])
    k = count_successes(clf, x, labels, draws=2, untargeted_reference="prediction", clean=clean, batch_size=2)
    # draw 0: 1 vs 1 no, 1 vs 0 yes; draw 1: 2 vs REJECTED no, 0 vs 0 no
    assert k.tolist() == [0, 1]
    assert torch.equal(clf.calls[2], clean) and torch.equal(clf.calls[0], x)
    given = count_successes(Table([[1, 1]]), x, labels, draws=1, untargeted_reference="prediction",
                            clean_predictions=torch.tensor([1, 0]))
    assert given.tolist() == [0, 1]


@pytest.mark.parametrize("order", judging.ORDERS)
def test_layouts_and_batches_give_the_game_rule_on_each_images_draws(order):
    """Whatever the layout and call size, image i's count is Σ_d is_success over the
    answers to image i's draws (a fake answering from each image's value and a fixed
    generator)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    x = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1)
    table = torch.randint(REJECTED, K, (7, 9), generator=g)  # image i's answer in draw d: table[i, d]
    seen = torch.zeros(7, dtype=torch.int64)

    def classify(images):
        out = []
        for i in images.view(-1).long().tolist():  # image i's next draw, each time it is asked
            out.append(int(table[i, seen[i]]))
            seen[i] += 1
        return torch.tensor(out)

    truth = is_success(table.T, labels).sum(dim=0)
    for batch in (None, 1, 4, 7, 20):
        seen.zero_()
        assert count_successes(classify, x, labels, draws=9, batch_size=batch, order=order).tolist() == truth.tolist()


def test_a_games_rules_count_with_their_goal_and_reference():
    labels = torch.tensor([0, 0])
    targets = torch.tensor([1, 2])
    x = torch.zeros(2, 1, 1, 1)
    rules = Rules(n_chosen=1, goal="targeted")
    assert count_judged_successes(rules, Table([[1, 1]]), x, labels, draws=1, targets=targets).tolist() == [1, 0]
    seen = []
    count_judged_successes(Rules(n_chosen=1), Table([[0, 3]]), x, labels, draws=1, on_predictions=seen.append)
    assert seen[0].tolist() == [[0, 3]]


def test_count_successes_checks_every_answer():
    x = torch.zeros(2, 1, 1, 1)
    with pytest.raises(InvalidOutput, match=r"expected classify to return 2 label\(s\)"):
        count_successes(lambda images: torch.zeros(images.shape[0], K), x, torch.tensor([0, 0]), draws=1)
    with pytest.raises(InvalidOutput, match=r"expected classify labels in \[-1, ∞\], got values in \[-2, 0\]"):
        count_successes(lambda images: torch.tensor([-2, 0]), x, torch.tensor([0, 0]), draws=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(draws=0), r"expected draws ≥ 1, got 0"),
    (dict(draws=1, batch_size=0), r"expected batch_size ≥ 1, got 0"),
    (dict(draws=1, order="sideways"), r"expected order in .*, got 'sideways'"),
    (dict(draws=1, goal="nearby"), r"expected goal in .*, got 'nearby'"),
    (dict(draws=1, untargeted_reference="prediction"), r"expected one of clean .* got neither"),
    (dict(draws=1, untargeted_reference="prediction", clean=torch.zeros(2, 1, 1, 1),
          clean_predictions=torch.tensor([0, 0])), r"expected one of clean .* got both"),
    (dict(draws=1, untargeted_reference="prediction", clean=torch.zeros(3, 1, 1, 1)),
     r"expected clean images of the shape of x \(2, 1, 1, 1\)"),
    (dict(draws=1, goal="targeted"), r"expected targets y_t \[B\] for the targeted goal, got none"),
])
def test_count_successes_refuses_bad_input(kwargs, message):
    clf = Table([[0, 0]])
    with pytest.raises(InvalidParameter, match=message):
        count_successes(clf, torch.zeros(2, 1, 1, 1), torch.tensor([0, 0]), **kwargs)


def test_count_successes_refuses_images_that_are_not_a_tensor():
    with pytest.raises(InvalidParameter, match=r"expected x as a tensor of images \[B, C, H, W\], got"):
        count_successes(Table([[0]]), np.zeros((1, 1, 1, 1)), torch.tensor([0]), draws=1)


def test_no_images_no_calls():
    clf = Table([])
    assert count_successes(clf, torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64), draws=3).tolist() == []
    assert clf.calls == []


def test_check_predictions_accepts_numpy_labels_and_refuses_scores():
    assert check_predictions(np.array([0, REJECTED]), 2, K).tolist() == [0, REJECTED]
    with pytest.raises(InvalidOutput, match=r"expected classifier.predict to return 2 label"):
        check_predictions(torch.zeros(2, K), 2, K)
    with pytest.raises(InvalidOutput, match=r"labels in \[-1, 4\], got values in \[0, 5\]"):
        check_predictions(torch.tensor([0, 5]), 2, K)


def test_judging_imports_nothing_above_the_foundation():
    import subprocess
    import sys

    code = "import sys, evcsa.judging\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('evcsa'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(loaded) <= {"evcsa", "evcsa.errors", "evcsa._values", "evcsa._validation", "evcsa.terms", "evcsa.distances", "evcsa.judging"}, loaded
