# The README's two commands: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APP_STAMP  := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed
PYTEST_WORKERS ?= 2

.PHONY: install serve serve-scaled test lint bench widget clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(APP_STAMP)

install: $(APP_STAMP)

## make serve: install, migrate the embedded SQLite database, serve on 127.0.0.1:8000
serve: $(APP_STAMP)
	$(BIN)/mailwidget serve --host 127.0.0.1 --port 8000

## make serve-scaled: API_PROCESSES (2) API processes on one port and SCAN_WORKERS (2) scan
## workers on the PostgreSQL database of DATABASE_URL (README: "Several processes")
serve-scaled: $(APP_STAMP)
	$(BIN)/python scripts/serve_scaled.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

## make test: system packages the tests need (Dovecot, PostgreSQL, Chromium, Thunderbird with
## Xvfb and openbox), then every test on SQLite, then the database tests again on a throwaway
## PostgreSQL cluster (the Thunderbird module has a database of its own: it runs once).
## --dist loadfile keeps the Thunderbird module on one worker (one Thunderbird start).
test: $(TEST_STAMP)
	bash scripts/test-deps.sh
	$(MAKE) lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile
	MAILWIDGET_TEST_DB=postgres $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m db

bench: $(TEST_STAMP)
	bash scripts/test-deps.sh
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

## make widget: the Thunderbird extension (.xpi) in build/, from the files /widget/ serves
widget: $(APP_STAMP)
	$(BIN)/python scripts/pack_widget.py build

clean:
	rm -rf $(VENV) var build dist *.egg-info
