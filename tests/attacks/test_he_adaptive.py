"""He et al.'s adaptive attack (evcsa.attacks.he_adaptive): its objective on small inputs
(detector term, confidence, box) and its strength against a squeezing detector."""

from __future__ import annotations

import pytest
import torch

from evcsa.attacks.he_adaptive import he_l2, he_objective
from evcsa.defenses.squeezers import BitDepth
from evcsa.errors import InvalidParameter


def _linear(z: torch.Tensor):
    """Logits fn returning fixed logits per call, in order."""
    calls = iter(z)
    return lambda v: next(calls)


def test_objective_confidence_and_detector_terms():
    x = torch.zeros(1, 1, 2, 2)
    x_adv = torch.full((1, 1, 2, 2), 0.5)
    y = torch.tensor([0])
    c = torch.tensor([2.0])
    # unsqueezed logits: margin 1 − 0 = 1; squeezed: margin −3 (misclassified), far in softmax
    z0 = torch.tensor([[1.0, 0.0]])
    zs = torch.tensor([[0.0, 3.0]])
    loss, ok = he_objective(_linear([z0, zs]), x_adv, x, y, [x_adv], c, confidence=0.0, threshold=2.0)
    # l2 = 4 · 0.25 = 1; adversarial term max(1+0,0) = 1 (the squeezed margin is not a term); detector 0
    assert loss.item() == pytest.approx(1.0 + 2.0 * 1.0)
    assert not ok.item()
    # a tight threshold adds the detector's excess: score = ‖p(zs) − p(z0)‖₁
    p0, ps = torch.softmax(z0, 1), torch.softmax(zs, 1)
    score = (ps - p0).abs().sum().item()
    loss, _ = he_objective(_linear([z0, zs]), x_adv, x, y, [x_adv], c, confidence=0.0, threshold=0.1)
    assert loss.item() == pytest.approx(1.0 + 2.0 * (1.0 + score - 0.1), rel=1e-6)
    # confidence κ = 5 adds κ to the hinge: max(1+5,0) = 6
    loss, _ = he_objective(_linear([z0, zs]), x_adv, x, y, [x_adv], c, confidence=5.0, threshold=2.0)
    assert loss.item() == pytest.approx(1.0 + 2.0 * 6.0)


def test_objective_success_needs_every_condition():
    x = torch.zeros(1, 1, 1, 1)
    y = torch.tensor([0])
    c = torch.tensor([1.0])
    z = torch.tensor([[0.0, 4.0]])
    _, ok = he_objective(_linear([z, z]), x, x, y, [x], c, confidence=0.0, threshold=0.0)
    assert ok.item()  # both misclassified, identical predictions: score 0 ≤ τ
    _, ok = he_objective(_linear([z, z]), x, x, y, [x], c, confidence=5.0, threshold=0.0)
    assert not ok.item()  # margin −4 not ≤ −5


def test_he_l2_in_box_and_evades_bit_depth_detector(digits):
    model, x, y = digits
    sq = [BitDepth(1)]
    x_adv = he_l2(model, x, y, squeezers=sq, threshold=0.5, max_iterations=100, binary_search_steps=3,
                  initial_const=1.0)
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        p = model.predict_proba(x_adv)
        ps = model.predict_proba(sq[0](x_adv))
    found = (x_adv != x).flatten(1).any(dim=1)
    # every returned change is a success by the attack's own test: wrong on x′, score ≤ τ
    assert bool(found.any())
    assert bool((p.argmax(1)[found] != y[found]).all())
    assert bool(((ps - p).abs().sum(1)[found] <= 0.5 + 1e-5).all())


def test_he_l2_rejects_bad_input(digits):
    model, x, y = digits
    with pytest.raises(InvalidParameter, match="expected a sequence of at least one squeezer"):
        he_l2(model, x, y, squeezers=[], threshold=0.5)
    with pytest.raises(InvalidParameter, match="expected threshold"):
        he_l2(model, x, y, squeezers=[BitDepth(1)], threshold=-1.0)
    with pytest.raises(InvalidParameter, match="expected target None"):
        he_l2(model, x, y, squeezers=[BitDepth(1)], threshold=0.5, target=y)


def test_he_l2_randomized_squeezer_draws_from_injected_generator(digits):
    """A callable squeezer (x, generator) is called once per iteration with the injected
    generator: two runs from equal generators give equal results (no global randomness)."""
    model, x, y = digits
    calls = []

    def noisy(v, gen):
        calls.append(gen)
        noise = (torch.rand(v.shape, generator=gen) - 0.5) * 0.2
        return (v + noise).clamp(0.0, 1.0)

    kw = dict(squeezers=[noisy], threshold=0.5, max_iterations=5, binary_search_steps=2)
    a = he_l2(model, x[:3], y[:3], generator=torch.Generator().manual_seed(1), **kw)
    b = he_l2(model, x[:3], y[:3], generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b)
    assert len(calls) == 2 * 5 * 2 and all(isinstance(g, torch.Generator) for g in calls)


def test_he_l2_is_an_adversary_usable_from_toml(tmp_path, digits_cache, monkeypatch):
    """kind = "graybox_transfer", attack = "he_l2": the registry's attack, with the
    detector's squeezers (names, as TOML gives them) and threshold among its parameters,
    crafted on the model and judged by the defense in the game."""
    from evcsa.config import parse_config
    from evcsa.experiments import run_experiment
    from tests.experiments.tiny_runs import TINY

    monkeypatch.setenv("EVCSA_CACHE", str(digits_cache))
    monkeypatch.chdir(tmp_path)
    text = TINY.replace('label = "plain"\nkind = "none"',
                        'label = "median"\nkind = "feature_squeezing"\nsqueezers = "median-2x2"')
    text = text.replace('label = "fgsm"\nkind = "graybox_transfer"\nattack = "fgsm"',
                        'label = "he"\nkind = "graybox_transfer"\nattack = "he_l2"\n'
                        'params = {squeezers = ["median-2x2", "bit-depth-1"], threshold = 0.3, '
                        'max_iterations = 50, binary_search_steps = 3, learning_rate = 0.2}')
    assert 'attack = "he_l2"' in text and 'squeezers = "median-2x2"' in text
    result = run_experiment(parse_config(text), progress=False)
    (cell,) = result.cells
    assert cell.adversary == "he" and cell.runs == 4
    assert cell.success_rate.value > 0.5, cell.success_rate
