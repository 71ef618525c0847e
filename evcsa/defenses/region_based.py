"""Region-Based Classification: majority vote over samples from a hypercube around x.

Source: Cao & Gong, "Mitigating Evasion Attacks to Deep Neural Networks via Region-based
Classification", ACSAC 2017 — the classifier samples m = 10,000 points uniformly from the
hypercube of radius r centred at the input, clipped to the pixel range, and returns the
label most of them get; r is the largest radius whose accuracy on legitimate validation
data stays within a small tolerance of the undefended model's (searched in steps; DEEPSEC:
MNIST up to 0.3, CIFAR-10 up to 0.1, step 0.01, tolerance 1 point). Seed 000 § 4.2.

Known attacks: EOT over the hypercube samples (Athalye, Engstrom, Ilyas & Kwok, ICML
2018) and BPDA+EOT (Athalye, Carlini & Wagner, ICML 2018), as evaluated in seed 000 § 5;
high-confidence attacks (Carlini–Wagner with large κ) that push the sample far enough from
the boundary that most of the hypercube is misclassified (Cao & Gong discuss this).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from evcsa._validation import as_images, as_labels, check_delta, check_positive_int
from evcsa.defenses.base import REJECTED, Classifier, Defense, ModelClassifier
from evcsa.defenses.randomized_squeezing import check_keys
from evcsa.errors import InvalidParameter
from evcsa.randomness import KeySource, keyed_uniform

__all__ = ["RadiusSelection", "RegionBasedClassification", "select_radius"]


class RegionBasedClassification(Defense):
    """Region-Based Classification (Cao & Gong 2017; seed 000 § 4.2).

    ``predict(x)``: one fresh key per call; for each image, ``n_samples`` points
    ``clip(x + u, 0, 1)`` with u uniform in [−r, r] per pixel and channel
    (:func:`~evcsa.randomness.keyed_uniform`; sample s of image i is keystream item
    ``i·n_samples + s``), classified by the wrapped classifier; the label with the most
    votes wins, **ties going to the lowest label**. Samples are drawn and classified
    ``batch_size`` at a time, so the 10,000 samples never sit in memory at once. If the
    wrapped classifier rejects (:data:`REJECTED`), rejections are a vote of their own that
    wins only with strictly more votes than every class.

    One surrogate draw (:meth:`surrogate_logits`) is ``surrogate_samples`` fresh hypercube
    samples per image (default 1): the log of their mean softmax, differentiable through
    the addition and the clip. An EOT attacker averages over many draws.

    Args:
        model: the classifier to defend.
        radius: r in [0, 1] on the [0, 1] pixel scale (see :func:`select_radius`).
        n_samples: samples per classification (default 10,000).
        keys: the :class:`~evcsa.randomness.KeySource` (None: OS entropy).
        surrogate_samples: samples per surrogate draw (default 1).
        batch_size: samples per forward pass (default 500).

    Raises:
        InvalidParameter: bad radius, counts or keys.
    """

    randomized = True

    def __init__(self, model: Classifier | torch.nn.Module, radius: float, n_samples: int = 10_000,
                 keys: KeySource | None = None, *, surrogate_samples: int = 1, batch_size: int = 500) -> None:
        super().__init__(model)
        self.radius = check_delta(radius, "radius")
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.keys = check_keys(keys)
        self.surrogate_samples = check_positive_int(surrogate_samples, "surrogate_samples")
        self.batch_size = check_positive_int(batch_size, "batch_size")

    def with_keys(self, keys: KeySource) -> RegionBasedClassification:
        """A twin with the same parameters drawing from ``keys``."""
        keys = check_keys(keys)
        base = self._twin_base(keys)
        return RegionBasedClassification(base, self.radius, self.n_samples, keys,
                                         surrogate_samples=self.surrogate_samples, batch_size=self.batch_size)

    def votes(self, x: Any) -> torch.Tensor:
        """Vote counts int64 [B, K + 1] for one fresh key (column K counts rejections).

        Raises:
            InvalidParameter: malformed ``x``.
        """
        x = as_images(x, device=self.device)
        key = self.keys.next_key()
        b = x.shape[0]
        k = self._class_count(x)
        counts = torch.zeros(b * (k + 1), dtype=torch.int64, device=x.device)
        total = b * self.n_samples
        for g0 in range(0, total, self.batch_size):
            g1 = min(total, g0 + self.batch_size)
            owner = torch.arange(g0, g1, device=x.device) // self.n_samples
            noise = keyed_uniform(key, (g1 - g0, *x.shape[1:]), self.radius, first_item=g0).to(x.device)
            samples = noise.add_(x[owner]).clamp_(0.0, 1.0)
            labels = self.base.predict(samples).to(x.device, torch.int64)
            labels = torch.where(labels == REJECTED, torch.full_like(labels, k), labels)
            counts.index_add_(0, owner * (k + 1) + labels, torch.ones_like(labels))
        return counts.view(b, k + 1)

    def _class_count(self, x: torch.Tensor) -> int:
        """K, asking the wrapped classifier (one forward pass on x[:1] if it does not know yet)."""
        try:
            return int(self.base.num_classes)
        except InvalidParameter:
            return int(self.base.predict_proba(x[:1]).shape[1])

    def predict(self, x: Any) -> torch.Tensor:
        """Majority-vote labels int64 [B] (ties to the lowest label; :data:`REJECTED` if
        rejections strictly outnumber every class)."""
        counts = self.votes(x)
        k = counts.shape[1] - 1
        best = counts[:, :k].argmax(dim=1)
        rejected = counts[:, k] > counts[:, :k].max(dim=1).values
        return torch.where(rejected, torch.full_like(best, REJECTED), best)

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Vote shares float32 [B, K] for one fresh key (rows sum to 1 minus the share of
        rejected samples)."""
        counts = self.votes(x)
        return (counts[:, :-1].to(torch.float32) / float(self.n_samples))

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """One draw: log of the mean softmax over ``surrogate_samples`` fresh samples per
        image, float32 [B, K], differentiable through ``clamp(x + u, 0, 1)``."""
        x = x.to(self.device)
        b, m = x.shape[0], self.surrogate_samples
        noise = keyed_uniform(self.keys.next_key(), (b * m, *x.shape[1:]), self.radius).to(x.device)
        samples = (x.repeat_interleave(m, dim=0) + noise).clamp(0.0, 1.0)
        logp = F.log_softmax(self.base.surrogate_logits(samples), dim=1).view(b, m, -1)
        return torch.logsumexp(logp, dim=1) - math.log(m)

    def __repr__(self) -> str:
        return (f"RegionBasedClassification({self.base!r}, radius={self.radius}, "
                f"n_samples={self.n_samples}, keys={self.keys!r})")


