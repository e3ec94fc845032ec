# For a newcomer: `make app` (set up, then open the web app with the bundled model), `make demo` (set up, then
# classify the example photos) and `make test` (set up with the dev tools, lint, run the whole test suite).
# All need only Python >= 3.11. `make app` and `make demo` install the light default (no TensorFlow);
# `make test` adds training, export and the test tools. `make web` adds `pilah[web]` (onnx) and builds and serves
# the offline browser app (it also needs Node.js and npm).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEV := $(VENV)/.installed-dev
WEB := $(VENV)/.installed-web
PIP_PROGRESS := | grep -E '^(Collecting|Installing|Successfully)' || true
# Test processes: the tests are CPU-bound (TensorFlow, ONNX Runtime, an emulator); one per core of a 2-core CI.
TEST_WORKERS ?= 2

.PHONY: setup dev app demo web test lint clean

setup: $(INSTALLED)
dev: $(DEV)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	@echo "Installing Pilah into $(VENV) (the first time only; about a minute)..."
	$(BIN)/python -m pip install -e . $(PIP_PROGRESS)
	@test -x $(BIN)/pilah || { echo "installing Pilah failed: run $(BIN)/python -m pip install -e ."; exit 1; }
	touch $(INSTALLED)

$(WEB): $(INSTALLED)
	$(BIN)/python -m pip install -e '.[web]' $(PIP_PROGRESS)
	@$(BIN)/python -c "import onnx" || { echo "installing pilah[web] failed"; exit 1; }
	touch $(WEB)

$(DEV): pyproject.toml | $(BIN)/python
	@echo "Installing Pilah with training, export and test tools into $(VENV) (the first time only; minutes)..."
	$(BIN)/python -m pip install -e '.[dev]' $(PIP_PROGRESS)
	@$(BIN)/python -c "import keras, pytest, xdist, importlinter, ray" || { echo "installing the dev tools failed"; exit 1; }
	touch $(INSTALLED) $(DEV) $(WEB)

app: setup
	$(BIN)/pilah app

demo: setup
	$(BIN)/pilah predict examples/

# The offline browser app: build the static site (needs Node.js and npm once, for onnxruntime-web) and serve it on
# http://127.0.0.1:8700 (docs/web.md: a phone, a static host).
web: $(WEB)
	$(BIN)/pilah web build --out build/web
	$(BIN)/pilah web serve --dir build/web

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
