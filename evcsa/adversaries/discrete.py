"""DiscreteSearch: the whitebox adversary for quantizing squeezers, searching the quantized
images reachable within ε directly, guided by the model's margin.

Why: BPDA (Athalye, Carlini & Wagner, ICML 2018, § 4.1) differentiates through a
quantizer as if it were the identity; against bit-depth reduction the gradient then
points at pixels whose move does not change the quantized image, and the attack stalls.
The classifier only ever sees Q(x′): for b-bit depth (Xu, Evans & Qi, NDSS 2018) each
pixel of x′ within ε of x reaches a contiguous range of levels l/(2^b − 1); for 1 bit at
ε = 0.3 L∞ exactly the pixels with x ∈ (0.2, 0.8] can take both levels (a value above
0.5 rounds to 1, Q = rint(x·(2^b − 1))/(2^b − 1)). The search runs over those level
images: a combinatorial problem of the kind that greedy local search with a tabu list
and restarts handles well (Glover, "Tabu Search — Part I", ORSA J. Computing 1989; the
same flip moves as the discrete attacks on binarized inputs, e.g. Papernot et al.'s
JSMA saliency, EuroS&P 2016 — here ranked by a first-order estimate of the margin change,
then checked exactly).

What it does, per natural sample x (all images of a batch in parallel):

1. Levels: for each value the reachable levels [l_min, l_max]; for each level the point
   x′ closest to x inside its rounding interval (kept four float32 ulps inside, and
   checked with the squeezer itself), within ε.
2. Search: from the quantization of a start, repeat ``steps`` times: take the gradient of
   the margin m = z_y − max_{j≠y} z_j (targeted: max_{j≠t} z_j − z_t) of the model behind
   the rest of the squeezer chain (BPDA through the rest) with respect to the level image;
   rank the moves (one level up or down, not tabu) by their first-order gain; evaluate
   exactly, in one batch, the block move of the best k pixels and the ``neighbors`` best
   single moves; take the best (improving or not: a tabu search), make its pixels tabu for
   ``tabu`` iterations, double k after an improving block move, halve it otherwise. Stop
   an image once m < −``confidence``.
3. Restarts: the first run starts from Q(x) — or, when ``combine`` is set, from the
   quantization of the BPDA+EOT sample, so the search only improves on it; the others
   from Q(x) with a random ``restart_fraction`` of the free pixels moved (the adversary's
   generator).
4. Union: with ``combine``, per sample the BPDA+EOT result is kept wherever it meets the
   goal on the twin and the search's does not (never worse than BPDA+EOT).

Cost per image and restart: ``steps`` × (one forward + backward and 1 + ``neighbors``
forwards) of the model, plus the BPDA+EOT run when combined. Its scope: a deterministic
:class:`~evcsa.defenses.FeatureSqueezing` twin whose squeezer chain starts with
:class:`~evcsa.defenses.BitDepth` (the part it can see and search; the rest of the chain,
e.g. a median, is differentiated through with BPDA), classifying the squeezed input,
without the joint detector. Anything else is refused at ``check`` / ``prepare``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch

from evcsa._validation import one_of
from evcsa.adversaries._common import (
    RANKINGS,
    SOURCE_ORDERS,
    AdversaryReport,
    Candidates,
    PreparedAdversary,
    choose_sources,
    positive_int,
    probability_open,
    rank,
    rate_on_twin,
    submit,
)
from evcsa.adversaries.base import Adversary
from evcsa.adversaries.bpda_eot import BPDAEOT
from evcsa.attacks.gradients import GradientHealth
from evcsa.attacks.registry import resolve_targets
from evcsa.defenses import BitDepth, FeatureSqueezing
from evcsa.defenses.base import is_randomized
from evcsa.defenses.bpda import straight_through
from evcsa.distances import warn_if_trivial
from evcsa.errors import InvalidParameter
from evcsa.judging import predict_labels

if TYPE_CHECKING:
    from evcsa.games.knowledge import Knowledge
    from evcsa.games.oracles import Oracles
    from evcsa.games.rules import Rules

__all__ = ["DiscreteSearch", "keep_the_better", "quantized_levels"]


def quantizer_chain(twin: Any) -> tuple[Any, list[Any], Any]:
    """(the BitDepth quantizer, the rest of the chain, the base classifier) of a twin the
    search can handle, or InvalidParameter saying why not."""
    if not isinstance(twin, FeatureSqueezing):
        raise InvalidParameter(f"expected a FeatureSqueezing twin (a quantizing squeezer) for DiscreteSearch, "
                               f"got {type(twin).__name__}", got=type(twin).__name__)
    if twin.classify_on != "squeezed" or twin.threshold is not None:
        raise InvalidParameter("expected FeatureSqueezing classifying the squeezed input without the joint "
                               "detector for DiscreteSearch, got classify_on="
                               f"{twin.classify_on!r}, threshold={twin.threshold!r}")
    if is_randomized(twin):
        raise InvalidParameter("expected a deterministic twin for DiscreteSearch (noise before the quantizer "
                               "makes the level image random), got a randomized one")
    squeezers = list(twin.squeezers)
    if not isinstance(squeezers[0], BitDepth):
        raise InvalidParameter(f"expected the squeezer chain to start with a bit-depth quantizer, got "
                               f"{squeezers[0].spec}", got=squeezers[0].spec)
    return squeezers[0], squeezers[1:], twin.base


def quantized_levels(x: torch.Tensor, bits: int, epsilon: float, quantize: Any, *, tolerance: float = 1e-6
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The levels each value of x can reach within ε (L∞) under b-bit depth, and the
    points that reach them.

    Args:
        x: float32 [B, C, H, W] in [0, 1].
        bits: b ≥ 1; the levels are l / (2^b − 1), l = 0 .. 2^b − 1.
        epsilon: ε ≥ 0, L∞.
        quantize: the squeezer's function (checked on every point).
        tolerance: the game's float slack on ε (default 1e-6): a point counts as within ε
            when |x′ − x| ≤ ε + tolerance, as the game checks it.

    Returns:
        (natural level int64 [B, C, H, W], l_min, l_max int64 [B, C, H, W], points float32
        [2^b, B, C, H, W]: for level l the value closest to x that quantizes to l, valid
        where l_min ≤ l ≤ l_max).
    """
    n_levels = 2 ** bits
    top = float(n_levels - 1)
    natural = torch.round(quantize(x) * top).to(torch.int64)
    points = torch.empty((n_levels, *x.shape), dtype=torch.float32, device=x.device)
    ok = torch.zeros((n_levels, *x.shape), dtype=torch.bool, device=x.device)
    for level in range(n_levels):
        lo, hi = (level - 0.5) / top, (level + 0.5) / top
        pad_lo, pad_hi = 4 * 1.2e-7 * max(abs(lo), 1.0), 4 * 1.2e-7 * max(abs(hi), 1.0)
        # the interval's own ends first (rint rounds half to even), then four ulps inside
        best = torch.zeros_like(x)
        found = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        for a, b in ((max(lo, 0.0), min(hi, 1.0)), (max(lo + pad_lo, 0.0), min(hi - pad_hi, 1.0))):
            p = x.clamp(min=a, max=b)
            good = ((p - x).abs() <= epsilon + tolerance) & \
                (torch.round(quantize(p) * top).to(torch.int64) == level) & ~found
            best = torch.where(good, p, best)
            found |= good
        points[level], ok[level] = best, found
    ok |= torch.arange(n_levels, device=x.device).view(-1, 1, 1, 1, 1) == natural[None]
    points = torch.where(torch.arange(n_levels, device=x.device).view(-1, 1, 1, 1, 1) == natural[None], x[None],
                         points)
    idx = torch.arange(n_levels, device=x.device).view(-1, 1, 1, 1, 1).expand_as(ok)
    big = n_levels + 1
    l_min = torch.where(ok, idx, torch.full_like(idx, big)).amin(dim=0)
    l_max = torch.where(ok, idx, torch.full_like(idx, -1)).amax(dim=0)
    # keep the reachable range contiguous around the natural level
    l_min, l_max = torch.minimum(l_min, natural), torch.maximum(l_max, natural)
    return natural, l_min, l_max, points


