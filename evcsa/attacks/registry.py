"""The attacks by name: the 11 attacks of seed 002 Table 1 with their reference settings.

:data:`ATTACKS` maps a name to an :class:`AttackSpec` — the attack function, its default
parameters (the MNIST settings of the feature-squeezing evaluation, Xu et al., NDSS 2018;
EvadeML-Zoo ``Reproduce_FeatureSqueezing.md``), its targeting mode ("untargeted",
"next" = (y + 1) mod K, "least_likely" = the model's lowest-scoring class on x) and the
norm it minimises or bounds. It is a plain dict: look names up, iterate it, or build an
:class:`AttackSpec` of your own.

===============  ==========  ==============  =====================================
name             function    targeting       defaults
===============  ==========  ==============  =====================================
fgsm             fgsm        untargeted      ε 0.3 (L∞)
bim              bim         untargeted      ε 0.3, step 2ε/10 (0.06), 10 steps (L∞)
cw_linf_next     cw_linf     next            κ 10, 1000 iterations
cw_linf_ll       cw_linf     least_likely    κ 10, 1000 iterations
deepfool         deepfool    untargeted      overshoot 0.02, 50 iterations (L2)
cw_l2_next       cw_l2       next            κ 10, 1000 iterations, 9 search steps
cw_l2_ll         cw_l2       least_likely    κ 10, 1000 iterations, 9 search steps
cw_l0_next       cw_l0       next            κ 10, 1000 iterations
cw_l0_ll         cw_l0       least_likely    κ 10, 1000 iterations
jsma_next        jsma        next            θ 1, γ 0.1
jsma_ll          jsma        least_likely    θ 1, γ 0.1
apgd_ce          apgd        untargeted      ε 0.3, 100 iterations, CE (AutoAttack)
apgd_dlr         apgd        untargeted      ε 0.3, 100 iterations, DLR (AutoAttack)
he_l2            he_l2       untargeted      median 2×2 + 1-bit, τ 0.3, κ 0, 9 × 5000
===============  ==========  ==============  =====================================

The last three are not in Table 1 (:data:`TABLE1` lists the 11 that are): APGD, Croce &
Hein, ICML 2020, with AutoAttack's defaults (:mod:`evcsa.attacks.apgd`); He et al.'s
adaptive C&W L2 attack on feature squeezing, WOOT 2017, with EvadeML-Zoo's defaults
(:mod:`evcsa.attacks.he_adaptive`; seed 002 Table 3's attack), against the squeezers and
the joint detector's threshold given as its ``squeezers`` and ``threshold`` parameters.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable, Mapping

import attrs
import torch

from evcsa._validation import as_images, as_labels, targeting
from evcsa.attacks._common import as_classifier, least_likely, next_class
from evcsa.attacks.apgd import apgd
from evcsa.attacks.carlini_wagner import cw_l0, cw_l2, cw_linf
from evcsa.attacks.deepfool import deepfool
from evcsa.attacks.gradient_sign import bim, fgsm
from evcsa.attacks.gradients import GradientMonitor
from evcsa.attacks.he_adaptive import he_l2
from evcsa.attacks.jsma import jsma
from evcsa.errors import InvalidParameter

__all__ = ["ATTACKS", "TABLE1", "TARGETINGS", "AttackSpec", "get_attack", "resolve_targets"]

TARGETINGS = ("untargeted", "next", "least_likely")


def resolve_targets(targeting: Any, model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """The target labels for a targeting mode.

    Args:
        targeting: None or "untargeted" (→ None), "next" ((y + 1) mod K), "least_likely"
            (the model's lowest-scoring class on x other than y), or explicit labels [B].
        model: the model the targets are computed on (K and the least-likely class).
        x: float32 [B, C, H, W] in [0, 1].
        y: true labels [B].

    Returns:
        int64 [B] on the model's device, or None (untargeted).

    Raises:
        InvalidParameter: an unknown mode or malformed labels.
    """
    if targeting is None or (isinstance(targeting, str) and targeting == "untargeted"):
        return None
    clf = as_classifier(model)
    if isinstance(targeting, str):
        if targeting == "next":
            return next_class(torch.as_tensor(y).to(clf.device), int(clf.num_classes))
        if targeting == "least_likely":
            return least_likely(clf, x, y)
        raise InvalidParameter(f"expected targeting in {TARGETINGS} or labels, got {targeting!r}", got=targeting)
    return as_labels(targeting, name="target", length=len(y), num_classes=int(clf.num_classes)).to(clf.device)


def _frozen_params(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise InvalidParameter(f"expected params as a mapping of names to values, got {type(value).__name__}")
    return types.MappingProxyType(dict(value))


#: Arguments every attack takes that the runner passes itself: never ``params``.
_RESERVED = ("model", "x", "y", "target", "generator", "monitor")


def check_params(attack: Callable[..., Any], names: Any, *, name: str | None = None) -> None:
    """Raise InvalidParameter when ``names`` holds a name ``attack`` takes no keyword
    argument of (a callable taking ``**params`` takes any). Run where parameters are stored
    for later (a spec, an adversary, a configuration), so a misspelt one is named at once
    rather than as a TypeError from a later run."""
    try:
        signature = inspect.signature(attack)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    accepted = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted):
        return
    known = sorted(p.name for p in accepted if p.name not in _RESERVED
                   and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    unknown = sorted(set(names) - set(known))
    if unknown:
        what = name or getattr(attack, "__name__", type(attack).__name__)
        raise InvalidParameter(f"expected parameters of {what} among {known}, got unknown {unknown}",
                               key="params", got=unknown)


def _check_spec_params(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_params(instance.attack, value)


def _check_callable(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not callable(value):
        raise InvalidParameter(f"expected attack as a callable (model, x, y, *, target, ...) -> x_adv, "
                               f"got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class AttackSpec:
    """An attack with its parameters and targeting mode, callable like the attack.

    Attributes:
        name: registry key, e.g. "cw_l2_next".
        attack: the function ``(model, x, y, *, target=None, generator=None,
            monitor=None, **params) -> x_adv``.
        params: its default parameters (read-only mapping).
        targeting: "untargeted", "next" or "least_likely".
        norm: the distance the attack bounds or minimises: "linf", "l2" or "l0".
        label: the column name in seed 002 Table 1 (e.g. "CW2 Next").
        source: the paper.
    """

    name: str
    attack: Callable[..., torch.Tensor] = attrs.field(validator=_check_callable)
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_params,
                                            validator=_check_spec_params)
    targeting: str = attrs.field(default="untargeted", validator=targeting(TARGETINGS))
    norm: str = "linf"
    label: str = ""
    source: str = ""

    @property
    def epsilon(self) -> float | None:
        """The ε bound in :attr:`params` for bounded attacks (FGSM, BIM), else None."""
        eps = self.params.get("epsilon")
        return None if eps is None else float(eps)

    def with_params(self, **overrides: Any) -> AttackSpec:
        """The same attack with some parameters replaced (``targeting=`` also accepted)."""
        targeting = overrides.pop("targeting", self.targeting)
        return attrs.evolve(self, params={**self.params, **overrides}, targeting=targeting)

    def targets(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """The targets this spec attacks with (None when untargeted)."""
        return resolve_targets(self.targeting, model, x, y)

    def __call__(self, model: Any, x: Any, y: Any, *, target: Any = None,
                 generator: torch.Generator | None = None, monitor: GradientMonitor | None = None,
                 **overrides: Any) -> torch.Tensor:
        """Run the attack; ``target`` (labels) overrides the spec's targeting mode."""
        params = {**self.params, **overrides}
        if target is None and self.targeting != "untargeted":
            clf = as_classifier(model)
            xs = as_images(x, name="x", device=clf.device)
            target = self.targets(clf, xs, torch.as_tensor(y))
        return self.attack(model, x, y, target=target, generator=generator, monitor=monitor, **params)


_FS = "Xu, Evans & Qi, NDSS 2018 (EvadeML-Zoo MNIST settings)"
_CW = "Carlini & Wagner, S&P 2017"

#: The 11 attacks of seed 002 Table 1, in the table's column order.
ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(name="fgsm", attack=fgsm, params={"epsilon": 0.3}, norm="linf", label="FGSM",
                       source=f"Goodfellow et al., ICLR 2015; {_FS}"),
    "bim": AttackSpec(name="bim", attack=bim, params={"epsilon": 0.3, "steps": 10},
                      norm="linf", label="BIM", source=f"Kurakin et al., ICLR-W 2017; {_FS}"),
    "cw_linf_next": AttackSpec(name="cw_linf_next", attack=cw_linf,
                               params={"confidence": 10.0, "max_iterations": 1000}, targeting="next",
                               norm="linf", label="CW∞ Next", source=f"{_CW}, § VIII; {_FS}"),
    "cw_linf_ll": AttackSpec(name="cw_linf_ll", attack=cw_linf,
                             params={"confidence": 10.0, "max_iterations": 1000}, targeting="least_likely",
                             norm="linf", label="CW∞ LL", source=f"{_CW}, § VIII; {_FS}"),
    "deepfool": AttackSpec(name="deepfool", attack=deepfool, params={"overshoot": 0.02, "max_iter": 50},
                           norm="l2", label="DeepFool", source="Moosavi-Dezfooli et al., CVPR 2016"),
    "cw_l2_next": AttackSpec(name="cw_l2_next", attack=cw_l2,
                             params={"confidence": 10.0, "max_iterations": 1000, "binary_search_steps": 9},
                             targeting="next", norm="l2", label="CW2 Next", source=f"{_CW}, § VI; {_FS}"),
    "cw_l2_ll": AttackSpec(name="cw_l2_ll", attack=cw_l2,
                           params={"confidence": 10.0, "max_iterations": 1000, "binary_search_steps": 9},
                           targeting="least_likely", norm="l2", label="CW2 LL", source=f"{_CW}, § VI; {_FS}"),
    "cw_l0_next": AttackSpec(name="cw_l0_next", attack=cw_l0,
                             params={"confidence": 10.0, "max_iterations": 1000}, targeting="next",
                             norm="l0", label="CW0 Next", source=f"{_CW}, § VII; {_FS}"),
    "cw_l0_ll": AttackSpec(name="cw_l0_ll", attack=cw_l0,
                           params={"confidence": 10.0, "max_iterations": 1000}, targeting="least_likely",
                           norm="l0", label="CW0 LL", source=f"{_CW}, § VII; {_FS}"),
    "jsma_next": AttackSpec(name="jsma_next", attack=jsma, params={"theta": 1.0, "gamma": 0.1},
                            targeting="next", norm="l0", label="JSMA Next",
                            source=f"Papernot et al., EuroS&P 2016; {_FS}"),
    "jsma_ll": AttackSpec(name="jsma_ll", attack=jsma, params={"theta": 1.0, "gamma": 0.1},
                          targeting="least_likely", norm="l0", label="JSMA LL",
                          source=f"Papernot et al., EuroS&P 2016; {_FS}"),
}

