# Everything runs from .venv, which `setup` creates; `demo` and `test` create it when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Quix Streams baseline of `muse bench` (and tests/integration/test_quix_baseline.py) runs in a
# venv of its own: quixstreams pins confluent-kafka<2.13, and .venv keeps the newest.
QUIX_VENV := .venv-quix
QUIX_STAMP := $(QUIX_VENV)/.installed

.PHONY: setup kcat demo test test-unit lint format broker-start broker-stop clean

setup: $(STAMP) $(QUIX_STAMP) kcat

# kcat is the plain Kafka client the README shows tenants and tests/integration/test_tenant_clients.py
# uses. Installed only when missing, only as root and only with apt-get; never fails the build (the
# tests that need it fail then, and say so).
kcat:
	@command -v kcat >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  echo "installing kcat with apt-get" && apt-get update -qq && apt-get install -y -qq kcat >/dev/null; } || \
	  echo "kcat is not installed and could not be installed here; install it (Debian/Ubuntu: apt-get install kcat), or the tenant-client tests fail"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "muse-stream needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

$(QUIX_STAMP): pyproject.toml
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install --quiet --upgrade pip
	$(QUIX_VENV)/bin/pip install --quiet -e '.[bench]'
	touch $(QUIX_STAMP)

demo: $(STAMP)
	$(BIN)/muse demo

# Test modules are spread over TEST_PROCESSES processes, each with its own throwaway broker; a
# module's tests stay in one process (--dist loadfile), as they share module fixtures.
TEST_PROCESSES ?= 2
test: $(STAMP) $(QUIX_STAMP) kcat
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Lint and type-check as CI does (.ci/run runs this before the tests); `make format` fixes formatting.
lint: $(STAMP)
	$(BIN)/ruff check muse_stream tests examples
	$(BIN)/ruff format --check muse_stream tests examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix muse_stream tests examples
	$(BIN)/ruff format muse_stream tests examples

broker-start: $(STAMP)
	$(BIN)/muse broker start

broker-stop: $(STAMP)
	$(BIN)/muse broker stop

clean:
	-test -x $(BIN)/muse && $(BIN)/muse broker stop
	rm -rf $(VENV) $(QUIX_VENV) build *.egg-info .pytest_cache .hypothesis
