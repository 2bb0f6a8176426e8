# The two commands: `make run` and `make test`. Each sets itself up.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench setup clean

$(STAMP): pyproject.toml ops/bootstrap.sh
	@bash ops/bootstrap.sh
	@touch $(STAMP)

setup: $(STAMP)

## Start the API on http://127.0.0.1:8000 with the embedded database and demo data.
run: $(STAMP)
	$(BIN)/settlement migrate
	$(BIN)/settlement demo
	$(BIN)/settlement serve

## Run the whole suite against a real PostgreSQL (embedded unless DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/settlement bench ledger
	$(BIN)/settlement bench api

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
