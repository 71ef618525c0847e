"""Checks that say when an evaluation cannot be trusted, each a named warning with what to do.

From the field's published checklists: Carlini, Athalye, Papernot, Brendel, Rauber,
Tsipras, Goodfellow, Madry & Kurakin, *On Evaluating Adversarial Robustness* (2019,
arXiv:1902.06705; § 5.2 "verify iterative attacks perform better than single-step", "verify
that unbounded attacks reach 100 % success", "compare with transfer and gradient-free
attacks", "increase the iterations and verify the success stops rising", § 5.4 "for
randomized defenses apply EOT") and Pintor, Demetrio, Sotgiu, Melis, Demontis & Biggio,
*Indicators of Attack Failure: Debugging and Improving Optimization of Adversarial
Examples* (NeurIPS 2022; the indicators "silent gradients", "unconstrained attack
failure", "transfer attack beats the attack", "non-converging attack"):

===========================  =====================================================================
name                         fires when
===========================  =====================================================================
gradient-health              the input gradients through the defense are zero, NaN/inf or missing
                             (the gradient probe, or any sample of a gradient attack:
                             :class:`~evcsa.attacks.GradientHealth`)
unbounded-attack             the whitebox attack without a distortion bound does not reach ≈ 100 %
                             (mean fresh-key success probability < :data:`UNBOUNDED_TARGET`)
transfer-beats-whitebox      a graybox transfer or a gradient-free search succeeds more often, per
                             sample, than the strongest whitebox gradient attack
not-converged                the whitebox attack at 2× steps (or 2× EOT draws) succeeds more often
                             than at 1×: it had not converged
twin-randomness              the defense's whitebox twin breaks the twin contract, or twins from
                             independent keys draw the same randomness (the noise does not come
                             from the keys: torch's global generator, a fixed seed)
===========================  =====================================================================

Each check returns a :class:`CheckResult` ("warning", "passed" or "skipped" with the
reason); a warning is also issued as an :class:`~evcsa.errors.EvaluationWarning` by
:func:`evcsa.evaluate`. The statistical checks compare per-sample success probabilities
of the same natural samples (paired), each estimated from fresh-key classifications, and
fire only when the difference exceeds its margin and the one-sided 97.5 % lower bound of a
t-interval over the samples is above zero (Design: the intervals for comparisons are over
the samples, the clusters).
"""

from __future__ import annotations

import copy
import math
import random
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import attrs
import numpy as np
import torch
from scipy import stats

from evcsa.defenses.base import continuous_output, check_twin_contract, is_randomized
from evcsa.errors import InvalidParameter
from evcsa.randomness import DerivedKeys

if TYPE_CHECKING:
    from evcsa.attacks.gradients import GradientHealth
    from evcsa.evaluation.suite import GradientProbe

__all__ = ["CHECKS", "CONVERGENCE_MARGIN", "TRANSFER_MARGIN", "UNBOUNDED_TARGET", "CheckResult", "PairedGain",
           "check_convergence", "check_gradients", "check_transfer", "check_twin_randomness", "check_unbounded",
           "paired_gain"]

#: The unbounded-attack check fires below this mean success probability (Carlini et al.:
#: "100 %"; the slack absorbs the fresh-key noise of a randomized defense).
UNBOUNDED_TARGET = 0.95
#: transfer-beats-whitebox fires when a graybox or search member leads by at least this much.
TRANSFER_MARGIN = 0.05
#: not-converged fires when the 2× rerun gains at least this much.
CONVERGENCE_MARGIN = 0.02

_SOURCES = {
    "carlini": "Carlini et al. 2019, On Evaluating Adversarial Robustness",
    "pintor": "Pintor et al. 2022, Indicators of Attack Failure",
}

