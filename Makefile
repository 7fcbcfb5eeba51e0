# refapi: `make run` serves the API on http://127.0.0.1:5000 (REFAPI_BIND=host:port to change it),
# `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The instance folder (SQLite database, development key): REFAPI_INSTANCE_PATH, as refapi reads it.
# $(value ...): the environment's text as it is, a $ in it included.
INSTANCE := $(or $(value REFAPI_INSTANCE_PATH),$(CURDIR)/instance)
DEV_KEY_FILE := $(INSTANCE)/dev-api-keys
# A value as one shell word, whatever it holds: spaces, apostrophes ('\'' ends, adds, reopens).
shell_word = '$(subst ','\'',$(1))'

# The development key file is used only when no key is configured in the environment.
ifeq ($(strip $(REFAPI_API_KEYS)$(REFAPI_API_KEYS_FILE)),)
RUN_KEYS := REFAPI_API_KEYS_FILE=$(call shell_word,$(DEV_KEY_FILE))
endif
INSTANCE_ENV := REFAPI_INSTANCE_PATH=$(call shell_word,$(INSTANCE))
# Only the server needs a key: flask commands (migrations, imports) start without one.
RUN_ENV := $(INSTANCE_ENV) $(RUN_KEYS)
# Where `make run` listens (REFAPI_BIND, else the loopback port 5000), and how curl reaches it.
RUN_BIND := $(or $(value REFAPI_BIND),127.0.0.1:5000)
ifneq ($(filter unix:%,$(RUN_BIND)),)
RUN_URL := --unix-socket $(call shell_word,$(patsubst unix:%,%,$(RUN_BIND))) http://localhost
else
RUN_URL := http://$(patsubst 0.0.0.0:%,127.0.0.1:%,$(patsubst [::]:%,[::1]:%,$(RUN_BIND)))
endif

.PHONY: run dev-key test lint type coverage-report migrate seed venv clean

$(BIN)/.installed: requirements.txt requirements-dev.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e .
	touch $@

venv: $(BIN)/.installed

## Serve the whole API with SQLite and the in-process cache: one worker, four threads.
## The health index is downloaded from Statbel on the first request that needs it.
run: dev-key
	$(INSTANCE_ENV) $(BIN)/flask --app wsgi db upgrade
	$(INSTANCE_ENV) $(BIN)/flask --app wsgi zipcodes import --if-empty
	$(RUN_ENV) REFAPI_BIND=$(call shell_word,$(RUN_BIND)) REFAPI_WORKERS=$${REFAPI_WORKERS:-1} \
		$(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

## The development key (created when no key is configured), printed with a curl to try it.
dev-key: venv
ifeq ($(RUN_KEYS),)
	@echo "Using the API keys configured in the environment."
else
	@$(BIN)/python -m refapi.auth.devkey $(call shell_word,$(DEV_KEY_FILE)) \
		--curl-target $(call shell_word,$(RUN_URL)/authorize)
endif

## Apply the database migrations to REFAPI_DATABASE_URL (default: the instance's SQLite file).
migrate: venv
	$(INSTANCE_ENV) $(BIN)/flask --app wsgi db upgrade

## The tox matrix: Python 3.10-3.13 on SQLite, `services` on PostgreSQL and Redis, `lowest` (B
## with setup.cfg's oldest releases), bench, lint, type, then the combined coverage report
## (fails under 95%). A Python that is not installed is skipped, except under CI=true: there a
## matrix that did not run every Python fails.
TOX_SKIP_MISSING := $(if $(filter true,$(CI)),false,config)
test: venv
	$(BIN)/tox run-parallel --parallel 2 --parallel-no-spinner --skip-missing-interpreters $(TOX_SKIP_MISSING)
	$(BIN)/tox run -e coverage

lint: venv
	$(BIN)/tox run-parallel --parallel 2 --parallel-no-spinner -e lint,type

coverage-report: venv
	$(BIN)/tox run -e coverage

clean:
	rm -rf $(VENV) .tox .coverage .coverage.* coverage.xml htmlcov build dist src/*.egg-info
