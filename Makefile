# Quick start: `make demo` (set up + run the demo), `make test` (set up + run the tests), `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

$(BIN)/trtdbg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint]'
	touch $(BIN)/trtdbg

setup: $(BIN)/trtdbg

demo: setup
	$(BIN)/trtdbg demo || [ $$? -eq 1 ]  # 1 = the report found failing tensors (the demo's point)

test: setup
	$(BIN)/python -m pytest

lint: setup  # configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .trtdbg
