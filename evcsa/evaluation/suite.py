"""The standard suite: which adversaries an evaluation plays, chosen from what the defense
declares and holds.

:func:`describe_defense` reads the defense's traits (:class:`Traits`):

- **randomized** — :func:`evcsa.defenses.base.is_randomized` (declared, or holding a key
  source). EOT (the expectation over the defense's randomness, Athalye et al. 2018 § 4.2)
  only where there is randomness: a deterministic defense is attacked with one draw.
- **differentiable** — whether ``surrogate_logits`` exists and gives finite, non-zero input
  gradients on a few natural samples (:class:`GradientProbe`). A defense whose
  non-differentiable steps are squeezers is differentiated with BPDA (forward through the
  squeezer, identity backward; Athalye et al. 2018 § 4.1): the report states that
  approximation. A defense with no surrogate at all gets no whitebox gradient attack (the
  identity approximation of the whole defense is the graybox transfer, which the suite
  plays anyway).
- **quantizing** — a bit-depth squeezer in its chain (or ``quantizing = True`` declared):
  DiscreteSearch searches the quantized images directly where its scope covers the
  defense (a deterministic feature squeezer starting with bit depth).

:func:`choose_suite` then builds the :class:`Suite` (seed 002 § 5; seed 000 § 4.4;
Carlini et al. 2019 § 4–5, "use adaptive attacks, the strongest attacks, and
gradient-free attacks"; Pintor et al. 2022, "Indicators of Attack Failure"):

1. graybox transfer of the norm's strongest attacks, crafted on the undefended model;
2. A* (seed 002 § 4.3) over the first graybox attack's candidates, ranked by Classify;
3. whitebox BPDA+EOT (PGD) through the defense's twin, and APGD-DLR-EOT (standard
   budget), ranked offline by the twin;
4. DiscreteSearch for a quantizing defense it can search;
5. the ensemble of all crafters (:class:`~evcsa.evaluation.ensemble.Ensemble`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import attrs
import numpy as np
import torch

from evcsa.adversaries import BPDAEOT, DiscreteSearch, GrayboxTransfer, GreedyAStar
from evcsa.adversaries.discrete import quantizer_chain as discrete_chain
from evcsa.config import ComponentSpec
from evcsa.defenses import BitDepth, CroppingRescaling, RandomizedSqueezing, RegionBasedClassification
from evcsa.defenses.base import is_randomized
from evcsa.defenses.squeezers import Compose, Squeezer
from evcsa.errors import InvalidParameter
from evcsa.evaluation.budget import Budget
from evcsa.games.rules import Rules
from evcsa.randomness import DerivedKeys

__all__ = ["GRAYBOX_ATTACKS", "GradientProbe", "Member", "Suite", "Traits", "choose_suite", "describe_defense",
           "probe_gradients"]

#: The strongest graybox attacks per norm, strongest first (the budget takes the first k):
#: (label, registry name, parameters beyond the game's ε and the budget's steps).
GRAYBOX_ATTACKS: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {
    "linf": (("PGD", "bim", {"random_start": True}), ("APGD-DLR", "apgd_dlr", {}), ("APGD-CE", "apgd_ce", {})),
    "l2": (("APGD-CE", "apgd_ce", {"norm": "l2"}), ("APGD-DLR", "apgd_dlr", {"norm": "l2"}),
           ("PGD", "bim", {"norm": "l2", "random_start": True})),
    "l0": (("JSMA", "jsma_next", {}), ("C&W L0", "cw_l0_next", {"max_iterations": 100})),
}


@attrs.frozen(kw_only=True)
class GradientProbe:
    """Input gradients of the defense's ``surrogate_logits`` on a few natural samples.

    Attributes:
        status: "ok", "none" (no ``surrogate_logits``: NotImplementedError or no method),
            "missing" (no autograd path to the input), "nonfinite" (NaN/inf entries),
            "zero" (every sample's gradient identically zero) or "partly-zero" (some).
        samples: images probed.
        zero: samples whose gradient was identically zero.
        detail: one line for the report.
    """

    status: str
    samples: int
    zero: int
    detail: str

    @property
    def differentiable(self) -> bool:
        """Whether gradient attacks through the defense can be run at all (a surrogate with
        an autograd path exists; zero or NaN gradients still count: the checks flag them)."""
        return self.status not in ("none", "missing")


@attrs.frozen(kw_only=True)
class Traits:
    """What the suite is chosen from.

    Attributes:
        name: the defense's description.
        randomized: :func:`~evcsa.defenses.base.is_randomized`.
        gradients: the :class:`GradientProbe`.
        approximation: the gradient approximation the whitebox attacks rely on, in words.
        quantizing: a bit-depth squeezer in the chain, or declared ``quantizing = True``.
        squeezers: the squeezer specs found in the chain.
        discrete: whether DiscreteSearch can search this defense; ``discrete_reason`` why not.
    """

    name: str
    randomized: bool
    gradients: GradientProbe
    approximation: str
    quantizing: bool
    squeezers: tuple[str, ...]
    discrete: bool
    discrete_reason: str


@attrs.frozen(kw_only=True, eq=False)
class Member:
    """One adversary of the suite.

    Attributes:
        label: its name in the report ("graybox PGD", "BPDA+EOT", …).
        role: "graybox" (transfer), "a_star" (Classify-ranked transfer), "whitebox"
            (gradients through the twin), "search" (DiscreteSearch) or "ensemble".
        adversary: the :class:`~evcsa.adversaries.Adversary`.
        spec: the ``[[adversaries]]`` table that builds it (results.json, config.toml).
        why: one line: why it is in the suite and what it is allowed.
        crafts: whether it crafts its own candidates (A* reuses the first graybox
            attack's; the ensemble every crafter's).
    """

    label: str
    role: str
    adversary: Any = attrs.field(repr=False)
    spec: ComponentSpec
    why: str
    crafts: bool = True


@attrs.frozen(kw_only=True, eq=False)
class Suite:
    """The adversaries an evaluation plays and why.

    Attributes:
        traits: the defense's :class:`Traits`.
        members: the single adversaries, crafters first (the ensemble is built from them).
        notes: what was left out and why (no surrogate, a norm BPDA lacks, …).
        knowledge: the knowledge level the games are played at.
    """

    traits: Traits
    members: tuple[Member, ...]
    notes: tuple[str, ...]
    knowledge: str

    @property
    def crafters(self) -> tuple[Member, ...]:
        """The members that craft candidates (the ensemble's pool), in suite order."""
        return tuple(m for m in self.members if m.crafts)

    @property
    def ensemble_order(self) -> tuple[Member, ...]:
        """The crafters as the ensemble takes them: whitebox, search, then graybox — where
        the twin rates two candidates of a source equally, the one from the adversary that
        knows more is kept."""
        rank = {"whitebox": 0, "search": 1, "graybox": 2}
        return tuple(sorted(self.crafters, key=lambda m: rank.get(m.role, 3)))

    def member(self, label: str) -> Member:
        """The member named ``label``.

        Raises:
            InvalidParameter: no such member.
        """
        for m in self.members:
            if m.label == label:
                return m
        raise InvalidParameter(f"expected a member of the suite {[m.label for m in self.members]}, got {label!r}")


# -- the defense's traits ----------------------------------------------------------------------

def quantizer_chain(defense: Any, depth: int = 8) -> list[Any]:
    """The defense and the classifiers it wraps, outermost first (through ``base``)."""
    out: list[Any] = []
    seen: set[int] = set()
    node = defense
    while node is not None and id(node) not in seen and len(out) < depth:
        seen.add(id(node))
        out.append(node)
        node = getattr(node, "base", None)
    return out


def _squeezers(defense: Any) -> list[Any]:
    """The squeezer objects in the defense's chain (Compose expanded), outermost first."""
    found: list[Any] = []

    def add(s: Any) -> None:
        if isinstance(s, Compose):
            for inner in s.squeezers:
                add(inner)
        elif isinstance(s, Squeezer):
            found.append(s)

    for node in quantizer_chain(defense):
        items = getattr(node, "squeezers", None)
        if isinstance(items, (list, tuple)):
            for s in items:
                add(s)
        else:
            add(getattr(node, "squeezer", None))
    return found


def probe_gradients(classifier: Any, x: torch.Tensor, y: torch.Tensor) -> GradientProbe:
    """The input gradients of ``classifier.surrogate_logits`` (cross-entropy at the true
    labels) on the images ``x``: one call, on whatever draw of randomness it makes.

    Args:
        classifier: the classifier to probe (a twin for a randomized defense, so that the
            defense's own keys are not consumed).
        x: float32 [B, C, H, W] in [0, 1].
        y: int64 [B] true labels.

    Returns:
        :class:`GradientProbe`.
    """
    b = int(x.shape[0])
    method = getattr(classifier, "surrogate_logits", None)
    if not callable(method):
        return GradientProbe(status="none", samples=b, zero=0, detail="no surrogate_logits method")
    device = getattr(classifier, "device", x.device)
    xg = x.detach().clone().to(device).requires_grad_(True)
    try:
        with torch.enable_grad():
            out = method(xg)
    except NotImplementedError as exc:
        return GradientProbe(status="none", samples=b, zero=0, detail=f"surrogate_logits raised "
                                                                      f"NotImplementedError ({exc})")
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return GradientProbe(status="missing", samples=b, zero=0,
                             detail="surrogate_logits output does not depend differentiably on the input")
    with torch.enable_grad():
        loss = torch.nn.functional.cross_entropy(out.float(), y.to(out.device))
        (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
    if grad is None:
        return GradientProbe(status="missing", samples=b, zero=0, detail="no gradient reaches the input")
    if not bool(torch.isfinite(grad).all()):
        return GradientProbe(status="nonfinite", samples=b, zero=0,
                             detail=f"NaN/inf entries in the input gradient of {b} probe images")
    zero = int((grad.flatten(1) == 0).all(dim=1).sum())
    if zero == b:
        return GradientProbe(status="zero", samples=b, zero=zero,
                             detail=f"identically zero input gradients on all {b} probe images")
    if zero:
        return GradientProbe(status="partly-zero", samples=b, zero=zero,
                             detail=f"identically zero input gradients on {zero} of {b} probe images")
    return GradientProbe(status="ok", samples=b, zero=0, detail=f"finite, non-zero input gradients on all {b} "
                                                                 "probe images")


def _approximation(defense: Any, squeezers: list[Any], probe: GradientProbe) -> str:
    declared = getattr(defense, "surrogate_approximation", None)
    if isinstance(declared, str) and declared.strip():
        return f"as the defense declares: {declared.strip()}"
    if not probe.differentiable:
        return ("none: the defense offers no differentiable surrogate (no whitebox gradient attack; the identity "
                "approximation of the whole defense is the graybox transfer)")
    parts = []
    if squeezers:
        names = " then ".join(s.spec for s in squeezers)
        parts.append(f"BPDA: the squeezer ({names}) runs forward and is replaced by the identity in the backward "
                     "pass (Athalye et al. 2018 § 4.1), so gradients are the model's at the squeezed image")
    chain = quantizer_chain(defense)
    if any(isinstance(n, RandomizedSqueezing) for n in chain):
        parts.append("the noise addition and clip are differentiated exactly, one noise draw per gradient")
    if any(isinstance(n, CroppingRescaling) for n in chain):
        parts.append("crops and bilinear rescaling are differentiable: one draw is the log of the mean softmax "
                     "over `surrogate_crops` fresh crops")
    if any(isinstance(n, RegionBasedClassification) for n in chain):
        parts.append("the majority vote is replaced by the log of the mean softmax over `surrogate_samples` "
                     "points of the hypercube (one draw per gradient)")
    if not parts:
        parts.append("the defense's own surrogate_logits (its author's approximation; state it beside the numbers, "
                     "or declare it as the attribute surrogate_approximation)")
    return "; ".join(parts)


def _discrete_scope(defense: Any) -> tuple[bool, str]:
    try:
        discrete_chain(defense)
    except InvalidParameter as exc:
        return False, exc.message
    return True, "a deterministic feature squeezer starting with bit depth"


def describe_defense(defense: Any, x: torch.Tensor, y: torch.Tensor, *, name: str | None = None) -> Traits:
    """The defense's traits the suite is chosen from (module docstring).

    Args:
        defense: the classifier under evaluation.
        x: float32 [B, C, H, W] in [0, 1], a few natural samples for the gradient probe.
        y: int64 [B], their labels.
        name: its description (default: ``repr``).

    Raises:
        InvalidParameter: from :func:`~evcsa.defenses.base.is_randomized` (a declared
            ``randomized = False`` that holds a key source).
    """
    randomized = is_randomized(defense)
    probe_on = defense
    if randomized and callable(getattr(defense, "with_keys", None)):
        try:  # a twin from fixed probe keys: the defense's own key stream is not consumed
            probe_on = defense.with_keys(DerivedKeys(bytes(32), "evcsa/evaluate-probe"))
        except NotImplementedError:
            probe_on = defense
    else:
        try:
            probe_on = copy.deepcopy(defense)
        except Exception:  # noqa: BLE001 - an uncopyable deterministic defense is probed in place
            probe_on = defense
    probe = probe_gradients(probe_on, x, y)
    squeezers = _squeezers(defense)
    declared = getattr(defense, "quantizing", None)
    quantizing = bool(declared) if isinstance(declared, bool) else any(isinstance(s, BitDepth) for s in squeezers)
    discrete, reason = _discrete_scope(defense) if quantizing else (False, "not quantizing")
    return Traits(name=name or repr(defense), randomized=randomized, gradients=probe,
                  approximation=_approximation(defense, squeezers, probe), quantizing=quantizing,
                  squeezers=tuple(s.spec for s in squeezers), discrete=discrete, discrete_reason=reason)


# -- the suite ---------------------------------------------------------------------------------

def _spec(kind: str, label: str, **params: Any) -> ComponentSpec:
    return ComponentSpec(kind=kind, label=label, params={k: v for k, v in params.items() if v is not None})


def _trivial_bound(norm: str, image_shape: tuple[int, ...]) -> float:
    size = int(np.prod(image_shape))
    return {"linf": 1.0, "l2": math.sqrt(size), "l0": float(size)}[norm]


def choose_suite(traits: Traits, rules: Rules, budget: Budget, *, n_samples: int,
                 image_shape: tuple[int, ...]) -> Suite:
    """The standard suite for a defense with ``traits`` under ``rules`` at ``budget``
    (module docstring; every member's settings come from the budget).

    Args:
        traits: :func:`describe_defense`.
        rules: the game's rules (N, ε, norm, goal, knowledge).
        budget: the :class:`~evcsa.evaluation.budget.Budget`.
        n_samples: |X_D| (every crafter crafts one candidate per natural sample).
        image_shape: (C, H, W).

    Raises:
        InvalidParameter: blackbox knowledge (the suite needs at least the undefended
            model), or a norm without attacks.
    """
    if rules.knowledge == "blackbox":
        raise InvalidParameter("expected graybox or whitebox knowledge for an evaluation (its adversaries craft on "
                               "the undefended model or the twin), got blackbox", got="blackbox")
    notes: list[str] = []
    members: list[Member] = []
    eps, norm = rules.epsilon, rules.norm
    randomized = traits.randomized
    eot = budget.eot_draws if randomized else 1
    twin_draws = budget.twin_draws if randomized else 1
    if eps is None:
        notes.append(f"unbounded game (ε = None): the graybox attacks run at their default ε and the whitebox ones at "
                     f"ε = 0.3 ({norm}); any x′ is allowed")
    graybox = GRAYBOX_ATTACKS[norm][: budget.graybox_attacks]
    for label, name, extra in graybox:
        params = dict(extra)
        if name in ("bim", "apgd_ce", "apgd_dlr"):
            params["steps"] = budget.attack_steps
            if eps is not None and norm != "linf":
                params["epsilon"] = float(eps)
        adversary = GrayboxTransfer(attack=name, params=params, n_candidates=n_samples)
        members.append(Member(label=f"graybox {label}", role="graybox", adversary=adversary,
                              spec=_spec("graybox_transfer", f"graybox {label}", attack=name, params=params,
                                         n_candidates=n_samples),
                              why=f"{label} crafted on the undefended model ({_steps_text(name, params)}), "
                                  f"transferred: the first N sources submitted, no query"))
    first_label, first_name, first_extra = graybox[0]
    first_params = dict(members[0].adversary.params)
    queries = budget.astar_queries if randomized else 1
    astar = GreedyAStar(attack=first_name, params=first_params, queries_per_candidate=queries,
                        sampling="adaptive" if randomized else "fixed", query_budget=budget.astar_budget
                        if randomized else None)
    members.append(Member(
        label=f"A* {first_label}", role="a_star", adversary=astar, crafts=False,
        spec=_spec("greedy_a_star", f"A* {first_label}", attack=first_name, params=first_params,
                   queries_per_candidate=queries, sampling=astar.sampling, query_budget=astar.query_budget),
        why=(f"seed 002's A*: the graybox {first_label} candidates of every source, p̂ from Classify "
             + (f"(adaptive, ≤ {queries} draws each, ≤ {budget.astar_budget} per game)" if randomized
                else "(1 draw each: the defense is deterministic)") + ", the N best submitted")))
    whitebox_ok = rules.knowledge == "whitebox"
    if not whitebox_ok:
        notes.append(f"{rules.knowledge} knowledge: no whitebox adversary (BPDA+EOT, APGD-EOT, DiscreteSearch)")
    elif not traits.gradients.differentiable:
        notes.append(f"no whitebox gradient attack: {traits.gradients.detail} (the graybox transfer is the identity "
                     "approximation of the whole defense)")
    elif norm not in ("linf", "l2"):
        notes.append(f"no whitebox gradient attack for the {norm} norm (BPDA+EOT and APGD are L∞/L2)")
    else:
        w_eps = 0.3 if eps is None else None
        common: dict[str, Any] = dict(steps=budget.whitebox_steps, eot_samples=eot, selection="offline",
                                      estimate_draws=twin_draws, epsilon=w_eps)
        pgd = BPDAEOT(**common)
        eot_text = f"{eot} EOT draws per step" if randomized else "no EOT (deterministic)"
        members.append(Member(label="BPDA+EOT", role="whitebox", adversary=pgd,
                              spec=_spec("bpda_eot", "BPDA+EOT", **common),
                              why=f"PGD through the twin, {budget.whitebox_steps} steps × {eot_text}; the N "
                                  f"best by {twin_draws} twin draws (no query)"))
        if budget.whitebox_apgd:
            apgd_params: dict[str, Any] = dict(common, method="apgd", loss="dlr")
            members.append(Member(label="APGD-DLR+EOT", role="whitebox", adversary=BPDAEOT(**apgd_params),
                                  spec=_spec("bpda_eot", "APGD-DLR+EOT", **apgd_params),
                                  why=f"APGD with the DLR loss through the twin (Croce & Hein 2020), "
                                      f"{budget.whitebox_steps} steps × {eot_text}; ranked by the twin"))
    if traits.quantizing:
        if not whitebox_ok:
            pass
        elif not traits.discrete:
            notes.append(f"quantizing, but DiscreteSearch cannot search it ({traits.discrete_reason}); BPDA's identity "
                         "backward stands in for the quantizer")
        elif norm != "linf" or eps is None:
            notes.append("quantizing, but DiscreteSearch needs an L∞ game with an ε")
        else:
            search = DiscreteSearch(steps=budget.discrete_steps, restarts=budget.discrete_restarts)
            members.append(Member(label="DiscreteSearch", role="search", adversary=search,
                                  spec=_spec("discrete_search", "DiscreteSearch", steps=budget.discrete_steps,
                                             restarts=budget.discrete_restarts),
                                  why=f"tabu search over the quantized images within ε ({budget.discrete_steps} "
                                      f"steps × {budget.discrete_restarts} restarts), ranked by the twin"))
    if not randomized:
        notes.append("deterministic defense: no EOT, one Classify draw per A* candidate, one draw per re-judging")
    return Suite(traits=traits, members=tuple(members), notes=tuple(notes), knowledge=rules.knowledge)


def _steps_text(name: str, params: dict[str, Any]) -> str:
    steps = params.get("steps")
    return f"{steps} steps" if steps is not None else "its reference settings"


def trivial_epsilon(norm: str, image_shape: tuple[int, ...]) -> float:
    """The ε at which every image is within reach of every other ([0, 1] scale): L∞ 1,
    L2 √(C·H·W), L0 C·H·W — the unbounded attack's bound."""
    return _trivial_bound(norm, image_shape)
