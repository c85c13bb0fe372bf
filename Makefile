# Kiln: `make demo` and `make test` work on a fresh machine with Python 3.11+, make and git.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kiln-installed

.PHONY: demo test lint typecheck unit setup clean golden

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Kiln needs Python 3.11 or newer")'
	@echo "==> creating $(VENV) and installing Kiln with its dev tools (first run: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(PY) -m runtime.examples.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck unit

golden: $(STAMP)
	KILN_REGENERATE=1 $(VENV)/bin/pytest -q tests/golden

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
