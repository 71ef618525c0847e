"""Adversary benchmarks: ratios against baselines measured in the same run.

    python benchmarks/bench_adversaries.py [--threads N] [--quick]

Prints, each with its target (issue 4):

1. One BPDA+EOT step (``eot_gradient`` through the whitebox twin, the signed step and the
   projection onto the ε-ball, exactly the body of :class:`~evcsa.adversaries.BPDAEOT`'s
   loop) vs a raw forward + input-gradient backward of the bare model over the same
   number of images (S draws × B images, in calls of B), as throughput ratio
   raw_time / step_time (target ≥ 0.85×). Twins: the model itself (deterministic, S = 1:
   the pure overhead of the machinery) and Randomized Squeezing (1-bit, δ = 0.2, S = 10:
   keyed noise and BPDA included).
2. Greedy A*'s estimation of 100 candidates × 200 draws through the game's Classify
   oracle (validation, counting, batching, success counting) vs a raw forward of 20,000
   images through the model (chunks of 512, ``no_grad``, as ``ModelClassifier``): time
   ratio estimation_time / raw_time (target ≤ 1.2×).

The model is the Carlini–Wagner MNIST CNN with random weights (speed only). Each timing
is the best of a few repetitions (the A* pair: one run each, interleaved, as each takes
seconds). Torch runs on ``--threads`` threads (default 1: the
reference machines have 2 shared cores and single-thread timings are the stable ones).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _shared import best_of, carlini_mnist_cnn, mnist_like  # noqa: E402  (puts evcsa on sys.path)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from evcsa.adversaries import Candidates, GreedyAStar, eot_gradient  # noqa: E402
from evcsa.adversaries.greedy import estimate_online  # noqa: E402
from evcsa.attacks import GradientHealth, GradientMonitor, cross_entropy, project  # noqa: E402
from evcsa.defenses import BitDepth, ModelClassifier, RandomizedSqueezing  # noqa: E402
from evcsa.games import EVCSA  # noqa: E402
from evcsa.randomness import DerivedKeys  # noqa: E402


def bench_bpda_step(net: nn.Module, batch: int, repeat: int) -> None:
    model = ModelClassifier(net, num_classes=10)
    x = torch.from_numpy(mnist_like(batch, 1))
    y = torch.as_tensor(np.random.default_rng(2).integers(0, 10, batch))
    eps, step = 0.3, 0.01
    loss = lambda z: cross_entropy(z, y)  # noqa: E731
    twins = {"deterministic twin (model), S = 1": (model, 1),
             "RandomizedSqueezing 1-bit δ=0.2, S = 10": (
                 RandomizedSqueezing(model, BitDepth(1), 0.2, DerivedKeys.from_seed(3)), 10)}
    print(f"1. one BPDA+EOT step vs raw forward+backward, batch {batch} (target ≥ 0.85×)")
    for label, (twin, samples) in twins.items():
        x_adv = x.clone()
        monitor = GradientMonitor(batch)

        def bpda_step() -> torch.Tensor:
            grad, _, _ = eot_gradient(twin, x_adv, loss, samples, monitor=monitor)
            return project(x_adv + step * grad.sign(), x, eps, "linf")

        def raw() -> None:
            for _ in range(samples):
                xi = x_adv.detach().clone().requires_grad_(True)
                out = net(xi)
                torch.autograd.grad(cross_entropy(out, y).sum(), xi)

        t_step = best_of(bpda_step, repeat)
        t_raw = best_of(raw, repeat)
        print(f"   {label:42s} step {t_step * 1e3:8.1f} ms   raw {t_raw * 1e3:8.1f} ms   "
              f"throughput ratio {t_raw / t_step:5.2f}×  ({samples * batch / t_step:,.0f} images/s)")


def bench_astar(net: nn.Module, candidates: int, draws: int, repeat: int) -> None:
    model = ModelClassifier(net, num_classes=10)
    x = torch.from_numpy(mnist_like(candidates, 4))
    y = torch.as_tensor(np.random.default_rng(5).integers(0, 10, candidates))
    game = EVCSA(model, x, y, n_chosen=min(25, candidates), knowledge="graybox")
    cands = Candidates(sources=np.arange(candidates), x_adv=x.clone(), targets=None,
                       failed=np.zeros(candidates, dtype=bool), health=GradientHealth.clean(candidates))
    astar = GreedyAStar(queries_per_candidate=draws)
    n_images = candidates * draws

    def estimation() -> None:
        session = game.start(seed=0)
        estimate_online(session.oracles, cands, session.knowledge, draws, query_batch=astar.query_batch)
        assert session.classify_queries == n_images

    batch = x.repeat_interleave(draws, dim=0)

    def raw() -> None:
        with torch.no_grad():
            for chunk in batch.split(512):
                net(chunk)

    with torch.no_grad():
        net(batch[:512])  # warm-up (kernels, allocator) without a full extra pass
    # ~15 s per pass on one core: a single timed run of each, interleaved
    t_raw_1 = best_of(raw, 1, warmup=False)
    t_est = best_of(estimation, 1, warmup=False)
    t_raw = min(t_raw_1, best_of(raw, 1, warmup=False)) if repeat > 1 else t_raw_1
    print(f"2. A* estimation of {candidates} candidates × {draws} draws vs raw forward of {n_images:,} images "
          f"(target ≤ 1.2×)")
    print(f"   estimation {t_est:6.3f} s   raw forward {t_raw:6.3f} s   time ratio {t_est / t_raw:5.2f}×")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition (smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else 3
    net = carlini_mnist_cnn()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    bench_bpda_step(net, 32 if args.quick else 128, repeat)
    bench_astar(net, 20 if args.quick else 100, 50 if args.quick else 200, repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
