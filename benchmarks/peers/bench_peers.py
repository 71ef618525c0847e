"""evcsa beside torchattacks 3.5.1, ART 1.20.1 and foolbox 3.3.4, in one process (issue 11).

    make bench-peers                      # installs the peers, then runs this
    python benchmarks/peers/bench_peers.py [--n 20] [--full] [--threads 1] [--peer-timeout S]

Same model (the reference MNIST CNN of ``evcsa train``), same digits (the first N test
digits it classifies correctly), same settings, one torch thread. For each attack and
library: wall time, the time ratio peer / evcsa, and the strength — adversarial accuracy
(the fraction of the N digits the model still labels correctly on x′, re-checked here) and
the mean distortion in the attack's norm. Settings (seed 002's MNIST settings, Xu et al.):

- FGSM ε 0.3; BIM ε 0.3, step 0.06, 10 steps (untargeted);
- C&W L2 targeted "next", κ 10, learning rate 0.01, initial c 1e-3; without ``--full``
  100 iterations × 5 binary-search steps (ART; evcsa), torchattacks' CW has no search over
  c (fixed c = 1, 500 steps), foolbox's L2CarliniWagnerAttack the same 100 × 5;
- C&W L∞ targeted "next", κ 10: evcsa ``schedule="fast"`` vs ART's CarliniLInfMethod (a
  different algorithm: ART bounds the perturbation by ε = 0.3 and searches c inside);
- DeepFool overshoot 0.02, 50 steps; JSMA θ 1, γ 0.1 targeted "next";
- EOT-PGD against Randomized Squeezing (median 2×2, δ 0.2): ε 0.3, step 0.01, 40 steps,
  10 draws per step, BPDA for the median (evcsa's eot_gradient loop as in BPDAEOT vs
  torchattacks.EOTPGD on a module doing the same noise + median + straight-through);
- the squeezers: median 3×3 and bit depth 1 vs ART's SpatialSmoothing and
  FeatureSqueezing preprocessors on 10,000 MNIST-shaped images: time ratio and whether
  the outputs are identical.

Peers not installed are skipped (with a line saying so).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


class _TooLong(BaseException):
    """A peer's run passed ``--peer-timeout`` (a BaseException, so a peer's own
    ``except Exception`` does not swallow it)."""


def _within(fn: Callable[[], Any], seconds: float) -> tuple[Any, float]:
    """``_timed(fn)``, interrupted by SIGALRM after ``seconds`` (Unix; the peers' attack
    loops are Python, so the signal lands between two of their steps)."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise _TooLong

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return _timed(fn)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _state(net: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """What a peer must leave as it found it: the model's mode, its output on the digits,
    torch's gradient mode and thread count."""
    with torch.no_grad():
        out = net(x).clone()
    return {"training mode": net.training, "model output": out, "grad mode": torch.is_grad_enabled(),
            "threads": torch.get_num_threads()}


def _state_changed(net: torch.nn.Module, x: torch.Tensor, before: dict[str, Any]) -> str:
    """The names of the parts of :func:`_state` that differ from ``before`` ("" if none)."""
    now = _state(net, x)
    return ", ".join(k for k, v in before.items()
                     if not (torch.equal(v, now[k]) if isinstance(v, torch.Tensor) else v == now[k]))


def _strength(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: Any, norm: str) -> tuple[float, float]:
    x_adv = torch.as_tensor(np.asarray(x_adv.detach().cpu() if isinstance(x_adv, torch.Tensor) else x_adv),
                            dtype=torch.float32).clamp(0, 1)
    with torch.no_grad():
        acc = float((net(x_adv).argmax(1) == y).float().mean())
    d = (x_adv - x).flatten(1)
    if norm == "linf":
        dist = d.abs().amax(1)
    elif norm == "l2":
        dist = d.norm(dim=1)
    else:
        dist = (d.abs() > 1e-6).sum(1).float()
    return acc, float(dist.mean())


def _peers() -> dict[str, Any]:
    mods = {}
    for name in ("torchattacks", "art", "foolbox"):
        try:
            mods[name] = __import__(name)
        except Exception as exc:  # noqa: BLE001 - a peer that fails to import is skipped
            print(f"{name}: not available ({type(exc).__name__}: {exc}); its rows are skipped")
    return mods


class _RandomizedSqueezeModule(torch.nn.Module):
    """x → clip(x + U[−δ, δ]) → median 2×2 (straight-through backward) → the CNN: the same
    randomized defense as evcsa's RandomizedSqueezing with BPDA, for torchattacks' EOTPGD
    (its noise from torch.rand: the attacker's own randomness). Build it in eval mode:
    torchattacks restores the mode it found after an attack, and a module left in its
    default training mode switched the CNN's dropout on for every later row."""

    def __init__(self, net: torch.nn.Module, delta: float) -> None:
        super().__init__()
        from evcsa.defenses import MedianSmoothing

        self.net, self.delta, self.median = net, delta, MedianSmoothing(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = (x + (torch.rand_like(x) * 2 - 1) * self.delta).clamp(0, 1)
        return self.net(self.median.bpda(noisy))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="digits (default 20)")
    parser.add_argument("--full", action="store_true", help="C&W L2 at 1000 iterations × 9 search steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="attack names to run")
    parser.add_argument("--peer-timeout", type=float, default=None, metavar="S",
                        help="stop a peer's run after S seconds and print that it did not finish (evcsa's "
                             "own runs are never stopped)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from evcsa import attacks as ea
    from evcsa.adversaries import eot_gradient
    from evcsa.attacks import cross_entropy, next_class, project
    from evcsa.data import load_mnist
    from evcsa.defenses import BitDepth, MedianSmoothing, ModelClassifier, RandomizedSqueezing
    from evcsa.models import reference_model
    from evcsa.randomness import DerivedKeys

    model = reference_model("mnist", progress=False)
    net = model.module.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    test = load_mnist("test")
    with torch.no_grad():
        pred = model.predict(test.images).cpu()
    idx = (pred == test.labels).nonzero().flatten()[:args.n]
    x, y = test.images[idx].clone(), test.labels[idx].clone()
    t = next_class(y, 10)
    peers = _peers()
    versions = {"evcsa": __import__("evcsa").__version__ if hasattr(__import__("evcsa"), "__version__") else "tree",
                "torch": torch.__version__, **{k: getattr(m, "__version__", "?") for k, m in peers.items()}}
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} torch thread(s); " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"{len(y)} correctly classified MNIST test digits, reference CNN; strength = adversarial accuracy / "
          f"mean distortion; ratio = peer time / evcsa time (>1: evcsa faster)")
    iters, steps = (1000, 9) if args.full else (100, 5)

    art_clf = fmodel = None
    if "art" in peers:
        from art.estimators.classification import PyTorchClassifier

        art_clf = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                    nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    if "foolbox" in peers:
        fmodel = peers["foolbox"].PyTorchModel(net, bounds=(0, 1), device="cpu")
    # copies: an ART attack wrote into its input array, which shared x's memory
    xn, yn, tn = x.numpy().copy(), y.numpy().copy(), t.numpy().copy()
    x_check = x.clone()
    state = _state(net, x)

    def ta(factory: Callable[[Any], Any], targeted: bool = False):
        def run():
            atk = factory(peers["torchattacks"])
            if targeted:
                atk.set_mode_targeted_by_label(quiet=True)
                return atk(x, t)
            return atk(x, y)
        return run

    def art_run(factory: Callable[[Any], Any], targeted: bool = False):
        def run():
            from art.utils import to_categorical

            atk = factory(art_clf)
            if targeted:
                return atk.generate(xn.copy(), y=to_categorical(tn, 10))
            return atk.generate(xn.copy())
        return run

    def fb_run(factory: Callable[[Any], Any], epsilon: float | None, targeted: bool = False):
        def run():
            fb = peers["foolbox"]
            crit = fb.criteria.TargetedMisclassification(t) if targeted else fb.criteria.Misclassification(y)
            _, clipped, _ = factory(fb.attacks).__call__(fmodel, x, crit, epsilons=epsilon)
            return clipped
        return run

    rsq = RandomizedSqueezing(ModelClassifier(net), MedianSmoothing(2), 0.2, keys=DerivedKeys.from_seed(1))

    def evcsa_eot():
        loss = lambda z: cross_entropy(z, y)  # noqa: E731
        x_adv = x.clone()
        for _ in range(40):
            grad, _, _ = eot_gradient(rsq, x_adv, loss, 10)
            x_adv = project(x_adv + 0.01 * grad.sign(), x, 0.3, "linf")
        return x_adv

    from art.attacks import evasion as ae  # noqa: E402  (ART is the widest peer; rows skip without it)

    table: list[tuple[str, str, dict[str, Callable[[], Any]]]] = [
        ("FGSM ε 0.3", "linf", {
            "evcsa": lambda: ea.fgsm(model, x, y, epsilon=0.3),
            "torchattacks": ta(lambda m: m.FGSM(net, eps=0.3)),
            "ART": art_run(lambda c: ae.FastGradientMethod(c, eps=0.3)),
            "foolbox": fb_run(lambda a: a.LinfFastGradientAttack(random_start=False), 0.3)}),
        ("BIM ε 0.3, 0.06 × 10", "linf", {
            "evcsa": lambda: ea.bim(model, x, y, epsilon=0.3, step_size=0.06, steps=10),
            "torchattacks": ta(lambda m: m.BIM(net, eps=0.3, alpha=0.06, steps=10)),
            "ART": art_run(lambda c: ae.BasicIterativeMethod(c, eps=0.3, eps_step=0.06, max_iter=10, verbose=False)),
            "foolbox": fb_run(lambda a: a.LinfBasicIterativeAttack(abs_stepsize=0.06, steps=10,
                                                                     random_start=False), 0.3)}),
        ("DeepFool 0.02, 50 steps", "l2", {
            "evcsa": lambda: ea.deepfool(model, x, y, overshoot=0.02, max_iter=50),
            "torchattacks": ta(lambda m: m.DeepFool(net, steps=50, overshoot=0.02)),
            "ART": art_run(lambda c: ae.DeepFool(c, max_iter=50, epsilon=0.02, batch_size=len(y), verbose=False)),
            "foolbox": fb_run(lambda a: a.L2DeepFoolAttack(steps=50, overshoot=0.02), None)}),
        ("JSMA next θ 1, γ 0.1", "l0", {
            "evcsa": lambda: ea.jsma(model, x, y, target=t, theta=1.0, gamma=0.1),
            "torchattacks": ta(lambda m: m.JSMA(net, theta=1.0, gamma=0.1), targeted=True),
            "ART": art_run(lambda c: ae.SaliencyMapMethod(c, theta=1.0, gamma=0.1, batch_size=len(y), verbose=False),
                           targeted=True)}),
        ("EOT-PGD vs RandSqueeze med 2×2 δ 0.2", "linf", {
            "evcsa": evcsa_eot,
            "torchattacks": ta(lambda m: m.EOTPGD(_RandomizedSqueezeModule(net, 0.2).eval(), eps=0.3, alpha=0.01,
                                                  steps=40, eot_iter=10, random_start=False))}),
        (f"C&W L2 next κ 10, {iters} it × {steps}", "l2", {
            "evcsa": lambda: ea.cw_l2(model, x, y, target=t, confidence=10, max_iterations=iters,
                                      binary_search_steps=steps),
            "torchattacks": ta(lambda m: m.CW(net, c=1.0, kappa=10, steps=iters * steps, lr=0.01), targeted=True),
            "ART": art_run(lambda c: ae.CarliniL2Method(c, confidence=10, targeted=True, learning_rate=0.01,
                                                        binary_search_steps=steps, max_iter=iters,
                                                        initial_const=1e-3, batch_size=len(y), verbose=False),
                           targeted=True),
            "foolbox": fb_run(lambda a: a.L2CarliniWagnerAttack(binary_search_steps=steps, steps=iters,
                                                                stepsize=0.01, confidence=10, initial_const=1e-3),
                              None, targeted=True)}),
        ("C&W L∞ next κ 10", "linf", {
            "evcsa": lambda: ea.cw_linf(model, x, y, target=t, confidence=10, schedule="fast"),
            "ART": art_run(lambda c: ae.CarliniLInfMethod(c, confidence=10, targeted=True, learning_rate=0.005,
                                                          max_iter=iters, batch_size=len(y), verbose=False),
                           targeted=True)}),
    ]
    names = {"torchattacks": "torchattacks", "ART": "art", "foolbox": "foolbox"}
    ea.fgsm(model, x, y, epsilon=0.3)  # warm-up (first forward/backward, allocator) outside the timings
    print(f"{'attack':38s} {'library':12s} {'time s':>8s} {'ratio':>6s} {'adv. acc.':>9s} {'mean dist.':>10s}")
    for label, norm, runs in table:
        if args.only and not any(o.lower() in label.lower() for o in args.only):
            continue
        base = None
        for lib, fn in runs.items():
            if lib != "evcsa" and names[lib] not in peers:
                continue
            try:
                if lib != "evcsa" and args.peer_timeout:
                    out, sec = _within(fn, args.peer_timeout)
                else:
                    out, sec = _timed(fn)
            except _TooLong:
                bound = f" (ratio > {args.peer_timeout / base:.1f})" if base else ""
                print(f"{label:38s} {lib:12s} did not finish within {args.peer_timeout:.0f} s{bound}", flush=True)
                continue
            except Exception as exc:  # noqa: BLE001 - a peer's failure is reported, not fatal
                print(f"{label:38s} {lib:12s} failed: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            if not torch.equal(x, x_check):
                print(f"{label:38s} {lib:12s} modified its input: the rows from here on are invalid")
                return 1
            changed = _state_changed(net, x, state)
            if changed:
                print(f"{label:38s} {lib:12s} changed {changed}: the rows from here on are invalid")
                return 1
            if base is None:
                base = sec
            acc, dist = _strength(net, x, y, out, norm)
            print(f"{label:38s} {lib:12s} {sec:8.2f} {sec / base:6.2f} {acc:9.1%} {dist:10.3f}", flush=True)
    # squeezers vs ART's preprocessors
    if "art" in peers:
        from art.defences.preprocessor import FeatureSqueezing as ArtFS, SpatialSmoothing
        from _shared import interleaved, mnist_like

        xs = mnist_like(10_000)
        xt = torch.from_numpy(xs)
        xs_nhwc = xs  # ART: channels_first flag below
        for label, ours, theirs in (
                ("median 3×3, 10,000 MNIST-like", MedianSmoothing(3),
                 SpatialSmoothing(window_size=3, channels_first=True, clip_values=(0.0, 1.0))),
                ("bit depth 1, 10,000 MNIST-like", BitDepth(1),
                 ArtFS(clip_values=(0.0, 1.0), bit_depth=1))):
            same = np.array_equal(ours(xt).numpy(), theirs(xs_nhwc)[0])
            r = interleaved({"evcsa": lambda: ours(xt), "ART": lambda: theirs(xs_nhwc)}, 3)
            print(f"{label:38s} {'ART':12s} {r['ART']:8.3f} {r['ART'] / r['evcsa']:6.2f}   identical={same} "
                  f"(evcsa {r['evcsa'] * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
