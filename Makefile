# The two commands of the README: `make run` and `make test`. Both build .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run demo test lint typecheck pytest migrate postgres browser-deps bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

## make run: migrate the default SQLite database and serve the API on 127.0.0.1:8000
run: $(RUNTIME_STAMP)
	$(BIN)/outreach serve --host 127.0.0.1 --port 8000

## make demo: the whole loop in about 30 s (SQLite, a local SMTP server, the Graph API emulator)
demo: $(RUNTIME_STAMP)
	$(BIN)/outreach demo

migrate: $(RUNTIME_STAMP)
	$(BIN)/outreach migrate

## make test: ruff, mypy (strict) and the whole pytest suite on SQLite and PostgreSQL
test: $(DEV_STAMP) postgres browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP) postgres browser-deps
	$(BIN)/pytest

# PostgreSQL runs on every machine of this project; start it if it has stopped.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  (command -v pg_ctlcluster >/dev/null && \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start && \
	   for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done) || true

# Debian's Chromium for the browser tests (Playwright drives it; never `playwright install`).
browser-deps:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# Postfix's smtp-sink, the SMTP sink bench/email_send.py loads (aiosmtpd tops out near 2,900/s);
# Debian's policy-rc.d keeps the postfix daemon from starting in these containers.
bench-deps: $(DEV_STAMP)
	@test -x /usr/sbin/smtp-sink || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
