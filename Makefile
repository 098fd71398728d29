# Everything the README and .ci/run call. PYTHON picks the interpreter the venv is built from.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

NAB ?= ../shared/nab
BENCH_OUT ?= bench-results

.PHONY: install install-dev browser run test lint typecheck pytest bench bench-postgres evaluate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamp files make re-runs cheap: the venv is only re-synced when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Azure's 3.0.0b5 SDK (API v1.1-preview.1) beside 3.0.0b6 (same module name), for the
# tests that drive the service with each published client (tests/api/azure/).
AZURE_B5 := $(VENV)/azure-sdk-3.0.0b5

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -rf $(AZURE_B5)
	$(BIN)/python -m pip install --quiet --no-deps --target $(AZURE_B5) azure-ai-anomalydetector==3.0.0b5
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/anomaly-api serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

# Debian's chromium and chromium-driver for the browser tests (tests/ui/), and a CJK font
# so that their screenshots show the ids in Chinese script: installed when missing and
# running as root (CI); otherwise those tests skip, except under CI=true.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-zenhei
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && \
		     apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; }; \
	else echo "browser: chromium/chromedriver missing and not root: the browser tests will skip"; fi

pytest: install-dev browser
	$(BIN)/python -m pytest

test: lint typecheck pytest

# The README's performance tables: every scenario against a throwaway server (medians of
# 3 runs), how cost grows with series, points and cache size, and (where wrk and taskset
# are installed) the service against a bare ASGI app under wrk. Each prints markdown;
# JSON, markdown and scaling.png land in $(BENCH_OUT). About 8 minutes on 2 cores.
bench: install
	$(BIN)/anomaly-api bench --serve --scenario all --runs 3 --markdown --out $(BENCH_OUT)
	$(BIN)/anomaly-api bench --scenario scaling --out $(BENCH_OUT)
	@if command -v wrk >/dev/null && command -v taskset >/dev/null; then \
		$(BIN)/python benchmarks/wrk/compare.py --rounds 3 --seconds 10 --out $(BENCH_OUT); \
	else echo "bench: wrk or taskset not installed, skipping the wrk comparison (apt install wrk)"; fi

# The README's replica figures: PostgreSQL at 100,000 series (start time, warm random-series
# predicts under wrk, listing) and how soon another replica answers with a fit. Needs the
# PostgreSQL server of ANOMALY_TEST_POSTGRESQL_URL (default postgres@127.0.0.1:5432/test),
# where it creates and drops throwaway databases; wrk and taskset. About 7 minutes (5 rounds:
# the machine is noisy and the two figures compared differ by less than the noise of one round).
PG_ADMIN_URL ?= $(or $(ANOMALY_TEST_POSTGRESQL_URL),postgresql://postgres@127.0.0.1:5432/test)
bench-postgres: install
	$(BIN)/python benchmarks/postgres_scale.py --rounds 5 --postgresql-url $(PG_ADMIN_URL) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/replica_staleness.py --postgresql-url $(PG_ADMIN_URL) --out $(BENCH_OUT)

# Every detector on a NAB-layout corpus (the README's detection table).
evaluate: install
	$(BIN)/anomaly-api evaluate --data $(NAB)/data --labels $(NAB)/labels/combined_windows.json --out results

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache data build dist
