# Two commands do all the set-up on a fresh machine:
#   make demo   install, pull the default model, stream feedback on a buggy sample file
#   make test   install, pull both models, lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STARCHAT := $(VENV)/bin/starchat-lsp
INSTALLED := $(VENV)/.installed
MODEL ?= qwen2.5-coder-1.5b
# The real-model tests run on the small model (fast); `make demo` uses the default MODEL.
SMALL_MODEL ?= smollm2-135m

.PHONY: install pull pull-small demo test lint unit audit client vscode-e2e screenshots bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip builds llama.cpp from source with -march=native. On an Intel CPU with AMX that compiles in
# ggml's AMX path, which crashes (SIGSEGV in ggml_backend_amx_mul_mat) on Q4_K weights: on x86-64
# the AMX instructions are turned off, which keeps the AVX-512/AVX2 weight repacking and its speed
# (docs/benchmarks.md). Set LLAMA_CMAKE_ARGS to build it your own way.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='-mno-amx-int8 -mno-amx-tile -mno-amx-bf16' -DCMAKE_CXX_FLAGS='-mno-amx-int8 -mno-amx-tile -mno-amx-bf16'
endif

# torch is pinned here, before the package: an unpinned torch pulls a CUDA build of several GB.
# llama-cpp-python comes first, without pip's wheel cache (a wheel built earlier with other flags
# would be reused), and the build is checked: an AMX path compiled in is rebuilt, never kept.
$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) server/starchat_lsp/engine/llamacpp_build.py --ok || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PY) -m pip install --quiet --no-cache-dir --force-reinstall --no-deps "llama-cpp-python[server]>=0.3,<0.4"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) server/starchat_lsp/engine/llamacpp_build.py --ok
	touch $(INSTALLED)

install: $(INSTALLED)

# What the default backend (llama.cpp) runs: the default model's verified GGUF, nothing more (the
# transformers backend converts it on its first use).
pull: install
	$(STARCHAT) models pull $(MODEL)

# The tests' model, converted for transformers up front: the suite runs it on both backends.
pull-small: install
	$(STARCHAT) models pull $(SMALL_MODEL) --backend transformers

demo: pull
	$(STARCHAT) feedback examples/off_by_one.py

lint: install
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy -p bench

# Benchmarks against raw transformers / llama-cpp-python, in one run (bench/, docs/benchmarks.md):
# a table and a chart under bench/results/ for MODEL (MODEL=smollm2-135m for the small one).
bench: pull
	$(PY) -m bench --model $(MODEL) $(BENCH_ARGS)

# Small sizes, under a minute: checks that every benchmark still runs (never fails on a timing).
bench-quick: pull-small
	$(PY) -m bench --quick --model $(SMALL_MODEL) --out test-output/bench-quick

unit: install
	$(PY) -m pytest -m "not default_model"

# Known vulnerabilities in the installed dependencies: fails on one with a fixed release, and when
# pip-audit could not check a dependency (it needs PyPI's JSON API and the advisory data, which
# this workplace's package mirror does not serve: not part of `make test` here; see
# docs/reliability.md).
audit: install
	mkdir -p test-output
	$(VENV)/bin/pip-audit --skip-editable --progress-spinner off -f json -o test-output/pip-audit.json || true
	$(PY) tests/test_security_audit.py test-output/pip-audit.json

# The VS Code client (Node 20; deps from package-lock.json): lint, type-check, unit tests, .vsix.
NODE_DEPS := node_modules/.package-lock.json

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund

client: $(NODE_DEPS)
	npm run check

# The extension in real VS Code: code-server driven by Debian's headless Chromium
# (client/e2e/setup.sh installs them; apt needs root).
vscode-e2e: client install
	npm run test:e2e

# The README's pictures of the extension, with the real default model (docs/images/vscode-*.png).
screenshots: client install pull
	client/e2e/setup.sh
	node client/e2e/screenshots.mjs

test: pull pull-small lint client vscode-e2e
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	rm -rf node_modules client/e2e/node_modules dist out test-output *.vsix
