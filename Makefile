# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .demo
PG_HOST := 127.0.0.1
PG_PORT := 5432

.PHONY: demo test install lint format postgres chromium clean benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(STAMP)

# Start the local PostgreSQL cluster if it is down, and wait until it accepts connections.
postgres:
	@if ! pg_isready -h $(PG_HOST) -p $(PG_PORT) -q 2>/dev/null; then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	fi
	@for i in $$(seq 1 30); do pg_isready -h $(PG_HOST) -p $(PG_PORT) -q && exit 0; sleep 1; done; \
		echo "PostgreSQL did not come up on $(PG_HOST):$(PG_PORT)"; exit 1

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# ruff, mypy, then every test against SQLite and PostgreSQL.
test: install postgres chromium lint
	SYNCD_TEST_DATABASES=sqlite,postgresql $(BIN)/pytest

# The whole story on SQLite and the bundled sandbox (in .demo/), then keep serving for a look
# around: syncd on 127.0.0.1:8000, the sandbox on 127.0.0.1:8900. Ctrl-C stops.
demo: install
	@mkdir -p $(DEMO_DIR)
	@if [ ! -f $(DEMO_DIR)/.env ]; then \
		echo "SYNCD_ENCRYPTION_KEYS=$$($(BIN)/syncd keys generate)" > $(DEMO_DIR)/.env; \
		echo "SYNCD_JWT_SECRET=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> $(DEMO_DIR)/.env; \
	fi
	cd $(DEMO_DIR) && exec ../$(BIN)/syncd demo --serve

# Not part of `make test`: measured figures, reported as ratios against a baseline.
benchmarks: install postgres
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python benchmarks/webhook_ack.py
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python benchmarks/outbound.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