#: name → (title, source, what to do when it fires).
CHECKS: dict[str, tuple[str, str, str]] = {
    "gradient-health": (
        "gradients through the defense are zero, non-finite or missing",
        f"{_SOURCES['carlini']} § 5.2 (obfuscated gradients); {_SOURCES['pintor']} (silent gradients); "
        "Athalye et al. 2018",
        "the whitebox numbers do not measure robustness for the flagged samples: give the defense a "
        "surrogate_logits whose non-differentiable steps are replaced by their BPDA approximation "
        "(evcsa.defenses.bpda.bpda / straight_through: forward through the step, identity backward), take the "
        "attacked scores before any saturating layer (a final softmax, a large logit scale), and rerun"),
    "unbounded-attack": (
        "the unbounded whitebox attack does not reach ≈ 100 %",
        f"{_SOURCES['carlini']} § 5.2 (unbounded attacks must succeed); {_SOURCES['pintor']} "
        "(unconstrained attack failure)",
        "with no distortion bound every input can be turned into another class's image, so a failing attack is "
        "broken, not the defense strong: check the surrogate's gradients (a masked or wrong BPDA), the loss "
        "(logits, not probabilities) and the step size; fix them and rerun"),
    "transfer-beats-whitebox": (
        "a graybox transfer or a gradient-free search beats the whitebox attack",
        f"{_SOURCES['carlini']} § 5.2 (compare with transfer and gradient-free attacks); {_SOURCES['pintor']} "
        "(transfer attack beats the attack)",
        "the whitebox attack knows strictly more and should do at least as well: its gradients are masked or its "
        "approximation (BPDA) points the wrong way for this defense; write a better surrogate_logits (or a "
        "defense-specific attack) and rerun; until then read the worst case from the ensemble only"),
    "not-converged": (
        "success still rises with more steps or more EOT draws",
        f"{_SOURCES['carlini']} § 5.2 (increase iterations until the success stops rising), § 5.4 (EOT); "
        f"{_SOURCES['pintor']} (non-converging attack)",
        "the attack had not converged: the advantage is a lower bound of what the budget buys; raise "
        "whitebox_steps and eot_draws in the budget (the report's 2× numbers show by how much) and rerun"),
    "twin-randomness": (
        "the twin's randomness is not independent of the game's",
        "seed 000 § 3 (whitebox knowledge: the defense's parameters, never its randomness); "
        "docs/writing-a-defense.md (the twin contract)",
        "draw every random choice from the key source given to with_keys(keys) (evcsa.randomness.keyed_uniform, "
        "keyed_integers; one fresh key per classification), never from torch's or numpy's global generator or a "
        "fixed seed, and return a new defense that holds none of the defense's key sources "
        "(evcsa.testing.check_twin checks it)"),
}


