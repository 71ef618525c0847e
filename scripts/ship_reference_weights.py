"""Train evcsa's own reference models by their recipes and write them as shipped weights.

    python scripts/ship_reference_weights.py [mnist] [digits] [--threads T] [--output-dir DIR]

For each name, trains ``evcsa.models.REFERENCE_CONFIGS[name]`` with
:func:`evcsa.models.train_reference` (the same code ``evcsa train`` runs) and writes into
``evcsa/models_data/``:

- ``<name>.npz`` — the state dict, float32, written reproducibly
  (:func:`evcsa.weights_io.save_weights_npz`);
- ``<name>.json`` — its provenance: the recipe, the training code's digest, the evcsa
  commit, torch, the thread count, the CPU, the training time, the test accuracy, and the
  file's SHA-256.

It prints the SHA-256 to put in ``evcsa.models.SHIPPED[name]``. float32 training on the CPU
is reproducible on one machine but not across CPU instruction sets: these files are what
every machine then loads. The shipped weights were made on 2 cores, "mnist" with torch's
default 2 threads, "digits" with 1 thread (as the test suite's fixture trains it).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    import torch

    from evcsa.models import REFERENCE_CONFIGS, train_reference
    from evcsa.weights_io import save_weights_npz

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(REFERENCE_CONFIGS), choices=list(REFERENCE_CONFIGS))
    parser.add_argument("--threads", type=int, help="torch threads for the training (default: torch's)")
    parser.add_argument("--output-dir", type=pathlib.Path, default=ROOT / "evcsa" / "models_data")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    commit = _commit()
    for name in args.names:
        module, info = train_reference(REFERENCE_CONFIGS[name], progress=False)
        path = args.output_dir / f"{name}.npz"
        sha = save_weights_npz({k: v.contiguous() for k, v in module.state_dict().items()}, path)
        details = {k: info[k] for k in ("config", "digest", "training_code_sha256", "train_set", "train_seconds",
                                        "torch", "threads", "cpu", "python")}
        provenance = {
            "name": name, "weights_file": path.name, "weights_sha256": sha,
            "origin_details": {"kind": "trained", "recipe": f"evcsa.models.REFERENCE_CONFIGS[{name!r}]",
                               "trainer": "evcsa.models.train_reference", "evcsa_commit": commit, **details},
            "test_accuracy": info["test_accuracy"], "test_set": info["test_set"],
        }
        path.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        print(f"{name}: test accuracy {100 * info['test_accuracy']:.2f} % on {info['test_set']}, "
              f"trained in {info['train_seconds']:.0f} s with {info['threads']} thread(s)")
        print(f'evcsa.models.SHIPPED[{name!r}].sha256 = "{sha}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
