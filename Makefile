# Each target installs what it needs into .venv first, so a fresh clone needs nothing else.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-quick clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scr demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-quick: $(STAMP)
	$(BIN)/python -m bench ingest --quick

clean:
	rm -rf $(VENV) scr-demo.db* scr-demo-sources .pytest_cache .mypy_cache .ruff_cache
