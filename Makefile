# Two commands on a fresh machine with Python 3.11:
#   make serve   installs the portal and serves the demo at http://127.0.0.1:5000
#   make test    installs what the tests need and runs the whole suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test catalogs browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(MAKE) catalogs

catalogs:
	$(BIN)/pybabel compile -f -d portal/translations

serve: install
	$(BIN)/flask --app wsgi run --host 127.0.0.1 --port 5000

install-test: install
	$(BIN)/pip install -r requirements-dev.txt
	$(MAKE) browser

# Debian's Chromium (Playwright drives it; no browser download) and axe-core from npm.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  else sudo apt-get update && sudo apt-get install -y chromium; fi; }
	@[ -f node_modules/axe-core/axe.min.js ] || npm ci --no-audit --no-fund

test: install-test
	$(BIN)/pytest
