# TokenLedger's everyday commands. `make run` and `make test` set everything up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed-$(shell sha256sum $(LOCK) 2>/dev/null | cut -c1-16)
PORT ?= 8000

# Tests run with DEBUG off, as production does, with a throwaway key.
TEST_ENV := SECRET_KEY=$${SECRET_KEY:-test-only-secret-key} DEBUG=$${DEBUG:-0}
# `make run` is the local demo: DEBUG on unless said otherwise.
RUN_ENV := DEBUG=$${DEBUG:-1} PORT=$(PORT)

.PHONY: install run test lint imports format typecheck migrations-check check lock clean bench bench-gate

$(STAMP): $(LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	@rm -f $(VENV)/.installed-*
	@touch $@

# The SDK (clients/python) goes into the same environment, editable and without dependencies (httpx, openai and
# anthropic come from the lock), so its tests under tests/sdk run in `make test`.
SDK_STAMP := $(VENV)/.sdk-installed

$(SDK_STAMP): $(STAMP) clients/python/pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e clients/python
	@touch $@

install: $(STAMP) $(SDK_STAMP)

run: install
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py collectstatic --noinput --verbosity 0
	$(RUN_ENV) $(PY) manage.py sync_beat_schedule
	$(RUN_ENV) $(PY) manage.py seed_demo --announce
	$(RUN_ENV) $(PY) manage.py run_stack --port $(PORT)

test: install
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# The import arrows of DESIGN.md (pyproject.toml, [tool.importlinter]): core at the bottom, config on top.
imports: install
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install
	$(TEST_ENV) $(VENV)/bin/mypy .

migrations-check: install
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run

check: lint typecheck migrations-check test

# Benchmarks (bench/README.md, figures in docs/PERFORMANCE.md). They need PostgreSQL on 127.0.0.1:5432 (user postgres)
# and Redis on 127.0.0.1:6379, whose db 10 they flush; run them one at a time. A quick run:
#   make bench INGEST_ARGS="--events 20000" AUTHORIZE_ARGS="--pairs 200 --pings 400 --hot-pairs 100" CLOSE_ARGS="--accounts 1000"
bench: install
	$(PY) bench/ingest.py $(INGEST_ARGS)
	$(PY) bench/authorize.py $(AUTHORIZE_ARGS)
	$(PY) bench/close.py $(CLOSE_ARGS)

# The gate (issue 19): the account API against the framework's floor, measured from outside with Debian's `wrk`.
bench-gate: install
	$(PY) bench/gate.py $(GATE_ARGS)

# Regenerate the lock after editing pyproject.toml (needs `uv`: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o $(LOCK)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
