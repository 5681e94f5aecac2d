# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml

.PHONY: run once test lint typecheck pytest browser-deps check dry-run bench eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

## run: start the daemon on config.example.toml (offline sample feeds, console alerts)
run: $(VENV)/.installed
	$(BIN)/mastwatch run --config $(CONFIG)

## once: one poll of every source, deliver, exit
once: $(VENV)/.installed
	$(BIN)/mastwatch run --once --config $(CONFIG)

## test: lint, type-check and run the whole suite
test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev browser-deps
	$(BIN)/pytest

## browser-deps: Debian's chromium for tests/browser (installed only when missing and root)
browser-deps:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	  echo "chromium missing: tests/browser will try to install it, or apt-get install chromium"

check: $(VENV)/.installed
	$(BIN)/mastwatch check --config $(CONFIG)

## eval: score the shipped rules per topic through `mastwatch dry-run` (dev and held-out sets)
eval: $(VENV)/.installed-dev
	$(BIN)/python tests/eval_pack.py

## bench: every benchmark (matching, daemon cycles, latency, burst, RSS, parsers), one table;
## rewrites docs/benchmarks.md. fastfeedparser, for comparison only, goes to .venv/bench-extras
bench: $(VENV)/.installed-dev
	-@test -d $(VENV)/bench-extras || $(BIN)/python -m pip install --quiet \
	  --target $(VENV)/bench-extras fastfeedparser
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
