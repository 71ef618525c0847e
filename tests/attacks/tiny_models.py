"""Small models and stand-in defenses for the attack and adversary tests.

- :func:`digits_mlp`: an MLP trained on scikit-learn's 8×8 digits in about a second,
  from a local ``torch.Generator`` (no global seeding).
- :class:`Spy`: a classifier that records every input it is queried on.
- :class:`NoisyBinarizer`: a randomized 1-bit squeezer (uniform noise in [−δ, δ] from the
  key source, clip, round) with a BPDA surrogate (identity backward over noise, clip and
  rounding), or — with ``bpda=False`` — plain autograd through the rounding (zero
  gradients: the fault of cases.md C05).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from evcsa.defenses.base import Classifier, Defense, ModelClassifier
from evcsa.randomness import DerivedKeys, KeySource


#: Fast parameters per registry attack for the 8×8 digits model (the defaults are sized
#: for 28×28 MNIST and 1000-step optimisations).
FAST = {
    "fgsm": {},
    "bim": {},
    "cw_linf_next": {"max_iterations": 20, "learning_rate": 0.05, "largest_const": 2.0},
    "cw_linf_ll": {"max_iterations": 20, "learning_rate": 0.05, "largest_const": 2.0},
    "deepfool": {},
    "cw_l2_next": {"max_iterations": 60, "binary_search_steps": 3, "learning_rate": 0.2, "initial_const": 1.0},
    "cw_l2_ll": {"max_iterations": 60, "binary_search_steps": 3, "learning_rate": 0.2, "initial_const": 1.0},
    "cw_l0_next": {"max_iterations": 20, "learning_rate": 0.1, "initial_const": 0.1, "largest_const": 50.0},
    "cw_l0_ll": {"max_iterations": 20, "learning_rate": 0.1, "initial_const": 0.1, "largest_const": 50.0},
    "jsma_next": {"gamma": 0.5},
    "jsma_ll": {"gamma": 0.5},
    "apgd_ce": {"steps": 10, "random_start": False},
    "apgd_dlr": {"steps": 10, "random_start": False},
    "he_l2": {"max_iterations": 50, "binary_search_steps": 3, "learning_rate": 0.2},
}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (tiny tensors on a shared CPU: more threads
    only oversubscribe the cores), restoring the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def _trained(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in net.parameters():
            fan = p[0].numel() if p.dim() > 1 else 10
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / fan ** 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xtr, ytr = x[:1400], y[:1400]
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(net(xtr), ytr).backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, x[1400:], y[1400:], xtr, ytr


def digits_mlp(seed: int = 0) -> tuple[ModelClassifier, torch.Tensor, torch.Tensor]:
    """(model, test images [397, 1, 8, 8] in [0, 1], test labels [397]); ~96 % accurate."""
    with single_thread():
        net, xte, yte, _, _ = _trained(seed)
    return ModelClassifier(net, num_classes=10), xte.clone(), yte.clone()


def correct_subset(model: Classifier, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples the model classifies correctly."""
    ok = (model.predict(x).cpu() == y).nonzero().flatten()[:n]
    return x[ok].clone(), y[ok].clone()


class LinearLogits(nn.Module):
    """Logits [w·x, 0] for flattened inputs: the witness model of C05/C06."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w
        return torch.stack([s, torch.zeros_like(s)], dim=1)


class Spy(Classifier):
    """Wraps a classifier and records (a detached copy of) every input to
    ``surrogate_logits`` and ``predict``."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.queries: list[torch.Tensor] = []
        self.randomized = inner.randomized

    @property
    def num_classes(self) -> int:
        return self.inner.num_classes

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def model(self) -> ModelClassifier:
        return self.inner.model

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.queries.append(x.detach().clone())
        return self.inner.predict(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.queries.append(x.detach().clone())
        return self.inner.predict_proba(x)

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        self.queries.append(x.detach().clone())
        return self.inner.surrogate_logits(x)

    def with_keys(self, keys: KeySource) -> Spy:
        return Spy(self.inner.with_keys(keys))


class NoisyBinarizer(Defense):
    """Stand-in randomized squeezer: clip(x + U[−δ, δ]) then 1-bit rounding, noise from a
    generator seeded by the key source's next key (one key per call)."""

    def __init__(self, base: Classifier, delta: float = 0.2, keys: KeySource | None = None, *,
                 bpda: bool = True) -> None:
        super().__init__(base)
        self.delta = delta
        self.randomized = delta > 0
        # a key source only where there is noise: holding one makes a classifier randomized
        self.keys = (keys if keys is not None else DerivedKeys.from_seed(0)) if self.randomized else None
        self.bpda = bpda

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        if self.delta > 0:
            g = torch.Generator().manual_seed(int.from_bytes(self.keys.next_key()[:8], "big"))
            noise = ((torch.rand(x.shape, generator=g) * 2 - 1) * self.delta).to(x.device)
            x = (x + noise).clamp(0.0, 1.0)
        return torch.round(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.predict(self._squeeze(x.detach()))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.predict_proba(self._squeeze(x.detach()))

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.bpda:
            s = self._squeeze(x.detach())
            return self.model.surrogate_logits(x + (s - x).detach())
        return self.model.surrogate_logits(self._squeeze(x))

    def with_keys(self, keys: KeySource) -> NoisyBinarizer:
        return NoisyBinarizer(self.base, self.delta, keys, bpda=self.bpda)


class AlwaysReject(Defense):
    """A detector that rejects every input (REJECTED = −1)."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), -1, dtype=torch.int64)

    def surrogate_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.surrogate_logits(x)
