# Sluice: `make demo` runs the main job, `make test` runs every check CI runs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TOOLS   := .tools/bin

.PHONY: demo test lint unit integration venv tools bench clean

demo: $(STAMP)
	$(BIN)/sluice demo

test: $(STAMP) tools lint
	$(BIN)/pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

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

tools: $(TOOLS)/kubectl-1.35 $(TOOLS)/kubectl-1.20 $(TOOLS)/prometheus

$(TOOLS)/kubectl-1.35 $(TOOLS)/kubectl-1.20:
	bash scripts/install-kubectl.sh

$(TOOLS)/prometheus:
	bash scripts/install-prometheus.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
