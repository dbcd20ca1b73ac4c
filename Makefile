# TradoSphere developer entry points. Every target is idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP := $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

# Test services started by tests/services.sh; override from the environment.
DATABASE_URL ?= postgres://tradosphere:tradosphere@127.0.0.1:5432/tradosphere
REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: help install install-dev run test lint clean

help: ## Show this help
	@echo "TradoSphere make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "Variables: PYTEST_ARGS='...' (extra pytest args), DATABASE_URL, REDIS_URL (test services)"

# Debian ships venv/ensurepip separately (python3-venv); install it on demand.
$(PY):
	@test -n "$(PYTHON_BOOTSTRAP)" || { echo "python3.11 or python3 is required" >&2; exit 1; }
	@if ! $(PYTHON_BOOTSTRAP) -m venv $(VENV); then \
		rm -rf $(VENV); \
		command -v apt-get >/dev/null || exit 1; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		ver=$$($(PYTHON_BOOTSTRAP) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y python$$ver-venv || \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y python3-venv; \
		$(PYTHON_BOOTSTRAP) -m venv $(VENV); \
	fi

$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PIP) install --upgrade pip
	$(PIP) install -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements-dev.txt requirements.txt $(RUNTIME_STAMP)
	$(PIP) install -r requirements-dev.txt
	@touch $@

install: $(RUNTIME_STAMP) ## Create .venv and install runtime dependencies

install-dev: $(DEV_STAMP) ## install + test/lint tools

run: install ## Run the full app locally (web, copier, celery worker+beat, redis)
	$(PY) -m tradosphere.devenv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	exec $(PY) -m tradosphere.devrun

lint: install-dev ## ruff + mypy --strict on copier/core
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict copier/core

test: export DATABASE_URL := $(DATABASE_URL)
test: export REDIS_URL := $(REDIS_URL)
test: install-dev ## Start Postgres+Redis, lint, type-check and run pytest
	bash tests/services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict copier/core
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean: ## Remove var/ and caches (keeps .venv)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
