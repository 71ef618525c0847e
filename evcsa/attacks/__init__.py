"""Attacks: craft x′ from x against a model.

Every attack is a function ``attack(model, x, y, *, target=None, **params) -> x_adv`` on
NCHW float32 batches in [0, 1]; ``target`` given means targeted. ``model`` is a
:class:`~evcsa.defenses.Classifier` — gradients are read through its ``surrogate_logits``
(BPDA for squeezers, one draw of a randomized defense) — or a ``torch.nn.Module``
returning logits. Results live on the model's device. Randomness comes only from the
``generator`` argument. Zero, NaN or missing gradients are recorded in a
:class:`GradientMonitor` (or warned about with :class:`GradientWarning`), never read as
robustness.

- :func:`fgsm`, :func:`bim` — Goodfellow et al. 2015; Kurakin et al. 2017 (PGD with
  ``random_start``, Madry et al. 2018).
- :func:`cw_l2`, :func:`cw_linf`, :func:`cw_l0` — Carlini & Wagner, S&P 2017.
- :func:`deepfool` — Moosavi-Dezfooli et al., CVPR 2016.
- :func:`jsma` — Papernot et al., EuroS&P 2016.
- :func:`he_l2` — He et al., WOOT 2017: C&W L2 that also evades feature squeezing's
  joint detector (seed 002 Table 3's attack).
- :func:`apgd` — Croce & Hein, ICML 2020 (APGD-CE / APGD-DLR, EOT; AutoAttack's defaults).
- :func:`next_class`, :func:`least_likely` — the targets of the feature-squeezing
  evaluation.
- :data:`ATTACKS` — the 11 attacks of seed 002 Table 1 by name, with their settings.
- :func:`run_attack`, :func:`evaluate_adversarial`, :func:`evaluate_attack` — batched
  crafting and success re-checked on the evaluated classifier (never read from the attack).
"""

from evcsa.attacks._common import (cross_entropy, cw_margin, eot_gradient, least_likely, next_class, project,
                                  random_start, to_uint8_grid)
from evcsa.attacks.apgd import apgd, dlr_loss
from evcsa.attacks.carlini_wagner import cw_l0, cw_l2, cw_linf
from evcsa.attacks.deepfool import deepfool
from evcsa.attacks.evaluation import AttackEvaluation, Crafted, evaluate_adversarial, evaluate_attack, run_attack
from evcsa.attacks.gradient_sign import bim, fgsm
from evcsa.attacks.gradients import GradientHealth, GradientMonitor, GradientWarning
from evcsa.attacks.he_adaptive import he_l2
from evcsa.attacks.jsma import jsma
from evcsa.attacks.registry import ATTACKS, TABLE1, TARGETINGS, AttackSpec, get_attack, resolve_targets

__all__ = [
    "ATTACKS",
    "TABLE1",
    "TARGETINGS",
    "AttackEvaluation",
    "AttackSpec",
    "Crafted",
    "GradientHealth",
    "GradientMonitor",
    "GradientWarning",
    "apgd",
    "bim",
    "cross_entropy",
    "cw_l0",
    "cw_l2",
    "cw_linf",
    "cw_margin",
    "deepfool",
    "dlr_loss",
    "eot_gradient",
    "evaluate_adversarial",
    "evaluate_attack",
    "fgsm",
    "get_attack",
    "he_l2",
    "jsma",
    "least_likely",
    "next_class",
    "project",
    "random_start",
    "resolve_targets",
    "run_attack",
    "to_uint8_grid",
]
