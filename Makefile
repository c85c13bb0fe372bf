# Kiln: `make demo` and `make test` work on a fresh machine with Python 3.11+, make and git;
# `make test` also installs the system tools its tests drive (Debian packages) where missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kiln-installed
SCAN_VENV ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed

.PHONY: demo test lint typecheck unit setup system-tools clean golden scan

TORCH_STAMP := $(VENV)/.kiln-torch-installed

setup: $(STAMP) $(TORCH_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Kiln needs Python 3.11 or newer")'
	@echo "==> creating $(VENV) and installing Kiln with its dev tools (first run: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
# setuptools reminds every editable install that folders named like a package shadow it;
# compiler/ and runtime/ are the package, so the reminder is noise here.
	@PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The optional `torch` extra, for TorchScript models served locally (docs/serving.md): the
# tests serve one. `make demo` serves no TorchScript model and does without it (3 GB).
$(TORCH_STAMP): $(STAMP)
	@echo "==> installing the torch extra into $(VENV) (first run: 3 GB, a few minutes)"
	@PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install --quiet -e '.[dev,torch]'
	@touch $(TORCH_STAMP)

demo: $(STAMP)
	@$(PY) -m runtime.examples.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The tests drive promtool, Prometheus and Alertmanager for real; this installs
# whichever are missing (apt-get, as root or with sudo -n) and is silent otherwise.
system-tools:
	@bash .ci/system-tools

unit: setup system-tools
	$(VENV)/bin/pytest -q

# Security scans (docs/security.md): ruff's bandit rules run in `lint`; these scan the
# compiled output with checkov (findings waived only in .ci/checkov-waivers.yaml) and
# audit the installed packages with pip-audit, which skips, saying so, where its
# advisory data cannot be reached. The scanners live in $(SCAN_VENV), apart from Kiln's.
$(SCAN_STAMP): .ci/scan-requirements.txt
	@echo "==> installing the security scanners into $(SCAN_VENV) (first run: about two minutes)"
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	@$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r .ci/scan-requirements.txt
	@touch $(SCAN_STAMP)

scan: $(STAMP) $(SCAN_STAMP)
	$(PY) .ci/scan_generated.py --checkov $(SCAN_VENV)/bin/checkov --out generated
	$(PY) .ci/audit_dependencies.py --pip-audit $(SCAN_VENV)/bin/pip-audit \
		--site-packages "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# system-tools first, so that a machine without them fails before the long steps.
test: system-tools lint typecheck scan unit

golden: $(STAMP)
	KILN_REGENERATE=1 $(VENV)/bin/pytest -q tests/golden

clean:
	rm -rf $(VENV) $(SCAN_VENV) .pytest_cache .mypy_cache .ruff_cache
