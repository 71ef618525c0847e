"""GrayboxTransfer: crafted on the undefended model, one submission per source."""

from __future__ import annotations

import numpy as np
import torch

from evcsa.adversaries import AdversaryReport, GrayboxTransfer, PreparedAdversary
from evcsa.attacks import ATTACKS
from evcsa.defenses import BitDepth, FeatureSqueezing
from evcsa.games import EVCSA
from tests.attacks.tiny_models import FAST


def test_graybox_bim_against_the_undefended_model_submits_n_and_mostly_succeeds(digits):
    model, x, y = digits
    game = EVCSA(model, x, y, n_chosen=20, epsilon=0.3, knowledge="graybox")
    result = game.play(GrayboxTransfer(attack="bim"), seed=1)
    assert result.submissions == 20 and result.classify_queries == 0
    assert [s.source for s in result.transcript] == list(range(20))
    assert all(s.within_epsilon for s in result.transcript)
    assert result.success_rate >= 0.8
    report = result.report
    assert isinstance(report, AdversaryReport) and not report.gradient_flagged
    assert report.submitted.tolist() == list(range(20))


def test_graybox_transfer_loses_strength_against_a_squeezer(digits):
    """Graybox samples are not adapted to the defense: 1-bit squeezing undoes many of them
    (seed 002 Table 1: FGSM/BIM accuracy rises under bit depth 1)."""
    model, x, y = digits
    defended = FeatureSqueezing(model, [BitDepth(1)])
    plain = EVCSA(model, x, y, n_chosen=40, epsilon=0.1, knowledge="graybox").play(GrayboxTransfer(), seed=0)
    squeezed = EVCSA(defended, x, y, n_chosen=40, epsilon=0.1, knowledge="graybox").play(GrayboxTransfer(), seed=0)
    assert squeezed.successes < plain.successes


def test_graybox_uses_the_game_epsilon_and_projects_unbounded_attacks(digits):
    model, x, y = digits
    game = EVCSA(model, x, y, n_chosen=10, epsilon=0.05, knowledge="graybox")
    prepared = GrayboxTransfer(attack="cw_l2_next", params=FAST["cw_l2_next"]).prepare(game.knowledge(0))
    assert isinstance(prepared, PreparedAdversary)
    d = (prepared.candidates.x_adv - x[:10]).abs().flatten(1).amax(dim=1)
    assert float(d.max()) <= 0.05 + 1e-6
    result = game.play(GrayboxTransfer(attack="fgsm"), seed=0)
    assert all(abs(s.distance - 0.05) < 1e-6 for s in result.transcript)


def test_targeted_game_submits_next_or_least_likely_targets(digits):
    model, x, y = digits
    game = EVCSA(model, x, y, n_chosen=8, epsilon=0.3, goal="targeted", knowledge="graybox")
    nxt = game.play(GrayboxTransfer(attack="bim"), seed=0)
    assert [s.target for s in nxt.transcript] == ((y[:8] + 1) % 10).tolist()
    unbounded = EVCSA(model, x, y, n_chosen=8, goal="targeted", knowledge="graybox")
    ll = unbounded.play(GrayboxTransfer(attack="jsma_ll", params=FAST["jsma_ll"]), seed=0)
    expected = model.logits(x[:8]).argmin(dim=1)
    assert [s.target for s in ll.transcript] == expected.tolist()
    assert ll.successes >= 1


def test_random_source_order_draws_from_the_adversary_generator(digits):
    model, x, y = digits
    game = EVCSA(model, x, y, n_chosen=5, epsilon=0.3, knowledge="graybox")
    a = game.play(GrayboxTransfer(source_order="random"), seed=7)
    b = game.play(GrayboxTransfer(source_order="random"), seed=7)
    c = game.play(GrayboxTransfer(source_order="random"), seed=8)
    sa = [s.source for s in a.transcript]
    assert sa == [s.source for s in b.transcript] and sa != [s.source for s in c.transcript]
    assert len(set(sa)) == 5


def test_repeat_prepares_once_and_plays_the_same_samples(digits):
    model, x, y = digits
    game = EVCSA(model, x, y, n_chosen=6, epsilon=0.3, knowledge="graybox")
    calls = []

    def counting_fgsm(model, x, y, **kw):
        calls.append(x.shape[0])
        return ATTACKS["fgsm"](model, x, y, **kw)

    res = game.repeat(GrayboxTransfer(attack=counting_fgsm, params={"epsilon": 0.3}), runs=4, seed=0)
    assert calls == [6]
    assert len({g.successes for g in res.games}) == 1


def test_sample_freshness_drops_a_bit_identical_repeat(digits):
    """Two identical natural samples give identical FGSM samples: under freshness "sample"
    the second is stale (⊥), dropped and noted, not resubmitted modified."""
    model, x, y = digits
    xs = torch.cat([x[:1], x[:1], x[1:4]])
    ys = torch.cat([y[:1], y[:1], y[1:4]])
    game = EVCSA(model, xs, ys, n_chosen=5, epsilon=0.3, freshness="sample", knowledge="graybox")
    result = game.play(GrayboxTransfer(attack="fgsm"), seed=0)
    assert result.submissions == 4 and result.stale_queries == 1
    assert any("stale" in n for n in result.report.notes)
    assert np.array_equal(result.report.submitted, [0, 2, 3, 4])


def test_round_to_grid_submits_uint8_images(digits):
    model, x, y = digits
    xg = torch.round(x * 255) / 255
    game = EVCSA(model, xg, y, n_chosen=6, epsilon=0.3, knowledge="graybox")
    prepared = GrayboxTransfer(round_to_grid=True).prepare(game.knowledge(0))
    xa = prepared.candidates.x_adv
    assert torch.equal(torch.round(xa * 255) / 255, xa)
    assert float((xa - xg[:6]).abs().max()) <= 0.3 + 1e-6
