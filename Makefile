# The CRM event backbone. `make help` lists the targets.
# Everything runs from a virtualenv in .venv that the targets create themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVICE_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
PACKAGES := contracts $(SERVICE_DIRS)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run up down status test lint format typecheck unit contracts bench bench-smoke clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -r requirements-dev.txt \
		$(addprefix -e ,$(PACKAGES))
	touch $(STAMP)

install: $(STAMP) ## create .venv with every package (editable) and the dev tools

run: $(STAMP) ## start the whole back end on the embedded stack (Ctrl-C stops it)
	$(VENV)/bin/crmctl up

up: $(STAMP) ## start the back end in the background
	$(VENV)/bin/crmctl up --detach

down: $(STAMP) ## stop what `make up` started
	$(VENV)/bin/crmctl down

status: $(STAMP) ## show each process of the running back end
	$(VENV)/bin/crmctl status

lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy contracts/src $(wildcard services/*/src) bench

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

contracts: $(STAMP) ## regenerate JSON Schemas, AsyncAPI and EVENTS.md from the models
	$(VENV)/bin/crm-contracts generate

test: lint ## lint, the whole suite against a real broker and Postgres, then bench-smoke
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	$(PY) -m bench --smoke --name smoke

unit: $(STAMP) ## only the tests that need no servers
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP) ## every benchmark in one run (~20 min; BENCH_ARGS=--long); bench/results/
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: $(STAMP) ## every part of the benchmark for a few seconds; checks every figure
	$(PY) -m bench --smoke --name smoke

clean: ## remove the virtualenv and caches (keeps .state, the embedded data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
