# Two commands on a fresh machine: `make demo` (the main job on a built-in input) and
# `make test`. Both create or reuse the virtual environment and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mimic-fast-installed
SOURCES := pyproject.toml CMakeLists.txt constraints.txt $(shell find csrc -type f)

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.24" ninja
	$(PIP) install -q -c constraints.txt --no-build-isolation -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mimic-fast demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest tests -q

bench: $(STAMP)
	$(PY) benchmarks/bench_overlap.py

clean:
	rm -rf build demo_out .pytest_cache
