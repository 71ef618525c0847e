"""BPDAEOT: the whitebox adversary — projected gradient steps through the defense twin,
with BPDA for its squeezers and the expectation over its randomness.

Sources: seed 000 § 4.4 (whitebox attacks: BPDA and EOT against the randomized
defenses); Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018, § 4.1 (BPDA: forward through the non-differentiable step,
identity backward) and § 4.2 (EOT: follow ∇ E_t[L(f(t(x)))] = E_t[∇ L(f(t(x)))]);
Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples", ICML 2018
(EOT). Step rule and projection: Madry et al., ICLR 2018 (PGD). EOT in practice: 30
draws per step in Athalye et al.'s code, 20 in AutoAttack's randomized mode (Croce & Hein,
ICML 2020); the default here is 30.

The gradients come from ``knowledge.defense``: the whitebox twin of the defended
classifier, with the same parameters and the adversary's own keys. The defense's own
keys are never used (they are not in the knowledge). The twin's ``surrogate_logits``
supplies the BPDA path (squeezers) and one draw of its randomness per call (noise,
crops, region samples); EOT averages the per-draw loss gradients: a mean, not a sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch

from evcsa._validation import epsilon as epsilon_bound
from evcsa._validation import is_bool, one_of
from evcsa._validation import targeting as targeting_among
from evcsa.adversaries._common import (
    RANKINGS,
    SOURCE_ORDERS,
    AdversaryReport,
    Candidates,
    PreparedAdversary,
    choose_sources,
    fit_to_game,
    positive_int,
    probability_open,
    rank,
    rate_on_twin,
    submit,
)
from evcsa.adversaries.base import Adversary
from evcsa.adversaries.greedy import estimate_online
from evcsa.attacks import eot_gradient, project, random_start
from evcsa.attacks.apgd import apgd, apgd_loss
from evcsa.attacks.gradient_sign import ascent_loss
from evcsa.attacks.gradients import GradientHealth, GradientMonitor
from evcsa.attacks.registry import resolve_targets
from evcsa.defenses.base import is_randomized
from evcsa.distances import warn_if_trivial
from evcsa.errors import InvalidParameter

if TYPE_CHECKING:
    from evcsa.defenses.base import Classifier
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles
    from evcsa.games.rules import Rules

__all__ = ["BPDAEOT", "eot_gradient"]

SELECTIONS = ("first", "offline", "online")
METHODS = ("pgd", "apgd")


def _hits(logits: torch.Tensor, knowledge: Knowledge, labels: torch.Tensor, targets: torch.Tensor | None,
          reference: torch.Tensor | None) -> torch.Tensor:
    """Fraction of draws [S, B, K] whose top class meets the game's goal, per sample, by
    the game's own rule (:meth:`Rules.count_successes` over the S draws: targeted,
    untargeted against the label or against ``reference``, the twin's top classes [S, B]
    on the natural samples)."""
    tops = iter(logits.argmax(dim=2))  # draw d's top classes [B]: what "classify" answers in call d

    def classify(_x: torch.Tensor) -> torch.Tensor:
        return next(tops)

    s, b = int(logits.shape[0]), int(logits.shape[1])
    # the S draws are already made: "classify" answers call d (the B samples, one call per
    # draw) with draw d's top classes, so the images stand in as their indices
    counts = knowledge.count_successes(classify, torch.arange(b), labels, draws=s, targets=targets,
                                             clean_predictions=reference, batch_size=b)
    return (counts.to(torch.float32) / s).to(logits.device)


_epsilon = epsilon_bound(optional=True, positive=True)


def _step_size(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
        raise InvalidParameter(f"expected {attribute.name} as a positive number or None (the default step), "
                               f"got {value!r}", key=attribute.name, got=value)


def _norm(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value not in ("linf", "l2"):
        raise InvalidParameter(f"expected norm 'linf', 'l2' or None (the game's), got {value!r}",
                               key="norm", got=value)


_targeting = targeting_among(("next", "least_likely"))


def _confidence(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise InvalidParameter(f"expected confidence ≥ 0, got {value!r}", key="confidence", got=value)


@attrs.frozen(kw_only=True)
class BPDAEOT(Adversary):
    """Whitebox BPDA + EOT adversary (Athalye et al., ICML 2018; seed 000 § 4.4).

    Offline (``prepare``), for each chosen source: ``restarts`` runs of projected
    gradient ascent of ``steps`` steps — L∞: x′ ← Π(x′ + α·sign(ḡ)); L2: x′ ← Π(x′ +
    α·ḡ/‖ḡ‖₂) — where ḡ is the mean over ``eot_samples`` draws of the loss gradient
    through the twin's ``surrogate_logits`` (:func:`eot_gradient`; one draw when the twin
    is deterministic) and Π projects onto the ε-ball and [0, 1] at every step, the random
    start included. Of the restarts, each sample keeps the one whose final point most
    often meets the goal over S surrogate draws (ties: the higher loss).

    Then the submissions: ``selection`` "first" submits the N crafted samples; "offline"
    crafts ``n_candidates`` and ranks them by p̂ from ``estimate_draws`` predictions of the
    twin (the adversary's own randomness, no query); "online" ranks them A*-style by p̂
    from ``estimate_draws`` Classify queries each. Estimates and gradient health are in
    the report; a zero, NaN or missing gradient is flagged there, never read as
    robustness.

    Args:
        method: "pgd" (default: the projected signed steps above) or "apgd" (APGD of
            Croce & Hein, ICML 2020, through the same twin with ``eot_samples`` EOT draws:
            :func:`evcsa.attacks.apgd`; AutoAttack's randomized version is ``loss="ce"`` and
            ``loss="dlr"`` with 20 draws, 100 steps).
        epsilon: ε (default: the game's; required when the game has none).
        norm: "linf" or "l2" (default: the game's).
        steps: gradient steps per restart (default 100).
        step_size: α (default 2.5·ε/steps, Madry et al.; with "apgd" the initial step,
            default 2ε as AutoAttack).
        eot_samples: draws per gradient for a randomized twin (default 30).
        restarts: runs per sample (default 1).
        random_start: start each run from a uniform point of the ε-ball (default True).
        loss: "ce" (cross-entropy on the surrogate's logits, default), "cw" (margin,
            "pgd" only) or "dlr" (Croce & Hein's DLR loss).
        confidence: κ of the "cw" margin.
        targeting: the target in targeted games: "next" (default) or "least_likely"
            (the twin's least likely class).
        selection: "first" (default), "offline" or "online".
        n_candidates: sources crafted (default N for "first", all of X_D otherwise).
        estimate_draws: draws per candidate for "offline"/"online" p̂ (default 100).
        rank_by: "estimate" or "lower_bound".
        alpha: 1 − the intervals' level.
        source_order: "given" (default) or "random" (the adversary's generator).
        round_to_grid: round x′ to the uint8 grid within ε.
        batch_size: images per gradient step (default 128).
        query_batch: images per Classify / predict call when estimating (default 10,000).

    Raises:
        InvalidParameter: bad values; at ``prepare``, no whitebox twin, no ε, an L0 game.
    """

    method: str = attrs.field(default="pgd", validator=one_of(METHODS))
    epsilon: float | None = attrs.field(default=None, validator=_epsilon)
    norm: str | None = attrs.field(default=None, validator=_norm)
    steps: int = attrs.field(default=100, validator=positive_int())
    step_size: float | None = attrs.field(default=None, validator=_step_size)
    eot_samples: int = attrs.field(default=30, validator=positive_int())
    restarts: int = attrs.field(default=1, validator=positive_int())
    random_start: bool = attrs.field(default=True, validator=is_bool)
    loss: str = attrs.field(default="ce", validator=one_of(("ce", "cw", "dlr")))
    confidence: float = attrs.field(default=0.0, validator=_confidence)
    targeting: str = attrs.field(default="next", validator=_targeting)
    selection: str = attrs.field(default="first", validator=one_of(SELECTIONS))
    n_candidates: int | None = attrs.field(default=None, validator=positive_int(optional=True))
    estimate_draws: int = attrs.field(default=100, validator=positive_int())
    rank_by: str = attrs.field(default="estimate", validator=one_of(RANKINGS))
    alpha: float = attrs.field(default=0.05, validator=probability_open)
    source_order: str = attrs.field(default="given", validator=one_of(SOURCE_ORDERS))
    round_to_grid: bool = attrs.field(default=False, validator=is_bool)
    batch_size: int = attrs.field(default=128, validator=positive_int())
    query_batch: int = attrs.field(default=10_000, validator=positive_int())

    #: ``play_candidates`` uses no coins: it ranks and submits the prepared candidates (with
    #: Classify queries at most), so against a deterministic classifier every game of a
    #: prepared series is the same game (:attr:`PreparedAdversary.play_randomized`).
    candidates_randomized = False

    # -- settings resolved against the game -----------------------------------------
    @property
    def knowledge_needed(self) -> str:
        return "whitebox"

    def check_rules(self, rules: Rules) -> None:
        """Also refuses an L0 game without ``norm=...`` and an unbounded game without
        ``epsilon=...``."""
        super().check_rules(rules)
        self._bound(rules)

    def _bound(self, knowledge: Knowledge | Rules) -> tuple[float, str]:
        norm = self.norm if self.norm is not None else knowledge.norm
        if norm not in ("linf", "l2"):
            raise InvalidParameter(f"expected an L∞ or L2 game (or norm=...), got norm {norm!r}", got=norm)
        eps = self.epsilon if self.epsilon is not None else knowledge.epsilon
        if eps is None:
            raise InvalidParameter("expected a distortion bound: the game has ε = None; pass epsilon=...")
        if knowledge.epsilon is not None and norm == knowledge.norm and eps > knowledge.epsilon:
            eps = float(knowledge.epsilon)
        return float(eps), norm

    def __attrs_post_init__(self) -> None:
        if self.method == "apgd" and self.loss == "cw":
            raise InvalidParameter("expected loss 'ce' or 'dlr' with method 'apgd', got 'cw'", key="loss", got="cw")

    def _twin(self, knowledge: Knowledge) -> Classifier:
        twin = knowledge.defense
        if knowledge.level != "whitebox" or twin is None:
            raise InvalidParameter(f"expected whitebox knowledge (a twin of the defense) for BPDAEOT, "
                                   f"got {knowledge.level}")
        return twin

    # -- crafting ------------------------------------------------------------------------
    def craft(self, knowledge: Knowledge, sources: np.ndarray) -> Candidates:
        """BPDA+EOT samples for ``sources`` through the twin (no oracle).

        Raises:
            InvalidParameter: no twin, no ε, an L0 norm, or a twin without a
                differentiable surrogate.
        """
        twin = self._twin(knowledge)
        eps, norm = self._bound(knowledge)
        warn_if_trivial(eps, norm, tuple(knowledge.image_shape), where=type(self).__name__)
        step = self.step_size if self.step_size is not None else 2.5 * eps / self.steps
        randomized = is_randomized(twin)
        samples = self.eot_samples if randomized else 1
        device = twin.device
        idx = torch.as_tensor(sources)
        x_all = knowledge.samples[idx].to(device)
        y_all = knowledge.labels[idx].to(device)
        targets = resolve_targets(self.targeting, twin, x_all, y_all) if knowledge.goal == "targeted" else None
        targeted = targets is not None
        labels_all = y_all if targets is None else targets
        outs, healths = [], []
        for start in range(0, x_all.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            x, labels = x_all[sl], labels_all[sl]
            monitor = GradientMonitor(x.shape[0])
            if self.method == "apgd":
                outs.append(apgd(twin, x, y_all[sl], target=labels if targeted else None, epsilon=eps, norm=norm,
                                 loss=self.loss, steps=self.steps, eot_draws=samples, restarts=self.restarts,
                                 step_size=self.step_size, random_start=self.random_start,
                                 batch_size=self.batch_size, generator=knowledge.generator,
                                 monitor=monitor).detach())
                healths.append(monitor.health())
                continue
            if self.loss == "dlr":
                loss_fn = apgd_loss("dlr", y_all[sl], labels if targeted else None)
            else:
                loss_fn = ascent_loss(labels, targeted, self.loss, self.confidence)
            reference = None
            if not targeted and knowledge.rules.needs_reference_predictions and self.restarts > 1:
                with torch.no_grad():  # C(x) for the selection by the game's rule, one draw per C(x′) draw
                    reference = torch.stack([twin.surrogate_logits(x).detach().argmax(dim=1)
                                             for _ in range(samples)])
            best = x.clone()
            best_hits = torch.full((x.shape[0],), -1.0, device=device)
            best_loss = torch.full((x.shape[0],), float("-inf"), device=device)
            for _ in range(self.restarts):
                x_adv = random_start(x, eps, norm, knowledge.generator) if self.random_start else x.clone()
                for _ in range(self.steps):
                    grad, _, _ = eot_gradient(twin, x_adv, loss_fn, samples, monitor=monitor)
                    if norm == "linf":
                        x_adv = x_adv + step * grad.sign()
                    else:
                        n = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
                        x_adv = x_adv + step * grad / n
                    x_adv = project(x_adv, x, eps, norm)
                with torch.no_grad():
                    draws = torch.stack([twin.surrogate_logits(x_adv).detach() for _ in range(samples)])
                if self.restarts == 1:  # nothing to choose from (the draws keep the twin's stream as it was)
                    best = x_adv
                    break
                hits = _hits(draws, knowledge, y_all[sl], labels if targeted else None, reference)
                final_loss = torch.stack([loss_fn(z) for z in draws]).mean(dim=0)
                better = (hits > best_hits) | ((hits == best_hits) & (final_loss > best_loss))
                best = torch.where(better.view(-1, 1, 1, 1), x_adv, best)
                best_hits = torch.where(better, hits, best_hits)
                best_loss = torch.where(better, final_loss, best_loss)
            outs.append(best.detach())
            healths.append(monitor.health())
        x_adv = fit_to_game(knowledge, x_all, torch.cat(outs), self.round_to_grid).cpu()
        health = GradientHealth.concat(healths)
        tgt = None if targets is None else targets.cpu().numpy().astype(np.int64)
        candidates = Candidates(sources=np.asarray(sources, dtype=np.int64), x_adv=x_adv, targets=tgt,
                                failed=np.zeros(len(sources), dtype=bool), health=health)
        return candidates

    def prepare(self, knowledge: Knowledge) -> PreparedAdversary:
        """Craft the candidates; with ``selection="offline"`` also estimate p̂ with the twin."""
        m = int(knowledge.samples.shape[0])
        default = knowledge.n_chosen if self.selection == "first" else m
        sources = choose_sources(knowledge, self.n_candidates, self.source_order, default)
        candidates = self.craft(knowledge, sources)
        if self.selection == "offline":
            twin = self._twin(knowledge)
            draws = self.estimate_draws if is_randomized(twin) else 1
            candidates = rate_on_twin(twin, candidates, knowledge, draws, self.alpha, self.query_batch)
        return PreparedAdversary(self, candidates, tuple(knowledge.image_shape), m)

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Prepare (if not prepared), select and submit."""
        return self.prepare(knowledge).play(oracles, knowledge)

    def play_candidates(self, candidates: Candidates, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Submit the crafted samples, ranked by p̂ when selecting."""
        notes: list[str] = []
        estimates = candidates.offline
        if self.selection == "online":
            estimates = estimate_online(oracles, candidates, knowledge, self.estimate_draws, alpha=self.alpha,
                                        query_batch=self.query_batch, notes=notes)
        ranked = self.selection != "first"
        order = rank(estimates if ranked else None, candidates.sources, knowledge.n_chosen, self.rank_by,
                     knowledge.freshness)
        done = submit(oracles, candidates, order, notes)
        if not candidates.health.ok:
            notes.append(f"gradient check: {candidates.health.summary()}")
        return AdversaryReport(adversary=type(self).__name__, sources=candidates.sources, targets=candidates.targets,
                               submitted=done, health=candidates.health, failed=candidates.failed,
                               estimates=estimates, rank_by=self.rank_by if ranked else None, notes=tuple(notes))
