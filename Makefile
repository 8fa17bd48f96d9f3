# `make run` serves the API on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_WORKERS ?= auto

.PHONY: install install-dev install-browser run demo migrate test lint check format worker beat bench bench-serve lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# requirements/*.txt pin what we ask for; constraints.txt pins everything those bring with them.
$(VENV)/.base: $(BIN)/python requirements/base.txt requirements/constraints.txt
	$(BIN)/pip install --quiet -r requirements/base.txt -c requirements/constraints.txt
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements/dev.txt requirements/constraints.txt
	$(BIN)/pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

# Development server: DEBUG on unless the environment says otherwise.
run: export DEBUG ?= true
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# A demo tenant with a catalog, interactions and an API key (printed); then `make run`.
demo: export DEBUG ?= true
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --port $(PORT)

migrate: export DEBUG ?= true
migrate: install
	$(BIN)/python manage.py migrate --noinput

# Browser tests drive Debian's Chromium; install it when missing (CI fails without it).
install-browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get install -y chromium chromium-driver || (apt-get update && apt-get install -y chromium chromium-driver)) || \
		echo "warning: chromium could not be installed; the browser tests will be skipped (failed under CI)"

test: install-dev install-browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --cov --cov-report=term $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Static checks of CI: lint, types, security lint, known vulnerabilities of the pinned requirements.
check: lint
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r config tenants accounts apikeys recommendations usage
	$(BIN)/pip-audit -r requirements/constraints.txt --no-deps --progress-spinner off

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Development conveniences, as `run`; in production run celery itself (README, "Production").
worker: export DEBUG ?= true
worker: install
	$(BIN)/celery -A config worker

beat: export DEBUG ?= true
beat: install
	$(BIN)/celery -A config beat

# The load benchmark (PostgreSQL and Redis on 127.0.0.1); writes bench/RESULTS.md.
bench: install-dev
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(BIN)/python -m bench.run

# The benchmark's stack and tenant, left running for a load generator of one's own (see bench/run.py).
bench-serve: install-dev
	$(BIN)/python -m bench.run --serve

# After a change to base.txt or dev.txt (install it first): pins what the install now holds.
lock: install-dev
	{ echo "# Every package the dev install holds, direct or pulled in, at the version tested (pip constraints)."; \
	  echo "# Regenerate after changing base.txt or dev.txt: make lock"; \
	  $(BIN)/pip freeze --exclude-editable; } > requirements/constraints.txt

clean:
	rm -rf $(VENV) staticfiles .coverage .pytest_cache
