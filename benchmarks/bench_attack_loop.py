"""The attacks' hot loop against a bare torch loop: forward + backward images/s (issue 25 item 3).

    python benchmarks/bench_attack_loop.py [--threads 1] [--batch 100] [--steps 20] [--repeat 3]

The model is the Carlini–Wagner MNIST CNN (random weights: speed only) wrapped as evcsa's
``ModelClassifier``; the batch is ``--batch`` MNIST-like images. Three loops run in one
process on the same threads, interleaved (median of ``--repeat`` runs each, so a load
change on the shared machine hits all alike):

- **bare**: ``--steps`` times: a leaf copy of x′ with ``requires_grad``, the module's
  forward, the cross-entropy, ``torch.autograd.grad``, a signed step and the clamp onto the
  ε-ball and [0, 1] — what one BIM step has to do, and nothing else;
- **BIM**: :func:`evcsa.attacks.bim` with ``--steps`` steps (its validation, gradient health
  monitor and projection included);
- **C&W L2**: :func:`evcsa.attacks.cw_l2` with one binary-search step of ``--steps``
  iterations, no early abort (Adam in tanh space, the margin loss, the best-so-far
  bookkeeping).

Images/s = the images that went through a forward pass with gradients (counted by a
forward hook on the module, the same hook in every loop) / wall time. Printed: each loop's
images/s and its ratio to the bare loop (target ≥ 0.8).

And pure classification, the games' and the estimates' loop: ``--steps`` batches through
:func:`evcsa.games.rules.predict_labels` on the ``ModelClassifier`` (the game's check of the
answer included) against the module's forward under ``torch.inference_mode`` and an argmax.
"""

from __future__ import annotations

import argparse

from _shared import carlini_mnist_cnn, interleaved, mnist_like  # noqa: E402  (puts evcsa on sys.path)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from evcsa.attacks import bim  # noqa: E402
from evcsa.attacks.carlini_wagner import cw_l2  # noqa: E402
from evcsa.defenses import ModelClassifier  # noqa: E402
from evcsa.games.rules import predict_labels  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    net = carlini_mnist_cnn()
    model = ModelClassifier(net, num_classes=10)
    x = torch.from_numpy(mnist_like(args.batch))
    with torch.no_grad():
        y = net(x).argmax(dim=1)
    counted = {"images": 0}

    def hook(module, inputs, output):  # noqa: ANN001
        if torch.is_grad_enabled():
            counted["images"] += int(inputs[0].shape[0])

    net.register_forward_hook(hook)
    eps, alpha = 0.3, 2 * 0.3 / args.steps

    def bare() -> None:
        x_adv = x.clone()
        for _ in range(args.steps):
            xg = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(net(xg), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xg)
            x_adv = torch.minimum(torch.maximum(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)

    def attack_bim() -> None:
        bim(model, x, y, epsilon=eps, steps=args.steps)

    def attack_cw() -> None:
        cw_l2(model, x, y, binary_search_steps=1, max_iterations=args.steps, abort_early=False)

    loops = {"bare": bare, "BIM": attack_bim, "C&W L2": attack_cw}
    images = {}
    for name, fn in loops.items():  # images with gradients per call (the hook counts them)
        counted["images"] = 0
        fn()
        images[name] = counted["images"]
    times = interleaved(loops, args.repeat)
    rate = {name: images[name] / times[name] for name in loops}
    print(f"attack hot loop, Carlini MNIST CNN, batch {args.batch}, {args.steps} steps, {args.threads} thread(s), "
          f"median of {args.repeat}")
    for name in loops:
        print(f"  {name:8s} {images[name]:6d} images with gradients in {times[name] * 1e3:8.1f} ms = "
              f"{rate[name]:8.0f} images/s   ratio to bare {rate[name] / rate['bare']:.2f} (target ≥ 0.8)")
    def classify_bare() -> None:
        for _ in range(args.steps):
            with torch.inference_mode():
                net(x).argmax(dim=1)

    def classify_evcsa() -> None:
        for _ in range(args.steps):
            predict_labels(model, x, 10)

    pure = interleaved({"bare": classify_bare, "evcsa": classify_evcsa}, args.repeat)
    n = args.steps * args.batch
    print(f"  classify bare (inference_mode) {n / pure['bare']:8.0f} images/s; predict_labels(ModelClassifier) "
          f"{n / pure['evcsa']:8.0f} images/s   ratio {pure['bare'] / pure['evcsa']:.2f} (target ≥ 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
