"""Adversaries: strategies that play the EV-CSA game.

- :class:`Adversary` — the base class: optional ``prepare(knowledge)`` (offline), abstract
  ``play(oracles, knowledge)`` (online).
- :class:`GrayboxTransfer` — craft on the undefended model, submit (seed 000 § 4.4).
- :class:`GreedyAStar` — craft candidates, estimate p̂ with Classify, submit the top N
  (seed 002 § 4.3, Eq. 6).
- :class:`DiscreteSearch` — whitebox search over the quantized images reachable within ε
  (bit-depth squeezers), guided by the model's margin; with BPDA+EOT as its start.
- :class:`BPDAEOT` — whitebox: gradients through the defense twin with BPDA and EOT
  (Athalye et al., ICML 2018; seed 000 § 4.4).

Their ``play`` returns an :class:`AdversaryReport` (gradient health, p̂ with intervals),
kept as ``GameResult.report``.
"""

from evcsa.adversaries._common import (RANKINGS, AdversaryReport, Candidates, PreparedAdversary, SuccessEstimates,
                                      rate_on_twin, submit)
from evcsa.adversaries.base import Adversary
from evcsa.adversaries.bpda_eot import BPDAEOT, eot_gradient
from evcsa.adversaries.discrete import DiscreteSearch
from evcsa.adversaries.graybox import GrayboxTransfer
from evcsa.adversaries.greedy import AdaptiveSampling, GreedyAStar, estimate_adaptive, estimate_online

__all__ = [
    "AdaptiveSampling",
    "Adversary",
    "AdversaryReport",
    "BPDAEOT",
    "Candidates",
    "DiscreteSearch",
    "GrayboxTransfer",
    "GreedyAStar",
    "PreparedAdversary",
    "RANKINGS",
    "SuccessEstimates",
    "eot_gradient",
    "estimate_adaptive",
    "estimate_online",
    "rate_on_twin",
    "submit",
]