#: Names of :data:`ATTACKS` in seed 002 Table 1's column order.
TABLE1: tuple[str, ...] = tuple(ATTACKS)

_APGD = "Croce & Hein, ICML 2020 (AutoAttack defaults)"
ATTACKS["apgd_ce"] = AttackSpec(name="apgd_ce", attack=apgd, params={"epsilon": 0.3, "steps": 100, "loss": "ce"},
                                norm="linf", label="APGD-CE", source=_APGD)
ATTACKS["apgd_dlr"] = AttackSpec(name="apgd_dlr", attack=apgd, params={"epsilon": 0.3, "steps": 100, "loss": "dlr"},
                                 norm="linf", label="APGD-DLR", source=_APGD)
ATTACKS["he_l2"] = AttackSpec(name="he_l2", attack=he_l2,
                              params={"squeezers": ("median-2x2", "bit-depth-1"), "threshold": 0.3},
                              norm="l2", label="He et al.",
                              source="He, Wei, Chen, Carlini & Song, WOOT 2017; EvadeML-Zoo attacks/adaptive")


def get_attack(attack: Any) -> AttackSpec:
    """An :class:`AttackSpec` from a registry name, a spec, or a bare attack function
    (untargeted, no default parameters).

    Raises:
        InvalidParameter: an unknown name or something not callable.
    """
    if isinstance(attack, AttackSpec):
        return attack
    if isinstance(attack, str):
        try:
            return ATTACKS[attack]
        except KeyError:
            raise InvalidParameter(f"expected an attack name in {sorted(ATTACKS)}, got {attack!r}",
                                   got=attack) from None
    if callable(attack):
        name = getattr(attack, "__name__", type(attack).__name__)
        return AttackSpec(name=name, attack=attack, label=name)
    raise InvalidParameter(f"expected an attack (name, AttackSpec or callable), got {type(attack).__name__}")
