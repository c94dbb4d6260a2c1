# Planwise: `make run` and `make test` on a fresh Debian machine. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PLANWISE := $(BIN)/planwise

.PHONY: install system venv clients functions db run test lint typecheck pytest bench clean-db

install: system venv clients functions

system:
	bash scripts/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: api/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'api[dev]'
	touch $@

# supabase-js and ws for the supabase-js contract test, exactly as package-lock.json pins
# them (npm writes node_modules/.package-lock.json, the stamp, on every install). Without
# Node.js >= 20 (Debian 12 ships 18) this says so and goes on: `make run` needs no Node,
# and the contract test fails with the same message until Node >= 20 is there.
clients: clients/js/node_modules/.package-lock.json

clients/js/node_modules/.package-lock.json: clients/js/package-lock.json clients/js/package.json
	@if node -e 'process.exit(process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null \
	    && command -v npm >/dev/null; then \
	  echo "cd clients/js && npm ci --no-audit --no-fund"; \
	  cd clients/js && npm ci --no-audit --no-fund; \
	else \
	  echo "clients: Node.js >= 20 with npm not found ($$(node --version 2>/dev/null || echo no node));" \
	       "supabase-js not installed, its contract test will fail (README: Supabase clients)"; \
	fi

# Deno for the Edge Functions (supabase/functions/NAME/index.ts), from npm's `deno` package
# (its optional dependency carries the Linux binary) as clients/deno/package-lock.json pins
# it; then every function's imports into Deno's cache, clients/deno/cache (`--frozen` to the
# function's deno.lock), so that no call downloads anything.
DENO := clients/deno/node_modules/.bin/deno

functions: clients/deno/node_modules/.package-lock.json
	@for entry in supabase/functions/*/index.ts; do \
	  dir=$$(dirname $$entry); flags=--no-config; \
	  if [ -f $$dir/deno.json ]; then flags=--config=$$dir/deno.json; fi; \
	  if [ -f $$dir/deno.lock ]; then flags="$$flags --frozen"; fi; \
	  echo "deno cache $$flags $$entry"; \
	  DENO_DIR=$(CURDIR)/clients/deno/cache $(DENO) cache --quiet $$flags $$entry || exit 1; \
	done

clients/deno/node_modules/.package-lock.json: clients/deno/package-lock.json clients/deno/package.json
	cd clients/deno && npm ci --no-audit --no-fund

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
	cd api && ../$(BIN)/pytest -q --durations=25

test: lint typecheck pytest

# Every figure at a million places, then the recommendation figures at ten million (their
# own database; recall on 20 requests, as each ground truth is a full scan of 10M rows).
# Writes bench/results/latest.{json,md}; takes about an hour (README, Performance).
bench: db
	$(PLANWISE) bench all --places 1000000
	$(PLANWISE) bench recommend --places 10000000 --database planwise_bench_10m --recall-samples 20
