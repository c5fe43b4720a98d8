# Two commands on a fresh machine (each sets up what it needs the first time, then reuses it):
#   make        compress yolov3-mini on the built-in dataset (python3 compress.py)
#   make test   lint and the test suite (the CI command)
# The project virtualenv is .venv: torch (the CPU build where no NVIDIA GPU is present), the
# requirements and the package itself in editable mode. `make setup` only sets it up.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# On a CPU-only machine a bare `torch` requirement pulls a multi-GB CUDA build: pin the CPU one.
# Where pip does not resolve this to a CPU wheel, override it, e.g.
#   make TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_CPU ?= torch==2.13.0
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,$(TORCH_CPU))
STAMP := $(VENV)/.installed

.PHONY: all compress test test-slow lint setup clean-venv

all: compress

compress: $(STAMP)
	$(PY) compress.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow" -n auto --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -n auto --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check .

setup: $(STAMP)

# Reinstalled only when the dependency lists change; the stamp is written last, so an
# interrupted install is redone next time.
$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
