# Two commands on a fresh machine: `make run` serves on :8080, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
# A turn mostly waits on the model: one worker process's event loop holds any number at once, and
# one worker per core spends the CPU they do need (deploy.sh: WORKERS is --cpu).
WORKERS ?= $(shell $(PYTHON) -c 'import os; print(os.cpu_count() or 1)')

.PHONY: run test lint typecheck unit redis-server chromium vendor-web clean

run: $(VENV)/.run-deps
	WORKERS=$(WORKERS) $(BIN)/functions-framework --target=main --source=main.py \
		--host=$(HOST) --port=$(PORT)

test: lint typecheck unit

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev-deps
	$(BIN)/mypy

unit: $(VENV)/.dev-deps redis-server chromium
	$(BIN)/python -m pytest

redis-server:
	@scripts/ensure-redis-server.sh

chromium:
	@scripts/ensure-chromium.sh

# The chat page's markdown-it and DOMPurify, copied from the npm packages web/ pins (needs npm);
# commit what it writes. Not part of `make test`: the vendored files are in the tree.
vendor-web:
	scripts/vendor-web.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# `make bench`: performance benchmarks (bench/run.py), not part of `make test`; it rewrites
# BENCHMARKS.md and bench/results.png. `make bench BENCH_ARGS=--quick` for a short run.
.PHONY: bench
bench: $(VENV)/.dev-deps redis-server
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(BIN)/python -m bench.run $(BENCH_ARGS)
