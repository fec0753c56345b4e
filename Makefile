# smsbridge: every entry point. `make run` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_MINOR := 3.12
VENV := .venv
BIN := $(VENV)/bin
# The scanners live in their own venv: checkov pins an older boto3 and packaging than the project.
SCAN_BIN := .venv-scan/bin
# The Lambda runtime's Python (python3.12), found on PATH or through pyenv.
# (pyenv's shim answers for python3.12 only when 3.12 is selected, so ask it for the real path.)
PYTHON_FOR_VENV ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(PY_MINOR).*/bin/python$(PY_MINOR) 2>/dev/null | sort -V -r) $$(command -v python$(PY_MINOR)); do $$p -c 'import sys' 2>/dev/null && echo $$p && break; done)
# sam build must find python3.12 without a container: the venv's bin comes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export AWS_DEFAULT_REGION ?= eu-west-1
export SAM_CLI_TELEMETRY := 0

FUNCTIONS := $(wildcard functions/*/app.py)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements-dev.txt shared/requirements.txt
	@test -n "$(PYTHON_FOR_VENV)" || { echo "python$(PY_MINOR) not found (install it with pyenv)"; exit 1; }
	$(PYTHON_FOR_VENV) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: install
install: $(BIN)/.installed ## create .venv with everything the project needs

$(SCAN_BIN)/.installed: requirements-scan.txt
	@test -n "$(PYTHON_FOR_VENV)" || { echo "python$(PY_MINOR) not found (install it with pyenv)"; exit 1; }
	$(PYTHON_FOR_VENV) -m venv .venv-scan
	$(SCAN_BIN)/python -m pip install --quiet --upgrade pip
	$(SCAN_BIN)/python -m pip install --quiet -r requirements-scan.txt
	touch $@

.PHONY: lint
lint: install ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: typecheck
typecheck: install ## mypy (strict) over the layer, the local stack, tests, and each handler
	$(BIN)/mypy shared local tools bench tests
	@for f in $(FUNCTIONS); do $(BIN)/mypy --no-error-summary $$f || exit 1; done

.PHONY: validate
validate: install ## sam validate --lint (cfn-lint with the serverless rules)
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

.PHONY: scan
scan: $(SCAN_BIN)/.installed ## checkov over template.yaml, bandit over the deployed code: any finding fails
	BC_SKIP_MAPPING=TRUE $(SCAN_BIN)/checkov --file template.yaml --framework cloudformation \
		--compact --quiet --skip-download --output cli
	$(SCAN_BIN)/bandit --configfile pyproject.toml --recursive --quiet shared functions

.PHONY: unit
unit: install ## unit tests of the layer and the handler tests (moto in-process)
	$(BIN)/pytest tests/unit tests/handlers -q

.PHONY: fuzz
fuzz: install ## hostile bodies, headers and paths against every route (10,000+ cases)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2100} $(BIN)/pytest tests/handlers/test_fuzz.py -q -s

# The console's browser test (tests/e2e/test_console.py) drives Debian's Chromium with its driver.
# Installed with apt when missing and apt can run (CI runs as root); otherwise the test is skipped
# and says why. Never fails the build by itself.
.PHONY: browser
browser: ## Chromium and chromedriver for the console's browser test (apt-get, when missing)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null; then \
		echo "browser: no apt-get; the console's browser test will be skipped"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "browser: not root and no sudo; the console's browser test will be skipped"; exit 0; fi; \
		{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null; } \
		|| echo "browser: apt-get could not install chromium; the console's browser test will be skipped"; \
	fi

.PHONY: e2e
e2e: install browser ## end-to-end tests through the local stack over HTTP
	$(BIN)/pytest tests/e2e -q

# Test files run side by side, one worker per core (at most four): the soak and the end-to-end
# files spend most of their time waiting on the local stack.
TEST_WORKERS ?= auto

.PHONY: test
test: ## every check and every test, with the coverage floor
	@# The two venvs (and Chromium, for the console's browser test) install side by side, then the
	@# checks run side by side (output kept per check).
	$(MAKE) --no-print-directory --jobs=3 $(BIN)/.installed $(SCAN_BIN)/.installed browser
	$(MAKE) --no-print-directory --jobs=4 --output-sync=target lint typecheck validate scan
	$(BIN)/pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --cov --cov-report=term

.PHONY: run
run: install ## the whole system on loopback: moto, HTTP API, drivers, carrier simulator
	$(BIN)/python -m local

.PHONY: bench
bench: install ## cold imports, cold start per route, AWS calls per message ... (PART=coldstart: cold start only)
	$(BIN)/python -m bench $(PART)

.PHONY: soak
soak: install ## N messages through the local stack under injected faults, then an audit (N=10000)
	$(BIN)/python -m tools.soak --messages $(or $(N),10000)

.PHONY: report
report: install ## SMS channel report from the Messages table (ARGS="--since 24h --table NAME")
	$(BIN)/python -m tools.channel_report $(ARGS)

.PHONY: backfill
backfill: install ## give messages stored before the search indexes their keys (ARGS="--table NAME")
	$(BIN)/python -m tools.backfill $(ARGS)

.PHONY: build
build: install ## sam build (no container: python3.12 from .venv), then check every wheel is arm64
	$(BIN)/sam build --template template.yaml
	$(BIN)/python -m tools.buildcheck .aws-sam/build

# STACK: the deployed stack whose outputs name the parameter and the secret (samconfig.toml's
# stack names: smsbridge, smsbridge-staging).
STACK ?= smsbridge

.PHONY: config-push
config-push: install ## check a configuration with the functions' parser, then put it (FILE=... STACK=...)
	@test -n "$(FILE)" || { echo "usage: make config-push FILE=config.json STACK=$(STACK)"; exit 2; }
	$(BIN)/python -m tools.config_push config $(FILE) --stack $(STACK) $(ARGS)

.PHONY: secrets-push
secrets-push: install ## check the credentials against the stack's configuration, then put them
	@test -n "$(FILE)" || { echo "usage: make secrets-push FILE=secrets.json STACK=$(STACK)"; exit 2; }
	$(BIN)/python -m tools.config_push secrets $(FILE) --stack $(STACK) $(ARGS)

.PHONY: deploy
deploy: build ## sam deploy (add ARGS=--guided the first time)
	$(BIN)/sam deploy $(ARGS)

.PHONY: clean
clean: ## remove build output and the venv
	rm -rf .aws-sam $(VENV) .venv-scan .mypy_cache .ruff_cache .pytest_cache
