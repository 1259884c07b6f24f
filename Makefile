# The two commands of the README: `make run` (pipeline + UI) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# When make was started (ms since the epoch): `make run` counts the time to the first served
# model from here, set-up included.
STARTED_AT := $(shell date +%s%3N)

.PHONY: setup run test test-fast test-docker docker-tools lint benchmark clean-state browser settings-table

setup: $(VENV)/.installed

# uv installs the pinned set in seconds rather than minutes; constraints.txt pins every package.
# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (this kind of machine,
# its CI), every process would otherwise compile what it imports again (mlflow alone: 9 s).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev,deploy]'
	# An empty MLflow store of this installation's schema: every new home starts as a copy.
	$(BIN)/python -m mlops_assets.core.registry.store >/dev/null
	touch $@

run: setup
	MLOPS_STARTED_AT=$(STARTED_AT) scripts/dev.sh

LINTED := mlops_assets mlops_assets_testing mlops_assets_tests benchmarks

# The browser the UI tests drive: Debian's Chromium and its matching driver (a browser that
# downloads itself cannot, here). Installed once, as root (CI runs as root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver >/dev/null; }

# Everything, the end-to-end tests (real dagster dev, servers, the production topology) included.
test: setup browser
	$(BIN)/ruff check $(LINTED)
	$(BIN)/dg check defs
	$(BIN)/pytest

# The inner loop: everything but the end-to-end tests.
test-fast: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/pytest -m "not e2e"

# The production deployment in containers (docker/, README "Production"): the image built, the
# compose topology up, runs launched in containers of their own. Starts a Docker engine when
# none answers; fails, saying why, when it cannot.
test-docker: setup docker-tools
	$(BIN)/pytest -n 0 -m docker -p no:cacheprovider -rA mlops_assets_tests/test_docker_deployment.py

# Debian's Docker engine, Compose v1 and debootstrap (no registry image can be pulled here: the
# base image is made from the Debian mirror). Installed only when missing, as root.
DOCKER_TOOLS := dockerd docker-compose debootstrap
docker-tools:
	@missing=$$(for tool in $(DOCKER_TOOLS); do command -v $$tool >/dev/null || echo $$tool; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing docker.io docker-compose debootstrap (missing: $$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    docker.io docker-compose debootstrap >/dev/null; \
	fi

# The README's settings table, made anew from the declarations in mlops_assets/settings.py.
settings-table: setup
	$(BIN)/python -m mlops_assets.settings --readme README.md

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# Each benchmark prints a table for benchmarks/RESULTS.md; the latency ones use the launchers
# of mlops_assets_testing, as the tests do.
INTAKE_RUNS = --sizes-mb 400 1000 4000 --engines mlops polars polars-quarantine
benchmark: setup docker-tools
	$(BIN)/python benchmarks/materialize_timing.py
	$(BIN)/python benchmarks/intake_throughput.py $(INTAKE_RUNS)
	$(BIN)/python benchmarks/intake_throughput.py $(INTAKE_RUNS) --memory-cap-gb 2
	$(BIN)/python benchmarks/sensor_tick.py --files 10000
	$(BIN)/python benchmarks/scale_sensor.py --files 1000 10000 100000
	$(BIN)/python benchmarks/contribution_latency.py
	$(BIN)/python benchmarks/topology_latency.py
	$(BIN)/python benchmarks/docker_deployment.py --cold-build
	$(BIN)/python benchmarks/registration_overhead.py
	$(BIN)/python benchmarks/baseline_load.py
	$(BIN)/python benchmarks/serving_throughput.py
	$(BIN)/python benchmarks/primary_metric.py --trials 200
	$(BIN)/python benchmarks/valuation_timing.py
	$(BIN)/python benchmarks/credit_integrity.py
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/picture_metadata.py

# Forget everything the embedded default stored (Dagster runs, MLflow models, datasets, landing zone).
clean-state:
	rm -rf var
