# GeneCommons: `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= genecommons-data/demo
# the full chr22 q arm takes ~8 min to simulate; make run uses its first 10 Mb (override: DEMO_ARGS=)
DEMO_ARGS ?= --length 10000000
HOST ?= 127.0.0.1
PORT ?= 8000
# processes running the test suite (pytest-xdist): one per core
TEST_WORKERS ?= auto

.PHONY: venv run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/genecommons init
	@if [ ! -f $(DEMO_DIR)/truth.json ]; then $(BIN)/genecommons demo --out $(DEMO_DIR) $(DEMO_ARGS); fi
	$(BIN)/genecommons submit $(DEMO_DIR)
	@if [ -f $(DEMO_DIR)/public_frequencies.vcf.gz ]; then $(BIN)/genecommons variants load-reference $(DEMO_DIR)/public_frequencies.vcf.gz && $(BIN)/genecommons privacy check-reference; fi
	$(BIN)/genecommons serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
