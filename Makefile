# Two commands for a new user; each sets itself up (a virtual environment in .venv, reused while
# pyproject.toml is unchanged). PyTorch is pinned first so pip never resolves another build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
TORCH_VERSION ?= 2.13.0
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup sweep test lint bench

setup: $(STAMP)

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## make sweep [ARGS="--smoke"]: the main job, launch/sweep.py with its embedded defaults.
sweep: setup
	$(PY) launch/sweep.py $(ARGS)

## make test [ARGS="-k metrics"]: the whole test suite, slow end-to-end tests included.
test: setup
	$(PY) -m pytest $(ARGS)

lint: setup
	$(VENV)/bin/ruff check recsys tests launch benchmarks
	$(VENV)/bin/ruff format --check recsys tests launch benchmarks
