# Two commands do all set-up on a fresh machine:
#   make demo   – create .venv, install ecgkt, run the demo on a synthetic cohort
#   make test   – create .venv, install ecgkt with dev tools, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DIR ?= demo

.PHONY: setup demo test test-slow lint clean

$(BIN)/ecgkt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/ecgkt

setup: $(BIN)/ecgkt

demo: setup
	$(BIN)/ecgkt demo --out $(DEMO_DIR)

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
