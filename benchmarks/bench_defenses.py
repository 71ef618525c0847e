"""Defense benchmarks: ratios against baselines measured in the same run.

    python benchmarks/bench_defenses.py [--threads N] [--quick]

Prints, each with its target (issue 3):

1. median smoothing (2×2, 3×3) vs scipy.ndimage.median_filter on 10,000 MNIST-shaped
   images: speed-up (target ≥ 10×) and whether the outputs are identical;
2. non-local means vs the per-image OpenCV loop of the reference: speed-up (target ≥ 3×),
   identical output;
3. keyed noise (``keyed_uniform``) vs the raw AES-CTR keystream → float conversion alone:
   throughput ratio (target ≥ 0.8×);
4. RandomizedSqueezing (median 3×3) vs the raw model forward at the same batch, with the
   Carlini–Wagner MNIST CNN (random weights): throughput ratio (target ≥ 0.9×);
5. Region-Based Classification at 10,000 samples: peak memory (resident-set increase,
   sampled in a child process) vs materializing the 10,000 samples and classifying them
   in one batch.

Each timing is the best of a few repetitions. Torch and OpenCV run on ``--threads``
threads (default 1: the reference machines have 2 shared cores and single-thread
timings are the stable ones; scipy is single-threaded).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

import numpy as np

from _shared import best_of, carlini_mnist_cnn, mnist_like  # noqa: E402  (puts evcsa on sys.path)

import cv2  # noqa: E402
import torch  # noqa: E402
from Crypto.Cipher import AES  # noqa: E402
from scipy.ndimage import median_filter  # noqa: E402

from evcsa.defenses import (  # noqa: E402
    BitDepth,
    MedianSmoothing,
    ModelClassifier,
    NonLocalMeans,
    RandomizedSqueezing,
    RegionBasedClassification,
)
from evcsa.randomness import DerivedKeys, keyed_uniform  # noqa: E402


def bench_median(n: int, repeat: int) -> None:
    rng = np.random.default_rng(4)
    datasets = {"uint8-grid noise": rng.integers(0, 256, (n, 1, 28, 28)).astype(np.float32) / 255,
                "MNIST-like (80% zeros)": mnist_like(n)}
    ref_noise: dict[int, float] = {}
    ours_noise: dict[int, float] = {}
    for name, x in datasets.items():
        xt = torch.from_numpy(x)
        for k in (2, 3):
            squeezer = MedianSmoothing(k)
            ours = best_of(lambda: squeezer(xt), repeat)
            ref = best_of(lambda: median_filter(x, size=(1, 1, k, k), mode="reflect"), max(1, repeat // 2))
            same = np.array_equal(squeezer(xt).numpy(), median_filter(x, size=(1, 1, k, k), mode="reflect"))
            print(f"median {k}x{k}, {n} images 1x28x28 ({name}): evcsa {ours * 1e3:.1f} ms, scipy "
                  f"{ref * 1e3:.1f} ms, speed-up {ref / ours:.1f}x (target >= 10x), identical={same}")
            if ref / ours < 10 and name.startswith("MNIST"):
                print(f"   why the 10x target does not fit here: scipy's selection is data-dependent and "
                      f"{ref_noise[k] / ref:.1f}x faster on these 80 %-zero images than on noise, while the "
                      f"sort network's time is not (evcsa {ours_noise[k] / ours:.2f}x its noise time); the "
                      f"target holds on uint8-grid noise (above), the data the 10-20x target was measured on")
            if name.startswith("uint8"):
                ref_noise[k], ours_noise[k] = ref, ours


def bench_bit_depth(n: int, repeat: int) -> None:
    x = torch.from_numpy(mnist_like(n))
    squeezer = BitDepth(1)
    ours = best_of(lambda: squeezer(x), repeat)
    whole = best_of(lambda: torch.round(x * 1.0) / 1.0, repeat)
    same = torch.equal(squeezer(x), torch.round(x * 1.0) / 1.0)
    print(f"bit depth 1, {n} images 1x28x28: evcsa (chunks of 256) {ours * 1e3:.1f} ms, one whole-batch "
          f"expression {whole * 1e3:.1f} ms, ratio {whole / ours:.2f}x, identical={same}")


def bench_nlm(n: int, repeat: int) -> None:
    rng = np.random.default_rng(1)
    cases = [("11-3-4", (n, 3, 32, 32)), ("13-3-2", (n, 3, 32, 32)), ("11-3-4", (n, 1, 28, 28))]
    for spec, shape in cases:
        x = torch.from_numpy(rng.random(shape, dtype=np.float32))
        strip = NonLocalMeans.from_string(spec)
        loop = NonLocalMeans.from_string(spec, tiles_per_call=1)  # the reference's per-image loop
        ours = best_of(lambda: strip(x), repeat)
        ref = best_of(lambda: loop(x), max(1, repeat // 2))
        same = torch.equal(strip(x), loop(x))
        print(f"NLM {spec}, {shape[0]} images {shape[1]}x{shape[2]}x{shape[3]}: strips of 16 {ours * 1e3:.0f} ms, "
              f"per-image loop {ref * 1e3:.0f} ms, speed-up {ref / ours:.2f}x (target >= 3x), identical={same}")


def raw_keystream_to_float(key: bytes, n: int, delta: float) -> np.ndarray:
    """The baseline: AES-CTR keystream into a preallocated buffer, uint32 → float in [−δ, δ]."""
    buf = bytearray(4 * n)
    view = memoryview(buf)
    AES.new(key, AES.MODE_CTR, nonce=b"\0" * 8, initial_value=0).encrypt(view, output=view)
    u = np.frombuffer(buf, dtype="<u4")
    return (u >> 8).astype(np.float32) * np.float32(2 * delta / 2**24) - np.float32(delta)


def bench_noise(n_images: int, repeat: int) -> None:
    key = b"k" * 16
    shape = (n_images, 1, 28, 28)
    values = int(np.prod(shape))
    ours = best_of(lambda: keyed_uniform(key, shape, 0.3), repeat)
    base = best_of(lambda: raw_keystream_to_float(key, values, 0.3), repeat)
    rand = best_of(lambda: torch.rand(shape), repeat)
    print(f"keyed noise, {values / 1e6:.2f} M values: keyed_uniform {values / ours / 1e6:.0f} M/s, raw "
          f"keystream->float {values / base / 1e6:.0f} M/s, ratio {base / ours:.2f}x (target >= 0.8x); "
          f"torch.rand {values / rand / 1e6:.0f} M/s")


def bench_randomized_squeezing(batch: int, repeat: int) -> None:
    net = carlini_mnist_cnn().to(memory_format=torch.channels_last)
    x = torch.from_numpy(mnist_like(batch, seed=2))
    model = ModelClassifier(net, num_classes=10, batch_size=512)
    defense = RandomizedSqueezing(model, MedianSmoothing(3), 0.3, keys=DerivedKeys(b"b" * 16), batch_size=512)

    def raw_forward() -> None:
        with torch.no_grad():
            for chunk in x.split(512):
                net(chunk).argmax(1)

    t_raw = best_of(raw_forward, repeat)
    t_model = best_of(lambda: model.predict(x), repeat)
    t_def = best_of(lambda: defense.predict(x), repeat)
    print(f"RandomizedSqueezing(median 3x3, delta 0.3), batch {batch}, Carlini MNIST CNN: raw forward "
          f"{batch / t_raw:.0f} img/s, ModelClassifier.predict {batch / t_model:.0f} img/s, defense "
          f"{batch / t_def:.0f} img/s, ratio {t_raw / t_def:.2f}x vs raw forward (target >= 0.9x)")


def _child_memory(mode: str, n_samples: int, batch_size: int) -> None:
    net = carlini_mnist_cnn()
    x = torch.from_numpy(mnist_like(1, seed=3))
    model = ModelClassifier(net, num_classes=10, batch_size=batch_size)
    defense = RegionBasedClassification(model, 0.3, n_samples=n_samples, keys=DerivedKeys(b"r" * 16),
                                        batch_size=batch_size)
    with torch.no_grad():  # warm-up: allocator pools, kernels
        net(x.repeat(8, 1, 1, 1))
        RegionBasedClassification(model, 0.3, n_samples=8, keys=DerivedKeys(b"w" * 16)).predict(x)
    sampler = _RssSampler()
    if mode == "defense":
        label = int(defense.predict(x)[0])
    else:  # all samples at once
        noise = keyed_uniform(b"r" * 16, (n_samples, 1, 28, 28), 0.3)
        with torch.no_grad():
            label = int(torch.bincount(net((x + noise).clamp_(0, 1)).argmax(1), minlength=10).argmax())
    print(f"{sampler.stop() / 2**20:.1f} {label}")


class _RssSampler:
    """Peak resident-set increase over the start, sampling /proc/self/statm every 0.5 ms
    in a thread (Linux); elsewhere the ru_maxrss increase (0 if the old peak is higher)."""

    def __init__(self) -> None:
        import threading

        self._page = os.sysconf("SC_PAGE_SIZE")
        self._start_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._proc = os.path.exists("/proc/self/statm")
        self._start = self._rss() if self._proc else 0
        self._peak = self._start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self._proc:
            self._thread.start()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._done.wait(0.0005):
            self._peak = max(self._peak, self._rss())

    def stop(self) -> int:
        if not self._proc:
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start_max
            return max(0, grown) * (1024 if sys.platform != "darwin" else 1)
        self._done.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        return self._peak - self._start


def bench_region_memory(n_samples: int, batch_size: int) -> None:
    out = {}
    for mode in ("defense", "all-at-once"):
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-memory", mode,
                              str(n_samples), str(batch_size)], capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
        out[mode] = float(res.stdout.split()[0])
    print(f"Region-Based, {n_samples} samples of 1x28x28, Carlini MNIST CNN: peak RSS increase "
          f"{out['defense']:.1f} MiB chunked (batch_size {batch_size}) vs {out['all-at-once']:.1f} MiB "
          f"with all samples in one batch ({out['all-at-once'] / max(out['defense'], 0.1):.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--child-memory", nargs=3, metavar=("MODE", "N", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.child_memory:
        mode, n, b = args.child_memory
        _child_memory(mode, int(n), int(b))
        return
    quick = args.quick
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, threads {args.threads}")
    bench_median(1000 if quick else 10_000, 3 if quick else 5)
    bench_bit_depth(1000 if quick else 10_000, 3 if quick else 7)
    bench_nlm(50 if quick else 200, 2)
    bench_noise(1000 if quick else 10_000, 3 if quick else 7)
    bench_randomized_squeezing(500 if quick else 1500, 2 if quick else 3)
    bench_region_memory(1000 if quick else 10_000, 500)


if __name__ == "__main__":
    main()
