# Planwise: `make run` and `make test` on a fresh Debian machine. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PLANWISE := $(BIN)/planwise

.PHONY: install system venv db run test lint typecheck pytest clean-db

install: system venv

system:
	bash scripts/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: api/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'api[dev]'
	touch $@

# Start the managed cluster (unless DATABASE_URL points elsewhere), migrate, set role passwords.
db: install
	$(PLANWISE) db up
	$(PLANWISE) db migrate
	$(PLANWISE) db roles

HOST ?= 127.0.0.1
PORT ?= 8000

# Demo data once (idempotent), then the API in the foreground.
run: db
	$(PLANWISE) demo load
	$(PLANWISE) serve --host $(HOST) --port $(PORT)

lint: venv
	cd api && ../$(BIN)/ruff check planwise tests alembic && ../$(BIN)/ruff format --check planwise tests alembic

typecheck: venv
	cd api && ../$(BIN)/mypy --strict planwise

pytest: install
	cd api && ../$(BIN)/pytest -q

test: lint typecheck pytest
