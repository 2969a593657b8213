# capkit — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?=
RUN ?=
PGBOUNCER ?=
TEST_WORKERS ?= 3
SERVICE ?= reference
REPEATS ?= 5

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (capkit)" >/dev/null
	$(BIN)/python -m compileall -q capkit  # bytecode now, also where PYTHONDONTWRITEBYTECODE is set
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install capkit with its dev tools

plan: $(STAMP) ## Search the reference service's capacity and publish the report (PROFILE=smoke|quick|full: a fixed grid)
	$(BIN)/capkit plan $(if $(PROFILE),--profile $(PROFILE))

plan-pg: $(STAMP) ## `make plan` on PostgreSQL + Redis; PGBOUNCER=1 behind PgBouncer, PGBOUNCER=compare both + comparison
	ops/plan-postgres.sh $(if $(filter compare,$(PGBOUNCER)),--compare-pgbouncer,$(if $(PGBOUNCER),--pgbouncer)) $(if $(PROFILE),--profile $(PROFILE))

system-deps: ## Install the missing Debian packages the tests need (Chromium, fonts, pgbouncer, haproxy), as root
	ops/install-system-deps.sh

test: $(STAMP) system-deps ## Run the whole test suite (unit, service, end-to-end, browser, notebooks under nbmake)
	@# the rest in parallel (a test file per worker: its load runs one after another, its module
	@# fixtures once), then the tests that read measured timing alone (marked in tests/conftest.py)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not load"; rest=$$?; \
	$(BIN)/pytest -m load; load=$$?; \
	exit $$(( rest != 0 ? rest : load ))

report: $(STAMP) ## Re-publish the report of RUN (default: the latest run)
	$(BIN)/capkit report $(RUN)

lab: $(STAMP) ## Open JupyterLab on notebooks/ with the venv's kernel
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP) ## Benchmarks against their anchors (≤ 10 min) → benchmarks/results.md and .json
	$(BIN)/python -m benchmarks.run

truth: $(STAMP) ## Capacity accuracy by the truth protocol: SERVICE=reference|datasette|kinto REPEATS=5 (~10 min a repeat)
	$(BIN)/python -m benchmarks.truth --service $(SERVICE) --repeats $(REPEATS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

clean: ## Remove runs/ and reports/ output (keeps .venv)
	rm -rf runs reports/*/

.PHONY: help install system-deps plan plan-pg test report lab bench truth lint clean
