# Sluice: `make demo` runs the main job, `make test` runs every check CI runs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TOOLS   := .tools/bin

UI_STAMP := ui/node_modules/.installed
UI_OUT   := src/sluice/console/static/index.html
UI_SRC   := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json ui/package.json

.PHONY: demo test lint unit integration venv tools chromium netns-tools ui ui-test bench clean docs

demo: $(STAMP) ui netns-tools
	$(BIN)/sluice demo

test: $(STAMP) tools ui lint ui-test
	$(BIN)/pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) tools
	$(BIN)/pytest -q tests/integration

venv: $(STAMP)

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

tools: $(TOOLS)/kubectl-1.35 $(TOOLS)/kubectl-1.20 $(TOOLS)/prometheus chromium netns-tools

chromium:
	bash scripts/install-chromium.sh

# nftables, iproute2, dnsutils (dig): the pod network (netns mode), cluster DNS and their tests.
netns-tools:
	bash scripts/install-netns-tools.sh

# The console: npm packages from the registry (lock file pinned), bundle built into the Python package.
ui: $(UI_OUT)

$(UI_STAMP): ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	touch $(UI_STAMP)

$(UI_OUT): $(UI_STAMP) $(UI_SRC)
	cd ui && npm run --silent build

ui-test: $(UI_STAMP)
	cd ui && npx tsc -p . && npx vitest run

$(TOOLS)/kubectl-1.35 $(TOOLS)/kubectl-1.20:
	bash scripts/install-kubectl.sh

$(TOOLS)/prometheus:
	bash scripts/install-prometheus.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache ui/node_modules src/sluice/console/static

# docs/istio-tasks.md: every Istio traffic-management task and sample, from the tests' istio_task/istio_sample marks.
docs: $(STAMP)
	$(BIN)/python scripts/istio_tasks.py
