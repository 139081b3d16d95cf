# GeneCommons: `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= genecommons-data/demo
# the demo's region: the first 2 Mb of chr22's q arm, simulated and submitted in about a minute
# each on 2 cores (the full arm takes ~8 min to simulate; `DEMO_ARGS=` for all of it)
DEMO_ARGS ?= --length 2000000
# the node's data directory (as genecommons reads it), where make run notes what it checked
DATA_DIR ?= $(or $(GENECOMMONS_DATA_DIR),genecommons-data)
# the demo's public reference is loaded and checked again only when any of this changed: the
# demo, its variant store (a rebuilt store has a new id in its manifest), the loaded reference,
# the recorded checks
DEMO_STATE = cat $(DEMO_DIR)/truth.json $(DATA_DIR)/variants/*/store.json $(DATA_DIR)/variants/reference.sqlite $(DATA_DIR)/privacy/reference-fit/*.json 2>/dev/null | cksum
REFERENCE_STAMP = $(DATA_DIR)/demo-reference.checked
HOST ?= 127.0.0.1
PORT ?= 8000
# processes running the test suite (pytest-xdist): one per core
TEST_WORKERS ?= auto

.PHONY: venv run test lint typecheck bench clean conformance

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
	$(BIN)/genecommons demo-committee
	@state=$$($(DEMO_STATE)); \
	if [ ! -f $(DEMO_DIR)/public_frequencies.vcf.gz ]; then :; \
	elif [ "$$state" = "$$(cat $(REFERENCE_STAMP) 2>/dev/null)" ]; then echo "Public reference: loaded and checked for this demo and its store already. 公共参考已载入并检查。"; \
	else $(BIN)/genecommons variants load-reference $(DEMO_DIR)/public_frequencies.vcf.gz && $(BIN)/genecommons privacy check-reference && $(DEMO_STATE) > $(REFERENCE_STAMP); fi
	$(BIN)/genecommons serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# GA4GH's DRS compliance suite pins old pytest, Flask and requests: it gets its own environment
CONFORMANCE_VENV := .venv-conformance
CONFORMANCE_STAMP := $(CONFORMANCE_VENV)/.installed

$(CONFORMANCE_STAMP):
	$(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/pip install --quiet --upgrade pip
	# jsonschema: imported by the suite, missing from its requirements; werkzeug: Flask 2.2.0,
	# which it pins, does not run on Werkzeug 3
	$(CONFORMANCE_VENV)/bin/pip install --quiet "drs-compliance-suite==1.0.3" "jsonschema==4.26.0" "werkzeug==2.2.3"
	touch $(CONFORMANCE_STAMP)

# third-party GA4GH clients against a real server: the DRS compliance suite (docs/archive.md)
conformance: $(STAMP) $(CONFORMANCE_STAMP)
	$(BIN)/pytest -p no:randomly tests/archive/test_drs_compliance_suite.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(CONFORMANCE_VENV) .pytest_cache .mypy_cache .ruff_cache
