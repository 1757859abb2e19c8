# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .demo
# Where `make demo` serves syncd and the Xero sandbox (e.g. `make demo DEMO_PORT=8001`).
DEMO_PORT ?= 8000
DEMO_SANDBOX_PORT ?= 8900
PG_HOST := 127.0.0.1
PG_PORT := 5432

.PHONY: demo shell test install audit lint format postgres chromium clean benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exactly the versions pinned in constraints.txt (pyproject.toml keeps only lower bounds); a
# package the install brought in that is not pinned there, at that version, fails the install.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	@$(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^setuptools==' \
		| grep -vxF -f constraints.txt > $(VENV)/.unpinned || true
	@if [ -s $(VENV)/.unpinned ]; then \
		echo "installed but not pinned in constraints.txt (regenerate it, see its header):"; \
		cat $(VENV)/.unpinned; exit 1; \
	fi
	touch $@

install: $(STAMP)

# Known vulnerabilities in the pinned set, asked of PyPI's vulnerability data (pip-audit's
# default service; its per-version JSON API) with a fresh cache, so that the answer is today's.
# --strict: a package the service cannot answer for fails the audit instead of being skipped
# (without it pip-audit reports "No known vulnerabilities found, N skipped" and exits 0 when it
# audited nothing); an unreachable service fails it too. Needs the network, so it is not part of
# `make test`.
audit: install
	@cache=$$(mktemp -d); \
	$(BIN)/pip-audit --strict --requirement constraints.txt --no-deps --disable-pip \
		--progress-spinner off --cache-dir "$$cache"; status=$$?; rm -rf "$$cache"; \
	if [ $$status -ne 0 ]; then \
		echo "make audit FAILED: known vulnerabilities above, or the vulnerability service could not be asked about every pinned package (then nothing was audited)" >&2; \
	fi; \
	exit $$status

# Start the local PostgreSQL cluster if it is down, and wait until it accepts connections.
postgres:
	@if ! pg_isready -h $(PG_HOST) -p $(PG_PORT) -q 2>/dev/null; then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	fi
	@for i in $$(seq 1 30); do pg_isready -h $(PG_HOST) -p $(PG_PORT) -q && exit 0; sleep 1; done; \
		echo "PostgreSQL did not come up on $(PG_HOST):$(PG_PORT)"; exit 1

# A Chromium for the browser tests: Debian's when it is there or apt-get can install it (root,
# online); else Playwright's own, downloaded into the venv (tests/browser/chromium.py finds
# either). When neither can be had the browser tests stop with one line saying how to get one.
PW_BROWSERS := $(VENV)/playwright-browsers
chromium: install
	@command -v chromium >/dev/null && exit 0; \
	ls $(PW_BROWSERS)/chromium*/chrome-*/* >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; then exit 0; fi; \
	echo "apt-get cannot install chromium here: trying Playwright's Chromium in $(PW_BROWSERS)"; \
	PLAYWRIGHT_BROWSERS_PATH=$(PW_BROWSERS) $(BIN)/playwright install chromium \
		|| echo "no Chromium could be installed; the browser tests will say how to get one" >&2

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
# around: syncd on 127.0.0.1:$(DEMO_PORT), the sandbox on 127.0.0.1:$(DEMO_SANDBOX_PORT). Ctrl-C
# stops. The demo writes its whole configuration to .demo/.env, so every syncd command run in
# .demo/ works on it.
demo: install
	@mkdir -p $(DEMO_DIR)
	@if [ ! -f $(DEMO_DIR)/.env ]; then \
		echo "SYNCD_ENCRYPTION_KEYS=$$($(BIN)/syncd keys generate)" > $(DEMO_DIR)/.env; \
		echo "SYNCD_JWT_SECRET=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> $(DEMO_DIR)/.env; \
	fi
	cd $(DEMO_DIR) && exec ../$(BIN)/syncd demo --serve --port $(DEMO_PORT) \
		--sandbox-port $(DEMO_SANDBOX_PORT)

# A shell with the venv's bin/ (syncd, pytest, ruff) first on PATH; `exit` leaves it.
shell: install
	@echo "syncd is on PATH in this shell ($(CURDIR)/$(BIN)); exit leaves it"
	@VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(BIN):$$PATH" exec $${SHELL:-/bin/sh}

# Not part of `make test`: measured figures, reported as ratios against a baseline
# (docs/benchmarks.md: what each measures, how long it takes, figures measured).
benchmarks: install postgres
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python benchmarks/webhook_ack.py --web-processes 1,2
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python benchmarks/outbound.py --workers 1,3

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
