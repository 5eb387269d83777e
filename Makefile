# Thin, named entry points. Every target creates .venv (if missing) and installs the pinned project first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PRESET ?= paper
DEVICE ?= cpu
STAMP  := $(VENV)/.installed

.PHONY: setup reproduce test bench student clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,molecules]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## Execute every notebook with papermill at $(PRESET); regenerate figures/ and data/results/.
reproduce: setup
	$(PY) -m mislib.reproduce --preset $(PRESET) --device $(DEVICE)

## Unit tests plus nbval on every notebook at the smoke preset (outputs go to build/smoke, not figures/).
test: setup
	MISLIB_PRESET=smoke MISLIB_OUTPUT_DIR=build/smoke $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

## Benchmarks (ratios measured side by side in one run).
bench: setup
	$(PY) -m bench

## Student copies of the notebooks (cells tagged `solution` removed) in student/.
student: setup
	$(PY) -m mislib.infra.student notebooks student

clean:
	rm -rf build student $(VENV)
