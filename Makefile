# gradinv — set-up, main job, tests. Every target creates what it needs if absent.
#   make reproduce   set up, build offline assets, run every notebook's smoke profile
#   make test        set up, build offline assets, run unit tests + nbval on every notebook
#   make lab         open JupyterLab on notebooks/ with the project's kernel
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := $(VENV)/.assets
PROFILE ?= smoke
PAPER   ?= all

.PHONY: setup assets reproduce test unit nbval lint format lab sync bench clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[data,priors,notebooks,test,ray,slurm]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (gradinv)" >/dev/null
	touch $(STAMP)

assets: $(ASSETS)

$(ASSETS): $(STAMP) scripts/install_offline_data.sh
	bash scripts/install_offline_data.sh
	$(BIN)/gradinv assets
	touch $(ASSETS)

reproduce: assets
	$(BIN)/gradinv reproduce --paper $(PAPER) --profile $(PROFILE)

unit: assets
	$(BIN)/python -m pytest tests

# an empty temporary run store: CI computes every notebook's cells from scratch
nbval: assets
	store=$$(mktemp -d) && trap 'rm -rf "$$store"' EXIT && \
	GRADINV_STORE=$$store GRADINV_BLOCK_NETWORK=1 $(BIN)/python -m pytest -o addopts="" -p no:cacheprovider --nbval-lax notebooks/

test: unit nbval

lint: setup
	$(BIN)/ruff check src tests benchmarks notebooks/*.py
	$(BIN)/ruff format --check src tests benchmarks notebooks/*.py

format: setup
	$(BIN)/ruff format src tests benchmarks notebooks/*.py
	$(BIN)/ruff check --fix src tests benchmarks notebooks/*.py

sync: setup
	$(BIN)/jupytext --sync notebooks/*.py

lab: assets
	$(BIN)/gradinv lab

bench: assets
	$(BIN)/python benchmarks/bench_attack_speed.py

clean-runs:
	rm -rf papermill_runs/out runs
