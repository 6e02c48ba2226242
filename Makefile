# The README's commands. `make run` and `make test` each set up .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
# The CPU build of torch, installed before the project so that its `torch>=2.3` range is met
# without pulling a multi-GB CUDA build (DESIGN.md, Machines).
TORCH   ?= torch==2.13.0

.PHONY: install run test test-fast fuzz lint format typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## the service on its embedded defaults: SQLite file, a local worker
	$(BIN)/ltd serve --with-worker

test: $(STAMP)  ## the whole suite (PostgreSQL tests need LTD_TEST_POSTGRES_URL's server)
	$(BIN)/python -m pytest --durations=15

test-fast: $(STAMP)  ## without the slow and PostgreSQL tiers: under a minute on 2 cores
	$(BIN)/python -m pytest -m "not slow and not postgres" --durations=15

fuzz: $(STAMP)  ## the OpenAPI fuzz test with a random seed and 10x the cases CI runs
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-600} $(BIN)/python -m pytest -p no:randomly \
		tests/api/test_openapi_fuzz.py

SRC     := planner wire present client api worker ltd tests benchmarks

lint: $(STAMP)  ## ruff (lint and format --check) and mypy on every package
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(SRC)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_planner.py
	$(BIN)/python benchmarks/bench_api.py --scenario all --database both
	$(BIN)/python benchmarks/bench_ltd.py
	$(BIN)/python benchmarks/bench_steptime.py
	$(BIN)/python benchmarks/bench_sizing.py
	$(BIN)/python benchmarks/bench_hf.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
