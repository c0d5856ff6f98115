# Two commands on a fresh machine: `make start` and `make test`.
# Each installs what it needs into .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make start` needs the runtime dependencies (with the `voice` extra: voice transcripts,
# docs/media.md); the tests add the `test` extra.
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

# Test-only Node packages: every tests/node/*/ folder with a package.json (the real agent CLIs,
# the Node Feishu SDK, ...) is installed from its lockfile; skipped, with a message, without npm.
NODE_DIRS := $(patsubst %/package.json,%,$(wildcard tests/node/*/package.json))
NODE_STAMPS := $(addsuffix /node_modules/.installed,$(NODE_DIRS))

.PHONY: start test test-fast check sandbox bench clean node-deps

$(RUNTIME): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[voice]"
	@touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

start: $(RUNTIME)
	$(BIN)/rudder start

sandbox: $(RUNTIME)
	$(BIN)/rudder sandbox

node-deps: $(NODE_STAMPS)

.SECONDEXPANSION:
tests/node/%/node_modules/.installed: tests/node/%/package.json $$(wildcard tests/node/%/package-lock.json)
	@if command -v npm >/dev/null 2>&1; then \
	  echo "installing test-only Node packages in tests/node/$*"; \
	  if [ -f tests/node/$*/package-lock.json ]; then verb=ci; else verb=install; fi; \
	  if (cd tests/node/$* && npm $$verb --no-audit --no-fund --loglevel=error); then touch $@; \
	  else echo "warning: npm $$verb failed in tests/node/$* (the tests that need it skip or fail)" >&2; fi; \
	else \
	  echo "npm not found: skipping tests/node/$* (the tests that need it skip)"; \
	fi

test: $(STAMP) node-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier only (no PostgreSQL, browser, loopback servers or processes): under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

check: $(STAMP)
	scripts/check

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(addsuffix /node_modules,$(NODE_DIRS))
