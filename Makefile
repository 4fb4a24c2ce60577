# ast-repro: the human interface. `make` (or `make help`) lists the targets.
# Everything runs in .venv, which the first target that needs it creates.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= smoke
# Extra notebook parameters, e.g. PARAMS="-p dataset esc50 -p epochs 25".
PARAMS  ?=
# Notebooks to run, e.g. NB="02 03" (empty: all, in order).
NB      ?=
# CPU threads for the smoke notebooks. NOTE: their stored outputs, which nbval compares, were
# made with 2 threads; float sums (and so a few-epoch training run) change with the thread
# count, so every target that checks or stores them pins it, on any machine.
SMOKE_THREADS ?= 2
# Seconds a single notebook cell may run before papermill/nbval give up.
CELL_TIMEOUT ?= 3600
# `make train RECIPE=speechcommands SET="epochs=10 batch_size=64"`
RECIPE  ?= smoke_speechcommands
SET     ?=
# Datasets for `make data` / `make twins`, and the twins' size (smoke|small|medium).
NAMES   ?= esc50 speechcommands audioset
SIZE    ?= smoke

.DEFAULT_GOAL := help
.PHONY: help setup system-deps test test-fast check format notebooks demo store-notebooks \
        report data twins train lab bench bench-model bench-loader bench-gpu clean

help: ## list the targets
	@echo "ast-repro: reproduce the Audio Spectrogram Transformer"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

setup: $(STAMP) ## create .venv with the pinned packages and register the Jupyter kernel

$(STAMP): pyproject.toml environment.yml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# The pins live in environment.yml; pip gets them as constraints.
	sed -nE 's/^ +- ([A-Za-z0-9_.-]+==[^ #]+).*/\1/p' environment.yml > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt torch torchaudio
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev,lab]'
	$(BIN)/python -m ipykernel install --sys-prefix --name ast-repro \
		--display-name "Python (ast-repro)" > /dev/null
	touch $@

system-deps: ## install espeak-ng (speaks the Speech Commands twin) if missing
	@if command -v espeak-ng > /dev/null; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		echo "installing espeak-ng with apt-get"; \
		apt-get update -qq > /dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng > /dev/null; \
	else \
		echo "espeak-ng is missing: it speaks the offline Speech Commands twin."; \
		echo "  Debian/Ubuntu: sudo apt-get install espeak-ng"; \
		echo "  macOS:         brew install espeak-ng"; \
		echo "  conda:         conda install -c conda-forge espeak-ng"; \
		exit 1; \
	fi

test: setup system-deps ## run the unit tests and nbval over notebooks/ (what CI runs)
	OMP_NUM_THREADS=$(SMOKE_THREADS) $(BIN)/pytest tests notebooks --nbval-lax --nbval-kernel-name ast-repro \
		--nbval-cell-timeout $(CELL_TIMEOUT) -p no:cacheprovider

test-fast: setup ## unit tests only, without the slow ones and the notebooks
	$(BIN)/pytest tests -m "not slow" -q

check: setup ## lint and format check (ruff) and clean-notebook check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ast-repro notebooks check

format: setup ## apply ruff formatting and clean the notebooks
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/ast-repro notebooks clean

notebooks: setup system-deps ## run the notebooks with papermill (PROFILE=smoke|paper, NB=, PARAMS=)
	$(BIN)/ast-repro notebooks run $(NB) -p profile $(PROFILE) $(PARAMS) --timeout $(CELL_TIMEOUT)

demo: ## the offline default: every notebook in the smoke profile, on CPU
	OMP_NUM_THREADS=$(SMOKE_THREADS) $(MAKE) notebooks PROFILE=smoke PARAMS=

store-notebooks: setup system-deps ## refresh the stored outputs that nbval checks
	OMP_NUM_THREADS=$(SMOKE_THREADS) $(BIN)/ast-repro notebooks store --timeout $(CELL_TIMEOUT)

report: setup ## paper vs reproduced: results/report/report.md and the README's table
	$(BIN)/ast-repro report --readme README.md

data: setup ## download and prepare the real datasets (NAMES="esc50 speechcommands")
	for name in $(NAMES); do $(BIN)/ast-repro data $$name || exit 1; done

twins: setup system-deps ## generate and prepare the offline twins (SIZE=smoke|small|medium)
	for name in $(NAMES); do $(BIN)/ast-repro data $$name --synthetic --size $(SIZE) || exit 1; done

train: setup ## train a recipe (RECIPE=name SET="key=value ..."); `ast-repro train --help`
	$(BIN)/ast-repro train --recipe $(RECIPE) $(foreach kv,$(SET),--set $(kv))

lab: setup ## open JupyterLab on notebooks/
	$(BIN)/jupyter lab notebooks

bench: setup ## feature-extraction benchmark against torchaudio and transformers
	$(BIN)/ast-repro bench --clips 64 --repeats 15

bench-model: setup ## model speed (inference, train step) against transformers' AST
	$(BIN)/ast-repro bench-model

bench-loader: setup ## clips/s one loader worker delivers per recipe (needs the twins: make twins)
	$(BIN)/ast-repro bench-loader

# The GPU machine has no .venv and no internet: bench-gpu runs with .venv's python when
# there is one, else python3 (see benchmarks/gpu.sh for the offline wheels).
GPU_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
bench-gpu: ## every GPU figure of benchmarks/RESULTS.md in one run (~8 min; GPU_ARGS=--cpu rehearses)
	PYTHON=$(GPU_PYTHON) bash benchmarks/gpu.sh $(GPU_ARGS)

clean: ## remove caches and executed notebook copies; keeps data/ and results of runs
	rm -rf .pytest_cache .ruff_cache results/notebooks/smoke
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