@attrs.frozen(kw_only=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: a key of :data:`CHECKS`.
        status: "warning" (it fired), "passed" or "skipped".
        finding: what was measured, in one or two sentences.
        values: the numbers behind it (JSON-ready).
    """

    name: str
    status: str
    finding: str
    values: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.name not in CHECKS:
            raise InvalidParameter(f"expected a check in {tuple(CHECKS)}, got {self.name!r}", got=self.name)
        if self.status not in ("warning", "passed", "skipped"):
            raise InvalidParameter(f"expected status 'warning', 'passed' or 'skipped', got {self.status!r}")

    @property
    def fired(self) -> bool:
        """Whether the check fired (a warning)."""
        return self.status == "warning"

    @property
    def title(self) -> str:
        return CHECKS[self.name][0]

    @property
    def source(self) -> str:
        return CHECKS[self.name][1]

    @property
    def advice(self) -> str:
        """What to do when it fires."""
        return CHECKS[self.name][2]

    def line(self) -> str:
        """One line for the terminal: ``WARNING name: finding`` or ``ok name``."""
        tag = {"warning": "WARNING", "passed": "ok", "skipped": "skipped"}[self.status]
        return f"{tag} {self.name}: {self.finding}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "title": self.title, "finding": self.finding,
                "advice": self.advice if self.fired else None, "source": self.source, "values": dict(self.values)}


@attrs.frozen(kw_only=True)
class PairedGain:
    """The mean per-sample gain d̄ = mean(bᵢ − aᵢ) of b over a on the same samples, with its
    two-sided 95 % t-interval over the samples (``low``, ``high``; ±0 for n = 1)."""

    mean: float
    low: float
    high: float
    samples: int

    def significant(self, margin: float) -> bool:
        """d̄ ≥ margin and the interval's low end (a one-sided 97.5 % bound) above 0."""
        return self.mean >= margin and self.low > 0.0

    def text(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_gain(a: Any, b: Any) -> PairedGain:
    """The gain of per-sample success probabilities ``b`` over ``a`` (same samples, same
    order), with a t-interval over the samples (the samples are the clusters).

    Args:
        a, b: float [n] in [0, 1], n ≥ 1.

    Raises:
        InvalidParameter: different lengths or no sample.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size != b.size or a.size == 0:
        raise InvalidParameter(f"expected two equal-length non-empty arrays of probabilities, got {a.size} and "
                               f"{b.size}")
    d = b - a
    mean = float(d.mean())
    if d.size < 2:
        return PairedGain(mean=mean, low=mean, high=mean, samples=int(d.size))
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(stats.t.ppf(0.975, d.size - 1)) * se
    return PairedGain(mean=mean, low=mean - half, high=mean + half, samples=int(d.size))


# -- the checks -----------------------------------------------------------------------------

def check_gradients(probe: GradientProbe, healths: Mapping[str, GradientHealth]) -> CheckResult:
    """gradient-health: the gradient probe of the defense's surrogate and the gradient health
    of every gradient attack the suite ran.

    Args:
        probe: the suite's :class:`~evcsa.evaluation.suite.GradientProbe`.
        healths: member label → :class:`~evcsa.attacks.GradientHealth` of its crafting.
    """
    flagged = {label: h for label, h in healths.items() if len(h) and not h.ok}
    values = {"probe": probe.status, "flagged": {k: int(h.flagged.sum()) for k, h in flagged.items()},
              "samples": {k: len(h) for k, h in healths.items()}}
    if probe.status == "none" and not flagged:
        return CheckResult(name="gradient-health", status="skipped",
                           finding=f"no gradient attack through the defense ({probe.detail}); the graybox attacks' "
                                   "gradients are the undefended model's", values=values)
    if probe.status != "ok" or flagged:
        parts = [] if probe.status == "ok" else [f"probe: {probe.detail}"]
        parts += [f"{label}: {h.summary()}" for label, h in flagged.items()]
        return CheckResult(name="gradient-health", status="warning", finding="; ".join(parts), values=values)
    total = sum(len(h) for h in healths.values())
    return CheckResult(name="gradient-health", status="passed",
                       finding=f"{probe.detail}; no sample flagged in {len(healths)} gradient attack(s) "
                               f"({total} samples)", values=values)


def check_unbounded(success: Any, *, label: str, epsilon: float | None = None, reason: str | None = None
                    ) -> CheckResult:
    """unbounded-attack: the whitebox attack at the trivial bound (every image within reach).

    Args:
        success: float [n], the fresh-key success probability of each unbounded sample, or
            None when the check could not run (``reason`` says why).
        label: the attack, in words.
        epsilon: the bound it ran at (the norm's trivial bound).
    """
    if success is None:
        return CheckResult(name="unbounded-attack", status="skipped", finding=reason or "not run")
    p = np.asarray(success, dtype=np.float64)
    mean = float(p.mean())
    below = int((p < 0.5).sum())
    values = {"mean": mean, "samples": int(p.size), "below_half": below, "target": UNBOUNDED_TARGET,
              "epsilon": epsilon}
    finding = (f"{label} at ε = {epsilon:g} (every image within reach) succeeds with mean probability {mean:.3f} "
               f"on {p.size} samples ({below} under 1/2)")
    if mean < UNBOUNDED_TARGET:
        return CheckResult(name="unbounded-attack", status="warning", finding=finding + f", below {UNBOUNDED_TARGET}",
                           values=values)
    return CheckResult(name="unbounded-attack", status="passed", finding=finding, values=values)


def check_transfer(whitebox: Mapping[str, Any], others: Mapping[str, Any], *, reason: str | None = None
                   ) -> CheckResult:
    """transfer-beats-whitebox: each graybox transfer and gradient-free search against the
    strongest whitebox gradient attack, per sample (paired).

    Args:
        whitebox: whitebox gradient member label → float [M] per-sample success probability.
        others: graybox / search member label → float [M], the same samples in the same order.
        reason: why there is no whitebox gradient attack (then the check is skipped).
    """
    if not whitebox:
        return CheckResult(name="transfer-beats-whitebox", status="skipped",
                           finding=reason or "no whitebox gradient attack in the suite")
    best = max(whitebox, key=lambda k: float(np.mean(whitebox[k])))
    gains = {label: paired_gain(whitebox[best], p) for label, p in others.items()}
    values = {"whitebox": best, "whitebox_mean": float(np.mean(whitebox[best])),
              "gains": {k: {"mean": g.mean, "low": g.low, "high": g.high} for k, g in gains.items()},
              "margin": TRANSFER_MARGIN}
    beaten = {k: g for k, g in gains.items() if g.significant(TRANSFER_MARGIN)}
    text = ", ".join(f"{k} {g.text()}" for k, g in gains.items())
    if beaten:
        worst = max(beaten, key=lambda k: beaten[k].mean)
        return CheckResult(name="transfer-beats-whitebox", status="warning",
                           finding=f"{worst} succeeds {beaten[worst].mean:+.3f} more often per sample than {best} "
                                   f"(mean {values['whitebox_mean']:.3f}); per-sample gains over {best} [95 %]: "
                                   f"{text}", values=values)
    return CheckResult(name="transfer-beats-whitebox", status="passed",
                       finding=f"no graybox or search member beats {best} (mean {values['whitebox_mean']:.3f}) by "
                               f"{TRANSFER_MARGIN} or more; per-sample gains over it [95 %]: {text}", values=values)


def check_convergence(label: str, base: Any, reruns: Mapping[str, Any], *, reason: str | None = None
                      ) -> CheckResult:
    """not-converged: the whitebox attack rerun at 2× steps (and 2× EOT draws) on the same
    samples, against its 1× run.

    Args:
        label: the attack rerun.
        base: float [n], the 1× per-sample success probabilities.
        reruns: "2× steps" / "2× EOT draws" → float [n] of the reruns.
        reason: why it was not run (then skipped).
    """
    if base is None or not reruns:
        return CheckResult(name="not-converged", status="skipped", finding=reason or "not run")
    gains = {k: paired_gain(base, p) for k, p in reruns.items()}
    values = {"attack": label, "base_mean": float(np.mean(base)),
              "gains": {k: {"mean": g.mean, "low": g.low, "high": g.high} for k, g in gains.items()},
              "margin": CONVERGENCE_MARGIN}
    text = ", ".join(f"{k} {g.text()}" for k, g in gains.items())
    rising = {k: g for k, g in gains.items() if g.significant(CONVERGENCE_MARGIN)}
    if rising:
        return CheckResult(name="not-converged", status="warning",
                           finding=f"{label} (mean success {values['base_mean']:.3f}) still gains with "
                                   f"{' and '.join(rising)}: {text}", values=values)
    return CheckResult(name="not-converged", status="passed",
                       finding=f"{label} (mean success {values['base_mean']:.3f}) gains less than "
                               f"{CONVERGENCE_MARGIN} when rerun: {text}", values=values)


def _outputs(classifier: Any, probe: torch.Tensor) -> torch.Tensor | None:
    return continuous_output(classifier, probe)


def check_twin_randomness(defense: Any, probe: Any) -> CheckResult:
    """twin-randomness: the twin contract (:func:`~evcsa.defenses.base.check_twin_contract`:
    a distinct twin, holding none of the defense's key sources, not drawing its noise), and
    independence: two twins from independent key sources, each drawn with torch's, numpy's
    and Python's global generators in the same state, must draw different outputs — equal
    outputs mean the randomness comes from somewhere else than the keys (a global
    generator, a fixed seed), which the game's re-keying and the adversary share.

    Runs on a deep copy where the defense can be copied (its own key stream is untouched).

    Args:
        defense: the defense under evaluation.
        probe: float32 [B, C, H, W] in [0, 1], a few natural images.
    """
    if not is_randomized(defense):
        return CheckResult(name="twin-randomness", status="skipped",
                           finding="deterministic defense: no randomness to share")
    try:
        subject = copy.deepcopy(defense)
    except Exception:  # noqa: BLE001 - an uncopyable defense is checked in place
        subject = defense
    probe = torch.as_tensor(probe)
    try:
        check_twin_contract(subject, probe)
    except InvalidParameter as exc:
        return CheckResult(name="twin-randomness", status="warning",
                           finding=f"the twin contract fails, so the game refuses whitebox knowledge (the evaluation "
                                   f"ran graybox): {exc.message}", values={"contract": False})
    outputs = []
    for label in ("evcsa/twin-independence a", "evcsa/twin-independence b"):
        twin = subject.with_keys(DerivedKeys(bytes(32), label))
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            random.seed(0)
            np.random.seed(0)
            try:
                outputs.append(_outputs(twin, probe))
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
    a, b = outputs
    if a is None or b is None:
        return CheckResult(name="twin-randomness", status="passed",
                           finding="the twin contract holds; independence not tested (the defense offers neither "
                                   "surrogate_logits nor predict_proba to compare)", values={"contract": True})
    if torch.equal(a, b):
        return CheckResult(name="twin-randomness", status="warning",
                           finding="twins from two independent key sources drew identical outputs (with the global "
                                   "generators in the same state): the defense's randomness does not come from its "
                                   "keys, so the adversary's twin and the game's classifier share it",
                           values={"contract": True, "independent": False})
    return CheckResult(name="twin-randomness", status="passed",
                       finding="the twin contract holds, and twins from independent keys draw different outputs "
                               "under the same global generator state", values={"contract": True,
                                                                                 "independent": True})


def summarize(results: Sequence[CheckResult]) -> str:
    """"5 checks: 4 passed, 1 warning (not-converged)"."""
    warned = [r.name for r in results if r.fired]
    passed = sum(r.status == "passed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    parts = [f"{passed} passed"]
    if warned:
        parts.append(f"{len(warned)} warning{'s' if len(warned) > 1 else ''} ({', '.join(warned)})")
    if skipped:
        parts.append(f"{skipped} skipped")
    return f"{len(results)} checks: " + ", ".join(parts)