@attrs.frozen(kw_only=True)
class RadiusSelection:
    """The outcome of :func:`select_radius`.

    Attributes:
        radius: the chosen r (0.0 when even the first step loses too much accuracy).
        baseline_accuracy: the undefended model's accuracy on the validation samples.
        tolerance: the allowed accuracy drop (fraction, e.g. 0.01 = 1 point).
        radii: the radii tried, in order (the search stops at the first failure).
        accuracies: the region-based accuracy at each radius tried.
    """

    radius: float
    baseline_accuracy: float
    tolerance: float
    radii: tuple[float, ...]
    accuracies: tuple[float, ...]


def select_radius(model: Classifier | torch.nn.Module, samples: Any, labels: Any, *, max_radius: float,
                  step: float = 0.01, tolerance: float = 0.01, n_samples: int = 10_000,
                  keys: KeySource | None = None, batch_size: int = 500) -> RadiusSelection:
    """Cao & Gong's radius: the largest r on the grid step, 2·step, …, ≤ max_radius such
    that region-based accuracy stays ≥ baseline − tolerance, searching upwards and stopping
    at the first radius that falls below (as Cao & Gong and DEEPSEC do).

    Args:
        model: the undefended classifier (or ``nn.Module``).
        samples: legitimate validation images, float32 [n, C, H, W] in [0, 1].
        labels: their true labels, n integers.
        max_radius: the search bound in (0, 1] (DEEPSEC: 0.3 MNIST, 0.1 CIFAR-10).
        step: the grid step in (0, max_radius] (default 0.01).
        tolerance: the allowed accuracy drop in [0, 1] (default 0.01, one point).
        n_samples: samples per region-based classification (default 10,000).
        keys: the key source for all the region-based classifications (None: OS entropy).
        batch_size: samples per forward pass.

    Returns:
        :class:`RadiusSelection`.

    Raises:
        InvalidParameter: malformed samples or labels, or a bound out of range.
    """
    base = model if isinstance(model, Classifier) else ModelClassifier(model)
    x = as_images(samples, name="samples", device=base.device)
    y = as_labels(labels, name="labels", length=x.shape[0]).to(base.device)
    max_radius = check_delta(max_radius, "max_radius")
    if max_radius <= 0:
        raise InvalidParameter(f"expected max_radius in (0, 1], got {max_radius}", got=max_radius)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= max_radius:
        raise InvalidParameter(f"expected step in (0, {max_radius}], got {step!r}", got=step)
    tolerance = check_delta(tolerance, "tolerance")
    keys = check_keys(keys)
    baseline = float((base.predict(x).to(y.device) == y).to(torch.float64).mean())
    radii: list[float] = []
    accs: list[float] = []
    chosen = 0.0
    for i in range(1, int(math.floor(max_radius / step + 1e-9)) + 1):
        r = round(i * step, 12)
        defense = RegionBasedClassification(base, r, n_samples, keys, batch_size=batch_size)
        acc = float((defense.predict(x).to(y.device) == y).to(torch.float64).mean())
        radii.append(r)
        accs.append(acc)
        if acc < baseline - tolerance - 1e-12:
            break
        chosen = r
    return RadiusSelection(radius=chosen, baseline_accuracy=baseline, tolerance=tolerance,
                           radii=tuple(radii), accuracies=tuple(accs))

