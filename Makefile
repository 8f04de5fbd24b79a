# The workflow, one target a step. `make pr` runs every check a change must pass.
PYTHON ?= python3
VENV ?= .venv
TOOLS ?= .venv-tools
BIN := $(VENV)/bin

.PHONY: dev browser demo test unit integration e2e slow lint template-check layer-lock build bench pr clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

dev: $(VENV)/.installed

# Debian's Chromium, for the browser tests.
browser:
	scripts/install-chromium

demo: dev
	$(BIN)/coa-sync demo

test: dev browser
	$(BIN)/ruff check .
	$(BIN)/pytest -q

unit: dev
	$(BIN)/pytest -q tests/unit

integration: dev
	$(BIN)/pytest -q tests/integration

e2e: dev browser
	$(BIN)/pytest -q tests/e2e

slow: dev
	$(BIN)/pytest -q -m slow

lint: dev
	$(BIN)/ruff check .

# SAM needs a python3.12 on PATH to build for the python3.12 runtime: the tools venv has one.
$(TOOLS)/.installed:
	scripts/python312 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q aws-sam-cli cfn-lint checkov
	touch $@

template-check: $(TOOLS)/.installed
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" bash scripts/check-template.sh

$(TOOLS)/bin/uv: | $(TOOLS)/.installed
	$(TOOLS)/bin/pip install -q uv

# Re-pins the layer's dependencies (layers/core/requirements.in) to their newest releases, with
# hashes, for what Lambda runs (arm64, Python 3.12); boto3 and botocore come with the runtime.
layer-lock: $(TOOLS)/bin/uv
	cd layers/core && $(CURDIR)/$(TOOLS)/bin/uv pip compile --quiet --upgrade --generate-hashes \
		--python-version 3.12 --python-platform aarch64-manylinux2014 \
		--excludes runtime-provided.txt --custom-compile-command "make layer-lock" \
		--output-file requirements.txt requirements.in

build: template-check

bench: dev
	$(BIN)/python -m benchmarks

pr: test template-check

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .ruff_cache .hypothesis
