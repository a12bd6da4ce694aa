# antiphon developer tasks. `make test` and `make demo` set everything up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv test lint typecheck check demo bench clean

all: test

# Find an interpreter >= 3.12: $PYTHON if given, then python3.13/python3.12 on PATH, then pyenv's.
$(PY):
	@py="$$(scripts/find-python)" || exit 1; \
	echo "creating $(VENV) with $$py"; \
	"$$py" -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	@scripts/ensure-chromium || echo "chromium is missing: the viewer's browser test will skip"
	@scripts/ensure-redis
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benches
	$(VENV)/bin/ruff format --check src tests benches

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: test lint typecheck

demo: $(STAMP)
	$(VENV)/bin/antiphon demo

bench: $(STAMP)
	$(PY) -m benches journal --json

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
