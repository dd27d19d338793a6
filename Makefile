# Each target installs what it needs into .venv first, so a fresh clone needs nothing else.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser lint bench-quick clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

PORT ?= 8000

demo: $(STAMP)
	$(BIN)/scr demo --port $(PORT)

# One worker per core, each taking the other's tests when it runs out.
test: $(STAMP) browser
	$(BIN)/pytest -n auto --dist worksteal

# Debian's chromium for the browser tests (Playwright cannot download browsers here); without
# root the install is skipped and the browser tests say they were skipped.
browser:
	@test -x /usr/bin/chromium || apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
		|| echo "chromium not installed: the browser tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-quick: $(STAMP)
	$(BIN)/python -m bench ingest --quick

clean:
	rm -rf $(VENV) scr-demo.db* scr-demo-sources scr-demo-data test-artifacts .pytest_cache .mypy_cache .ruff_cache
