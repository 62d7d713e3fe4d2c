# Two entry points: `make run` (one node on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := actors cluster config mail store web bench

.PHONY: run test lint servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { sh tests/servers/install.sh python3-venv && $(PYTHON) -m venv $(VENV); }

$(VENV)/.run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.run
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.run
	$(BIN)/mailport run

servers:
	sh tests/servers/install.sh

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy cannot follow setuptools' package-dir mapping, so it reads the package
	@# through a tree of links shaped like the installed one.
	mkdir -p build/typecheck/mailport
	for d in $(PACKAGES); do ln -sfn ../../../$$d build/typecheck/mailport/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy -p mailport

test: servers lint
	$(BIN)/python -m pytest

clean:
	rm -rf build var .venv
