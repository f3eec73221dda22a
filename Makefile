# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fissure-installed

.PHONY: demo test lint install clean

install: $(STAMP)

# torch first, pinned, so fissure's dependencies never pull a second (CUDA) build. Here
# pip finds the CPU wheel on disk; elsewhere TORCH_INDEX=https://download.pytorch.org/whl/cpu
# picks the CPU build (PyPI's Linux wheel is the CUDA one).
TORCH_INDEX ?=
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[dev,ray,parquet]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fissure demo --out demo-out

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf demo-out .pytest_cache .ruff_cache
