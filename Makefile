# For a newcomer:  `make app` (set up, then open the web app with the bundled model), `make demo` (set up,
# then classify the example photos) and `make test` (set up, then lint and run the whole test suite).
# All need only Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup app demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): installing Pilah and its dependencies (the first time only; a minute or two)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]' | grep -E '^(Collecting|Installing|Successfully)' || true
	@test -x $(BIN)/pilah || { echo "installing Pilah failed: run $(BIN)/python -m pip install -e '.[dev]'"; exit 1; }
	touch $(STAMP)

app: setup
	$(BIN)/pilah app

demo: setup
	$(BIN)/pilah predict examples/

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
