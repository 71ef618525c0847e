"""Install the CPU build of torch into the running interpreter's environment.

Usage: python scripts/install_torch_cpu.py torch==2.13.0 [--index URL]

``pip install torch==X`` takes a CPU build only where pip can see one (a local wheel, a
configured CPU index); on a plain Linux machine it takes PyPI's CUDA build, several GB.
So this asks pip first, without installing anything (``--dry-run --report``), which build
it would take. A ``+cpu`` build, or torch already installed, is installed as pip chose;
anything else comes from PyTorch's CPU index instead. The Makefile runs this before it
installs evcsa, so that evcsa's own ``torch`` requirement is already met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)


def planned_torch_version(requirement: str) -> str | None:
    """The torch version pip would install for ``requirement``; None if none (already met)."""
    report = json.loads(pip("install", "--dry-run", "--quiet", "--report", "-", requirement, capture=True).stdout)
    versions = [item["metadata"]["version"] for item in report.get("install", [])
                if item["metadata"]["name"].lower() == "torch"]
    return versions[0] if versions else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirement", help="e.g. torch==2.13.0")
    parser.add_argument("--index", default=CPU_INDEX, help=f"the CPU index (default {CPU_INDEX})")
    args = parser.parse_args()
    version = planned_torch_version(args.requirement)
    if version is None or version.endswith("+cpu"):
        what = "already installed" if version is None else f"{version} (a CPU build)"
        print(f"torch: {what}", flush=True)
        pip("install", "--quiet", args.requirement)
    else:
        print(f"torch: pip would take {version} (not a CPU build); installing from {args.index}", flush=True)
        pip("install", "--quiet", args.requirement, "--index-url", args.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
