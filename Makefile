# OpenPartner — every command a newcomer needs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: help install run test test-sqlite test-postgres check fmt migrate clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

install: ## Install uv if missing, then the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet

run: install ## Start OpenPartner on the embedded default (SQLite in ./data): API on :8000
	$(UV) run openpartner up

test: install ## Run the test suite on SQLite, then PostgreSQL (required when CI=true)
	@scripts/test

test-sqlite: install ## Run the test suite on SQLite only
	@scripts/test sqlite

test-postgres: install ## Run the test suite on PostgreSQL only
	@scripts/test postgresql

check: install ## Lint, format check and strict type check
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

fmt: install ## Format and auto-fix lint
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

migrate: install ## Apply database migrations to DATABASE_URL (default: ./data/openpartner.db)
	$(UV) run openpartner migrate

clean: ## Remove the local data folder and caches
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
