# The two commands of the README: `make demo` (the main job) and `make test` (the suite; it
# installs the optional Dask extra, evcsa[dask], so the Dask executor is tested too).
# Both create .venv if missing and install the CPU build of torch before the package, so
# that pip never pulls a multi-GB CUDA build: scripts/install_torch_cpu.py asks pip which
# build it would take and, unless that is a CPU build, takes torch from PyTorch's CPU index.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.evcsa-installed

# Idle OpenMP threads sleep instead of spinning. On a machine shared with other work torch
# then runs 2-3x faster (tiny models up to 20x); set OMP_WAIT_POLICY=ACTIVE to override.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test bench bench-peers setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install_torch_cpu.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) scripts/install_torch_cpu.py $(TORCH)
	$(PY) -m pip install --quiet -e '.[test,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/evcsa demo

test: $(STAMP)
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# The peers of benchmarks/peers/ (optional): ART and foolbox with their light dependencies
# (pip's dry run pulls no torch), torchattacks without its dependencies (its torchvision
# requirement would pull a multi-GB CUDA torch over the CPU build already installed).
PEERS := adversarial-robustness-toolbox==1.20.1 foolbox==3.3.4

bench-peers: $(STAMP)
	$(PY) -m pip install --quiet $(PEERS)
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) benchmarks/peers/bench_peers.py --peer-timeout 600

clean:
	rm -rf $(VENV) build *.egg-info
