"""Faulty and concurrent components, as plugin modules beside a configuration
(tests/experiments/test_validated_units.py): the engine must refuse what they answer,
naming the unit, and store nothing of it; and record a multithreaded adversary's
submissions exactly as the game judged them."""

from __future__ import annotations

import threading
import types

import attrs
import numpy as np
import torch

from evcsa.adversaries import Adversary
from evcsa.defenses.base import Defense


class Faulty(Defense):
    """The model's labels, answered wrongly as ``mode`` says: "column" ([B, 1]), "float"
    (float labels), "range" (labels + K, beyond the classes), "count" (one label too many)."""

    def __init__(self, base, mode):
        super().__init__(base)
        self.mode = mode

    def predict(self, x):
        y = self.base.predict(x)
        if self.mode == "column":
            return y[:, None]
        if self.mode == "float":
            return y.to(torch.float32)
        if self.mode == "range":
            return y + self.num_classes
        if self.mode == "count":
            return torch.cat([y, y[:1]])
        return y


def faulty(model, keys, mode="column"):
    """Builder ``(model, keys, **params)`` of a :class:`Faulty` defense."""
    return Faulty(model, mode)


@attrs.frozen(kw_only=True)
class BadEstimates(Adversary):
    """Submits the first N natural samples and reports p̂ = ``value`` for every source
    (NaN, 1.5, −0.1: an adversary's broken estimate)."""

    value: str = "nan"  # a string: TOML has no NaN

    def play(self, oracles, knowledge):
        n = knowledge.n_chosen
        oracles.attack_batch(list(range(n)), knowledge.samples[:n])
        m = knowledge.samples.shape[0]
        estimates = types.SimpleNamespace(values=np.full(m, float(self.value)), draws=np.full(m, 10))
        return types.SimpleNamespace(estimates=estimates, sources=np.arange(m))


def threaded_sample(knowledge, source):
    """The x′ :class:`Threaded` submits for ``source``: x plus a pattern that depends on the
    source alone (within ε 0.3), so every stored sample can be checked against it."""
    x = knowledge.samples[source].clone()
    g = torch.Generator().manual_seed(1000 + int(source))
    return (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 0.25).clamp(0, 1)


class Lying(torch.Tensor):
    """A tensor subclass whose ``detach``, ``cpu``, ``to`` and ``clone`` answer zeros: what
    a recorder reading the adversary's object through torch would store. The game reads
    it as a plain tensor (tests/games/test_tensor_subclass.py)."""

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if func in (torch.Tensor.detach, torch.Tensor.cpu, torch.Tensor.to, torch.Tensor.clone,
                    torch.Tensor.numpy) and isinstance(out, torch.Tensor):
            return torch.zeros_like(out)
        return out


@attrs.frozen(kw_only=True)
class Threaded(Adversary):
    """An honest adversary submitting its N samples from ``threads`` threads at once, each
    thread through ``attack`` and ``attack_batch`` alternately, its x′ built in a buffer it
    reuses (it overwrites the buffer right after each call returns) and handed over as a
    :class:`Lying` tensor subclass when ``lie`` is set."""

    threads: int = 6
    lie: bool = True

    def play(self, oracles, knowledge):
        n = knowledge.n_chosen
        barrier = threading.Barrier(self.threads)
        errors = []

        def work(t):
            mine = list(range(t, n, self.threads))
            buffer = torch.empty((2, *knowledge.image_shape))
            try:
                barrier.wait()
                for j in range(0, len(mine), 3):
                    part = mine[j:j + 3]
                    if len(part) == 1 or j % 2:
                        for s in part:
                            buffer[0] = threaded_sample(knowledge, s)
                            x = buffer[0].as_subclass(Lying) if self.lie else buffer[0]
                            oracles.attack(s, x)
                            buffer[0].fill_(0.5)  # reused at once
                    else:
                        for s in part[2:]:
                            buffer[0] = threaded_sample(knowledge, s)
                            x = buffer[0].as_subclass(Lying) if self.lie else buffer[0]
                            oracles.attack(s, x)
                            buffer[0].fill_(0.5)
                        batch = torch.stack([threaded_sample(knowledge, s) for s in part[:2]])
                        buffer[: batch.shape[0]] = batch
                        x = buffer[: batch.shape[0]]
                        oracles.attack_batch(part[:2], x.as_subclass(Lying) if self.lie else x)
                        buffer.fill_(0.5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(t,)) for t in range(self.threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        if errors:
            raise errors[0]


@attrs.frozen(kw_only=True)
class NaNCrafter(Adversary):
    """Crafts one candidate per source offline, the first of them NaN (a broken attack that
    does not say it failed), and submits the first N."""

    def prepare(self, knowledge):
        from evcsa.adversaries._common import Candidates, PreparedAdversary
        from evcsa.attacks.gradients import GradientHealth

        m = knowledge.samples.shape[0]
        x_adv = knowledge.samples.clone()
        x_adv[0] = float("nan")
        candidates = Candidates(sources=np.arange(m, dtype=np.int64), x_adv=x_adv, targets=None,
                                failed=np.zeros(m, dtype=bool), health=GradientHealth.clean(m))
        return PreparedAdversary(self, candidates, tuple(knowledge.image_shape), m)

    def play(self, oracles, knowledge):
        return self.prepare(knowledge).play(oracles, knowledge)

    def play_candidates(self, candidates, oracles, knowledge):
        n = knowledge.n_chosen
        oracles.attack_batch(candidates.sources[:n], candidates.x_adv[:n])
