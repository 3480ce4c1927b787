# Every target creates .venv if it is missing and installs what it needs; nothing else is assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export SEGFLOW_HOME ?= $(CURDIR)/.segflow
export DAGSTER_HOME ?= $(SEGFLOW_HOME)/dagster_home

.PHONY: install demo test ui bench lint validate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/segflow demo

# Two xdist workers (CI has two cores). --dist loadfile keeps a module's tests on one worker, so its
# module and session fixtures (a backfill, a landing zone) are built once; --no-loadscope-reorder
# keeps conftest.py's longest-first module order. (xdist_group marks do nothing on pytest 9: xdist
# 3.8 renames node ids through an attribute that pytest 9 no longer reads.)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

validate: $(STAMP)
	mkdir -p $(DAGSTER_HOME) && { test -s $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml; }
	$(BIN)/dagster definitions validate -w workspace.yaml

ui: $(STAMP)
	mkdir -p $(DAGSTER_HOME) && { test -s $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml; }
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check segflow segflow_tests benchmarks

clean:
	rm -rf .segflow
