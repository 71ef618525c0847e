"""``EVCSA.record_samples``: each game's result keeps the x′ the game judged — its own private
copy, taken under its lock — whatever the adversary does to its tensors, from any thread
(issue 27 item 4; the experiment engine stores these)."""

import threading

import pytest
import torch

from evcsa.adversaries import Adversary
from evcsa.defenses import ModelClassifier
from evcsa.errors import InvalidOutput, InvalidParameter
from evcsa.games import EVCSA
from evcsa.games.rules import check_predictions
from evcsa.testing import PixelCodeModel, coded_samples

K = 10
M = 24
LABELS = torch.arange(M) % K
SAMPLES = coded_samples(LABELS)


class Zeros(torch.Tensor):
    """detach / cpu / to / clone answer zeros: what reading the adversary's object through
    torch would record."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if func in (torch.Tensor.detach, torch.Tensor.cpu, torch.Tensor.to, torch.Tensor.clone) \
                and isinstance(out, torch.Tensor):
            return torch.zeros_like(out)
        return out


def x_for(i):
    x = SAMPLES[i].clone()
    x[0, 0, 0] = ((int(LABELS[i]) + 1) % K + 0.5) / K
    x[0, 1:, 1:] = (i + 1) / (M + 1)  # distinct per source
    return x


class SixThreads(Adversary):
    def play(self, oracles, knowledge):
        barrier = threading.Barrier(6)

        def work(t):
            buf = torch.empty((2, *knowledge.image_shape))
            barrier.wait()
            for k, i in enumerate(range(t, M, 6)):
                if k % 2:
                    buf[0] = x_for(i)
                    oracles.attack(i, buf[0].as_subclass(Zeros))
                else:
                    buf[0] = x_for(i)
                    oracles.attack_batch([i], buf[:1].as_subclass(Zeros))
                buf.fill_(0.5)  # the buffer is reused at once

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()


def _game():
    return EVCSA(ModelClassifier(PixelCodeModel(K), num_classes=K), SAMPLES, LABELS, n_chosen=M,
                 knowledge="blackbox")


def test_recorded_samples_are_the_judged_copies():
    game = _game()
    assert game.play(SixThreads(), seed=0).samples is None, "off by default"
    game.record_samples = True
    result = game.play(SixThreads(), seed=0)
    assert result.submissions == M and len(result.samples) == M
    for s, x in zip(result.transcript, result.samples):
        assert torch.equal(x, x_for(s.source)), s.position
        assert s.label == int(PixelCodeModel(K)(x[None]).argmax()) and s.success
    assert [s.position for s in result.transcript] == list(range(M))


def test_check_predictions_is_the_games_check():
    good = torch.tensor([0, -1, 9])
    assert check_predictions(good, 3, 10).tolist() == [0, -1, 9]
    for bad, match in ((good[:, None], r"return 3 label\(s\) \[B\], got torch tensor of dtype torch.int64 and "
                                        r"shape \(3, 1\)"),
                       (good.float(), "dtype torch.float32"), (good > 0, "dtype torch.bool"),
                       (torch.tensor([0, 10, 1]), r"labels in \[-1, 9\], got values in \[0, 10\]"),
                       (torch.tensor([0, -2, 1]), r"labels in \[-1, 9\], got values in \[-2, 1\]"),
                       ([0, 1, 2], "got list")):
        with pytest.raises(InvalidOutput, match=match):
            check_predictions(bad, 3, 10)
    assert issubclass(InvalidOutput, InvalidParameter), "the game's error class is kept"
