# Two commands for a fresh clone (see README.md):
#   make demo   build a dataset from the bundled samples on the built-in simulator
#   make test   run the test suite
# Both create .venv and install mlift into it on first use.
#   make test-real  the conformance suite against a real llama-server and model
#                   (set up and started by scripts/real_server.py, cached outside git)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# Offline machines: tiktoken's encodings from a shared folder when one sits next
# to the checkout (online users need nothing; tiktoken downloads them itself).
SHARED_TOKENIZERS := $(abspath ../shared/tokenizers)
ifneq ($(wildcard $(SHARED_TOKENIZERS)/*),)
export TIKTOKEN_CACHE_DIR ?= $(SHARED_TOKENIZERS)
endif

SAMPLES := samples/hi.jsonl samples/te.jsonl samples/ja.jsonl samples/es.jsonl

.PHONY: demo test test-real lint bench clean browser

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,report,export,eval]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/mlift run $(SAMPLES) --out runs/demo --cache-dir runs/.cache
	@echo "dataset: runs/demo/dataset.jsonl  (funnel and cost: runs/demo/run.json)"

test: $(STAMP)
	$(BIN)/ruff check mlift tests $(wildcard benchmarks)
	$(BIN)/mypy
	$(BIN)/pytest -q

# Sets up (once) and starts llama-server, runs tests/real against it, stops it.
# A server that cannot be set up or started fails this target with the reason;
# so does any test that would skip.
test-real: $(STAMP)
	$(BIN)/python scripts/real_server.py run -- \
		env MLIFT_REAL_REQUIRED=1 $(BIN)/pytest -q -p no:cacheprovider tests/real

# Headless Chromium for the review page's browser tests (skipped, saying why, without it).
browser:
	bash scripts/setup_browser.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
