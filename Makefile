# The two commands of the README: `make run` (pipeline + UI) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint benchmark clean-state

setup: $(VENV)/.installed

# uv installs the pinned set in seconds rather than minutes; constraints.txt pins every package.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[dev,deploy]'
	touch $@

run: setup
	scripts/dev.sh

test: setup
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks
	$(BIN)/ruff format --check mlops_assets mlops_assets_tests benchmarks

# Each benchmark prints a table for benchmarks/RESULTS.md; the latency one reuses the tests'
# `dagster dev` and topology launchers, hence PYTHONPATH.
benchmark: setup
	$(BIN)/python benchmarks/materialize_timing.py
	$(BIN)/python benchmarks/intake_throughput.py --sizes-mb 200 1000 4000
	$(BIN)/python benchmarks/sensor_tick.py --files 10000
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/contribution_latency.py
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/topology_latency.py
	$(BIN)/python benchmarks/registration_overhead.py
	$(BIN)/python benchmarks/baseline_load.py
	$(BIN)/python benchmarks/serving_throughput.py

# Forget everything the embedded default stored (Dagster runs, MLflow models, datasets, landing zone).
clean-state:
	rm -rf var
