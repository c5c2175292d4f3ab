# voxtrain, on a fresh machine:
#   make run    set up, start Kafka + PostgreSQL + MinIO and the services and the console, print the URLs
#   make test   set up, start the servers, run the tests (PYTEST_ARGS="tests/deploy -x" to narrow)
#   make stop   stop the services and the servers (data is kept in .voxtrain/stack)
#   make unit   the tests that need no server (no install of the servers, under a minute)
#   make lint   ruff (lint + format check) and mypy
#   make chaos  fault injection on a stack of its own (.voxtrain/chaos): ROUNDS=50 for the long run
# The servers run as local processes (voxtrain-stack, deploy/local); installs are cached in
# ${XDG_CACHE_HOME:-~/.cache}/voxtrain, so only the first run is slow.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# `uv` when it is on PATH, else the one `python3 -m pip install uv` puts beside python3.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --frozen --no-sync
PYTEST_ARGS ?=
ROUNDS ?= 8
CHAOS_ARGS ?=

.PHONY: help setup sync test unit lint format run stop bench docs chaos

help:
	@sed -n '2,7p' Makefile | sed 's/^# *//'

setup:
	./deploy/local/install-system-packages.sh
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --all-packages --frozen
	$(RUN) voxtrain-stack install
	$(RUN) python -c 'from voxtrain_trainer.ml.g2p_learn import main; main()'  # trainer G2P: trained once, cached

sync:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --all-packages --frozen --quiet

test: setup
	$(RUN) voxtrain-stack up
	$(RUN) pytest $(PYTEST_ARGS)

# Every test that needs no server (tests using the `stack` fixture are integration tests, see tests/conftest.py),
# spread over the cores (pytest-xdist).
unit: sync
	$(RUN) pytest -m "not integration" -q -n auto --dist worksteal $(PYTEST_ARGS)

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: sync
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

run: setup
	$(RUN) voxtrain-stack run-services

stop:
	$(RUN) voxtrain-stack down

# Kill -9 one component (models, datasets, validator, trainer, its training worker, Kafka, PostgreSQL, MinIO) per
# round while models go upload -> validate -> train, then judge from the outside (tests/chaos). Its own state dir
# and ports (offset 3000), so it runs beside `make run`. Exits non-zero on any stuck, duplicated or lost model.
chaos: setup
	$(RUN) python -m tests.chaos --rounds $(ROUNDS) $(CHAOS_ARGS)

bench:
	@if [ ! -x bench/run ]; then echo "make bench: there is no bench/run yet" >&2; exit 0; fi; \
	$(MAKE) --no-print-directory setup && $(RUN) voxtrain-stack up && bench/run $(BENCH_ARGS)

# Regenerate docs/asyncapi.json and docs/openapi/*.json from the code (tests/deploy/test_contracts.py
# fails when they drift).
docs:
	$(UV) sync --all-packages --frozen --quiet
	$(RUN) voxtrain-contracts --out docs
