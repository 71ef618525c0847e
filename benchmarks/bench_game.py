"""Game overhead benchmark: the Classify oracle vs calling the classifier directly.

    python benchmarks/bench_game.py [--threads N] [--batch 1000] [--repeat 7]

The oracle validates the query (shape, dtype, finiteness, range), counts it against the
budget and hands it to the classifier; the target is at most 1.05× the time of the
classifier's own ``predict`` at batch 1000 (issue 2). Also times one Attack batch of 25
submissions (distance, ε check, freshness digests, transcript) against ``predict`` on
the same 25 images. The model is the Carlini–Wagner MNIST CNN with random weights (the
ratio does not depend on the weights). Timings are medians over interleaved repetitions.
"""

from __future__ import annotations

import argparse
from _shared import carlini_mnist_cnn, interleaved  # noqa: I001  (puts evcsa on sys.path)

import torch

from evcsa.defenses import ModelClassifier  # noqa: E402
from evcsa.games import EVCSA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    clf = ModelClassifier(carlini_mnist_cnn(0), num_classes=10, batch_size=args.batch)
    x = torch.rand((args.batch, 1, 28, 28), generator=gen)
    labels = torch.randint(0, 10, (args.batch,), generator=gen)
    game = EVCSA(clf, x, labels, n_chosen=args.batch, knowledge="blackbox")
    session = game.start(seed=0)
    t = interleaved({"direct": lambda: clf.predict(x), "oracle": lambda: session.oracles.classify(x)},
                    args.repeat)
    print(f"torch {torch.__version__}, threads {args.threads}")
    print(f"Classify at batch {args.batch}: direct predict {t['direct'] * 1e3:.1f} ms, "
          f"oracle {t['oracle'] * 1e3:.1f} ms, ratio {t['oracle'] / t['direct']:.3f}x (target <= 1.05x)")

    def one_attack_batch():
        s = game.start(seed=0)
        s.oracles.attack_batch(range(25), x[:25])

    t = interleaved({"direct": lambda: clf.predict(x[:25]), "attack": one_attack_batch}, args.repeat * 3)
    print(f"Attack batch of 25: direct predict {t['direct'] * 1e3:.2f} ms, "
          f"oracle {t['attack'] * 1e3:.2f} ms, ratio {t['attack'] / t['direct']:.2f}x (no target)")


if __name__ == "__main__":
    main()
