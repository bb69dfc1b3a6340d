# Two commands for a new user; each sets itself up (a virtual environment in .venv, reused while
# pyproject.toml is unchanged). PyTorch is pinned first so pip never resolves another build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
TORCH_VERSION ?= 2.13.0
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup sweep test lint bench reference-venv reference

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

# The reference environment of benchmarks/reference_recbole.py: RecBole 1.2.1 in a venv of its own.
# recbole is installed without its declared dependencies (its ray<=2.6.3 pin sends pip backtracking
# through torch releases and their CUDA wheels); what its code paths import is installed after it,
# with torch held at TORCH_VERSION. See that script's docstring.
RECBOLE_VENV ?= .venv-recbole
RECBOLE_PY := $(RECBOLE_VENV)/bin/python
RECBOLE_DEPS := 'numpy<2' 'scipy==1.11.4' 'pandas<3' 'setuptools<70' 'pyarrow<20' scikit-learn \
	tensorboard 'colorlog==4.7.2' 'colorama==0.4.4' texttable tqdm pyyaml
RECBOLE_STAMP := $(RECBOLE_VENV)/.installed-$(shell printf '%s' "$(TORCH_VERSION) $(RECBOLE_DEPS)" | cksum | cut -d' ' -f1)

## make reference-venv: .venv-recbole with recbole==1.2.1 (torch==$(TORCH_VERSION) first).
reference-venv: $(RECBOLE_STAMP)

$(RECBOLE_STAMP):
	$(PYTHON) -m venv $(RECBOLE_VENV)
	$(RECBOLE_PY) -m pip install --quiet --upgrade pip
	$(RECBOLE_PY) -m pip install --quiet torch==$(TORCH_VERSION)
	echo 'torch==$(TORCH_VERSION)' > $(RECBOLE_VENV)/constraints.txt
	$(RECBOLE_PY) -m pip install --quiet --no-deps recbole==1.2.1
	$(RECBOLE_PY) -m pip install --quiet -c $(RECBOLE_VENV)/constraints.txt $(RECBOLE_DEPS)
	$(RECBOLE_PY) -c "from recbole.data import create_dataset; from recbole.utils import get_trainer"
	rm -f $(RECBOLE_VENV)/.installed-*
	touch $@

## make reference [ARGS="--models ease,bpr"]: RecBole's models and ours on the same ML-100K split.
reference: setup reference-venv
	$(PY) benchmarks/reference_recbole.py $(ARGS)
