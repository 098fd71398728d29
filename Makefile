# Everything the README and .ci/run call. PYTHON picks the interpreter the venv is built from.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

NAB ?= ../shared/nab

.PHONY: install install-dev run test lint typecheck pytest bench evaluate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamp files make re-runs cheap: the venv is only re-synced when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/anomaly-api serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: install
	$(BIN)/anomaly-api bench

# Every detector on a NAB-layout corpus (the README's detection table).
evaluate: install
	$(BIN)/anomaly-api evaluate --data $(NAB)/data --labels $(NAB)/labels/combined_windows.json --out results

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache data build dist
