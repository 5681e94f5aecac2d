# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml

.PHONY: run once test lint typecheck pytest browser-deps check dry-run bench eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py src/mastwatch/rules/_native.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py src/mastwatch/rules/_native.c | $(BIN)/python
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

## bench: every benchmark (matching, daemon cycles, latency, burst, RSS, parsers, peers), one
## table; rewrites docs/benchmarks.md. What is only compared against (fastfeedparser, the peers
## reader and rss2email) goes to .venv/bench-extras, never into the project's dependencies;
## reader's vendored feedparser imports sgmllib, which feedparser no longer brings along.
## Each is installed on its own: one that cannot be is reported as such in the table.
BENCH_EXTRAS := fastfeedparser reader rss2email sgmllib3k
bench: $(VENV)/.installed-dev
	-@for package in $(BENCH_EXTRAS); do \
	  ls -d $(VENV)/bench-extras/$$package-*.dist-info >/dev/null 2>&1 || \
	  $(BIN)/python -m pip install --quiet --upgrade --target $(VENV)/bench-extras $$package || \
	  echo "bench: $$package could not be installed"; \
	done
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