def keep_the_better(knowledge: Knowledge, twin: Any, x: torch.Tensor, labels: torch.Tensor,
                    targets: torch.Tensor | None, searched: torch.Tensor, started: torch.Tensor) -> torch.Tensor:
    """Per sample, the searched x′ unless only the starting one (BPDA+EOT's) meets the goal on
    the twin (deterministic: one draw), judged by the game's own rule
    (:meth:`Rules.count_successes`: a REJECTED answer is never a success, a targeted goal
    needs the target, the prediction reference compares with the twin's C(x))."""
    k = knowledge.num_classes

    def classify(images: torch.Tensor) -> torch.Tensor:
        return predict_labels(twin, images, k)

    reference = classify(x) if targets is None and knowledge.rules.needs_reference_predictions else None
    y = labels.cpu()
    t = None if targets is None else targets.cpu()
    ok_s = knowledge.count_successes(classify, searched, y, draws=1, targets=t, clean_predictions=reference) > 0
    ok_b = knowledge.count_successes(classify, started, y, draws=1, targets=t, clean_predictions=reference) > 0
    keep_b = (ok_b & ~ok_s).to(searched.device)
    return torch.where(keep_b.view(-1, 1, 1, 1), started, searched)


@attrs.frozen(kw_only=True)
class DiscreteSearch(Adversary):
    """Whitebox discrete search over the quantized images reachable within ε (module doc).

    Args:
        steps: search iterations per restart (default 100).
        restarts: runs per sample (default 2): the first from Q(start), the others perturbed.
        neighbors: single moves evaluated exactly per iteration (default 8).
        block: the largest block move, in pixels (default 64; starts at 8).
        tabu: iterations a moved pixel stays tabu (default 5).
        restart_fraction: share of the free pixels moved at a restart (default 0.2).
        confidence: stop an image once its margin is below −confidence (default 0.5).
        combine: a :class:`BPDAEOT` whose samples start the search and are kept per
            sample where they meet the goal and the search's do not; default None (start
            from x). ``combine=True`` means BPDAEOT with its defaults.
        targeting: the target in targeted games: "next" (default) or "least_likely".
        selection: "offline" (default: craft on all of X_D — or ``n_candidates`` — and
            submit the N that fool the twin first) or "first" (the first N sources).
        n_candidates: sources crafted (default as ``selection`` says).
        rank_by, alpha, source_order: as in :class:`BPDAEOT`.
        batch_size: images searched together (default 128).

    Raises:
        InvalidParameter: bad values; at ``check_rules`` a game that is not L∞ with an ε;
            at ``prepare`` a twin it cannot search (see the module doc).
    """

    steps: int = attrs.field(default=100, validator=positive_int())
    restarts: int = attrs.field(default=2, validator=positive_int())
    neighbors: int = attrs.field(default=8, validator=positive_int())
    block: int = attrs.field(default=64, validator=positive_int())
    tabu: int = attrs.field(default=5, validator=positive_int(0))
    restart_fraction: float = attrs.field(default=0.2, validator=probability_open)
    confidence: float = attrs.field(default=0.5)
    combine: Any = attrs.field(default=None)
    targeting: str = attrs.field(default="next", validator=one_of(("next", "least_likely")))
    selection: str = attrs.field(default="offline", validator=one_of(("offline", "first")))
    n_candidates: int | None = attrs.field(default=None, validator=positive_int(optional=True))
    rank_by: str = attrs.field(default="estimate", validator=one_of(RANKINGS))
    alpha: float = attrs.field(default=0.05, validator=probability_open)
    source_order: str = attrs.field(default="given", validator=one_of(SOURCE_ORDERS))
    batch_size: int = attrs.field(default=128, validator=positive_int())

    def __attrs_post_init__(self) -> None:
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, (int, float)) \
                or not 0 <= self.confidence < float("inf"):
            raise InvalidParameter(f"expected confidence ≥ 0, got {self.confidence!r}", key="confidence",
                                   got=self.confidence)
        if self.combine is not None and self.combine is not True and not callable(getattr(self.combine, "craft",
                                                                                          None)):
            raise InvalidParameter(f"expected combine as None, True or an adversary with craft() (BPDAEOT), got "
                                   f"{type(self.combine).__name__}")

    #: ``play_candidates`` uses no coins: it ranks and submits the prepared candidates (with
    #: Classify queries at most), so against a deterministic classifier every game of a
    #: prepared series is the same game (:attr:`PreparedAdversary.play_randomized`).
    candidates_randomized = False

    @property
    def knowledge_needed(self) -> str:
        return "whitebox"

    def check_rules(self, rules: Rules) -> None:
        """Also refuses a game that is not L∞ with a finite ε (the reachable levels need it)."""
        super().check_rules(rules)
        if rules.norm != "linf" or rules.epsilon is None:
            raise InvalidParameter(f"expected an L∞ game with an ε for DiscreteSearch, got norm {rules.norm!r}, "
                                   f"ε = {rules.epsilon!r}", norm=rules.norm, epsilon=rules.epsilon)

    def _combiner(self) -> Any:
        if self.combine is True:
            return BPDAEOT()
        return self.combine

    # -- the search ---------------------------------------------------------------------
    def _margin(self, base: Any, rest: list[Any], q: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Margin [B] of the classification path on level image q (and its gradient)."""
        qg = q.detach().clone().requires_grad_(grad)
        with torch.enable_grad() if grad else torch.no_grad():
            h = qg
            for s in rest:
                h = straight_through(h, s._squeeze(h.detach()))
            z = base.surrogate_logits(h) if grad else base.surrogate_logits(h).detach()
            if t is None:
                other = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
                m = z.gather(1, y[:, None]).squeeze(1) - other
            else:
                other = z.scatter(1, t[:, None], float("-inf")).amax(dim=1)
                m = other - z.gather(1, t[:, None]).squeeze(1)
            g = torch.autograd.grad(m.sum(), qg)[0] if grad else None
        return m.detach(), g

    def _search(self, base: Any, rest: list[Any], lev0: torch.Tensor, l_min: torch.Tensor, l_max: torch.Tensor,
                top: float, y: torch.Tensor, t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b = lev0.shape[0]
        flat = lev0[0].numel()
        lev = lev0.clone()
        m, _ = self._margin(base, rest, lev / top, y, t, grad=False)
        best_lev, best_m = lev.clone(), m.clone()
        tabu_until = torch.zeros((b, flat), dtype=torch.int64, device=lev.device)
        k = torch.full((b,), min(8, self.block), dtype=torch.int64, device=lev.device)
        for it in range(self.steps):
            active = (best_m >= -self.confidence).nonzero().flatten()
            if active.numel() == 0:
                break
            la, lmin_a, lmax_a = lev[active], l_min[active], l_max[active]
            _, g_or_none = self._margin(base, rest, la / top, y[active], None if t is None else t[active], grad=True)
            assert g_or_none is not None  # grad=True always gives the gradient
            g = g_or_none.flatten(1)
            cur = la.flatten(1)
            up_ok, down_ok = cur < lmax_a.flatten(1), cur > lmin_a.flatten(1)
            gain_up = torch.where(up_ok, -g, torch.full_like(g, float("-inf")))
            gain_down = torch.where(down_ok, g, torch.full_like(g, float("-inf")))
            gain = torch.maximum(gain_up, gain_down)
            step = torch.where(gain_up >= gain_down, 1, -1)
            gain = torch.where(tabu_until[active] > it, torch.full_like(gain, float("-inf")), gain)
            width = min(flat, max(self.neighbors, self.block))
            gains, order = gain.topk(width, dim=1)
            valid = torch.isfinite(gains)
            a = active.numel()
            # proposals: 0 = block of the k best, 1.. = single moves
            n_single = min(self.neighbors, width)
            props = cur[:, None, :].repeat(1, 1 + n_single, 1)
            ka = k[active]
            in_block = (torch.arange(width, device=lev.device)[None, :] < ka[:, None]) & valid
            delta = torch.zeros_like(cur)
            delta.scatter_(1, order, torch.where(in_block, step.gather(1, order), 0))
            props[:, 0] += delta
            for j in range(n_single):
                col = order[:, j]
                mv = torch.where(valid[:, j], step.gather(1, col[:, None]).squeeze(1), 0)
                props[torch.arange(a), 1 + j, col] += mv
            q = (props.reshape(a * (1 + n_single), *lev.shape[1:]).to(torch.float32)) / top
            rep = lambda v: v.repeat_interleave(1 + n_single)  # noqa: E731
            pm, _ = self._margin(base, rest, q, rep(y[active]), None if t is None else rep(t[active]), grad=False)
            pm = pm.view(a, 1 + n_single)
            moved = (props != cur[:, None, :]).any(dim=2)
            pm = torch.where(moved, pm, torch.full_like(pm, float("inf")))
            choice = pm.argmin(dim=1)
            new_m = pm[torch.arange(a), choice]
            can = torch.isfinite(new_m)
            chosen = props[torch.arange(a), choice]
            improved = new_m < m[active]
            # accept the best neighbour (tabu search: also when it does not improve)
            changed = (chosen != cur) & can[:, None]
            new_cur = torch.where(can[:, None], chosen, cur)
            tabu_rows = tabu_until[active]
            tabu_rows = torch.where(changed, torch.full_like(tabu_rows, it + 1 + self.tabu), tabu_rows)
            tabu_until[active] = tabu_rows
            lev[active] = new_cur.view(a, *lev.shape[1:])
            m[active] = torch.where(can, new_m, m[active])
            block_won = (choice == 0) & improved
            k[active] = torch.where(block_won, (ka * 2).clamp(max=self.block), (ka // 2).clamp(min=1))
            better = m < best_m
            best_lev = torch.where(better.view(-1, 1, 1, 1), lev, best_lev)
            best_m = torch.where(better, m, best_m)
        return best_lev, best_m

    def craft(self, knowledge: Knowledge, sources: np.ndarray) -> Candidates:
        """Search samples for ``sources`` through the twin (no oracle).

        Raises:
            InvalidParameter: no twin, a twin it cannot search, a game without L∞ ε.
        """
        twin = knowledge.defense
        if knowledge.level != "whitebox" or twin is None:
            raise InvalidParameter(f"expected whitebox knowledge (a twin of the defense) for DiscreteSearch, "
                                   f"got {knowledge.level}")
        if knowledge.norm != "linf" or knowledge.epsilon is None:
            raise InvalidParameter(f"expected an L∞ game with an ε for DiscreteSearch, got {knowledge.norm!r}, "
                                   f"ε = {knowledge.epsilon!r}")
        quantizer, rest, base = quantizer_chain(twin)
        eps = float(knowledge.epsilon)
        warn_if_trivial(eps, "linf", tuple(knowledge.image_shape), where="DiscreteSearch")
        device = twin.device
        idx = torch.as_tensor(sources)
        x_all = knowledge.samples[idx].to(device)
        y_all = knowledge.labels[idx].to(device)
        targets = resolve_targets(self.targeting, twin, x_all, y_all) if knowledge.goal == "targeted" else None
        combiner = self._combiner()
        starts = x_all
        combined = None
        if combiner is not None:
            combined = combiner.craft(knowledge, sources)
            starts = combined.x_adv.to(device)
        top = float(2 ** quantizer.bits - 1)
        outs, margins = [], []
        for lo in range(0, x_all.shape[0], self.batch_size):
            sl = slice(lo, lo + self.batch_size)
            x, yb = x_all[sl], y_all[sl]
            tb = None if targets is None else targets[sl]
            natural, l_min, l_max, points = quantized_levels(x, quantizer.bits, eps, quantizer._squeeze,
                                                             tolerance=float(knowledge.tolerance))
            start_lev = torch.round(quantizer._squeeze(starts[sl]) * top).to(torch.int64)
            start_lev = torch.minimum(torch.maximum(start_lev, l_min), l_max)
            best_lev, best_m = None, None
            for r in range(self.restarts):
                if r == 0:
                    lev0 = start_lev
                else:
                    u = torch.rand(natural.shape, generator=knowledge.generator).to(device)
                    span = (l_max - l_min + 1).to(torch.float32)
                    rnd = l_min + (torch.rand(natural.shape, generator=knowledge.generator).to(device) * span
                                   ).floor().to(torch.int64)
                    rnd = torch.minimum(rnd, l_max)
                    lev0 = torch.where(u < self.restart_fraction, rnd, natural)
                lev, m = self._search(base, rest, lev0, l_min, l_max, top, yb, tb)
                if best_lev is None or best_m is None:
                    best_lev, best_m = lev, m
                else:
                    better = m < best_m
                    best_lev = torch.where(better.view(-1, 1, 1, 1), lev, best_lev)
                    best_m = torch.where(better, m, best_m)
                if bool((best_m < -self.confidence).all()):
                    break
            assert best_lev is not None and best_m is not None  # restarts ≥ 1: at least one search ran
            x_adv = points.gather(0, best_lev[None]).squeeze(0)
            outs.append(x_adv)
            margins.append(best_m)
        x_adv = torch.cat(outs).clamp(0.0, 1.0)
        if combined is not None:
            x_adv = keep_the_better(knowledge, twin, x_all, y_all, targets, x_adv, starts)
        n = len(sources)
        health = combined.health if combined is not None else GradientHealth.clean(n)
        tgt = targets.cpu().numpy().astype(np.int64) if targets is not None else None
        return Candidates(sources=np.asarray(sources, dtype=np.int64), x_adv=x_adv.detach().cpu(), targets=tgt,
                          failed=np.zeros(n, dtype=bool), health=health)

    def prepare(self, knowledge: Knowledge) -> PreparedAdversary:
        """Craft the candidates; with ``selection="offline"`` rank them by the twin's verdict."""
        m = int(knowledge.samples.shape[0])
        default = knowledge.n_chosen if self.selection == "first" else m
        sources = choose_sources(knowledge, self.n_candidates, self.source_order, default)
        candidates = self.craft(knowledge, sources)
        if self.selection == "offline":
            candidates = rate_on_twin(knowledge.defense, candidates, knowledge, 1, self.alpha)
        return PreparedAdversary(self, candidates, tuple(knowledge.image_shape), m)

    def play(self, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Prepare (if not prepared), select and submit."""
        return self.prepare(knowledge).play(oracles, knowledge)

    def play_candidates(self, candidates: Candidates, oracles: Oracles, knowledge: Knowledge) -> AdversaryReport:
        """Submit the searched samples, those fooling the twin first when selecting."""
        notes: list[str] = []
        estimates = candidates.offline
        ranked = self.selection != "first"
        order = rank(estimates if ranked else None, candidates.sources, knowledge.n_chosen, self.rank_by,
                     knowledge.freshness)
        done = submit(oracles, candidates, order, notes)
        return AdversaryReport(adversary=type(self).__name__, sources=candidates.sources, targets=candidates.targets,
                               submitted=done, health=candidates.health, failed=candidates.failed,
                               estimates=estimates, rank_by=self.rank_by if ranked else None, notes=tuple(notes))
