# Thin, named entry points. Every target creates .venv (if missing) and installs the pinned project first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PRESET ?= paper
DEVICE ?= cpu
WORKERS ?= 1
STAMP  := $(VENV)/.installed
# The project kernel every notebook declares (mislib.infra.notebooks.KERNELSPEC).
KERNEL_NAME    := mislib
KERNEL_DISPLAY := Python 3 (mislib)
# make lab serves copies of the notebooks (saving a run never touches notebooks/); LAB_DIR=student for the
# student copies of make student.
LAB_DIR ?= build/lab
LAB_PORT ?= 8888

.PHONY: setup reproduce test test-browser bench student lab book clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,molecules]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "$(KERNEL_DISPLAY)" >/dev/null
	touch $(STAMP)

## Execute every notebook with papermill at $(PRESET). Only the paper preset publishes (--publish): notebooks/,
## figures/ and data/results/; any other preset writes under build/$(PRESET)/.
reproduce: setup
	$(PY) -m mislib.reproduce --preset $(PRESET) --device $(DEVICE) --workers $(WORKERS) $(if $(filter paper,$(PRESET)),--publish)

## Unit tests plus nbval on every notebook at the smoke preset (outputs go to build/smoke, not figures/).
## The browser tests run on their own (make test-browser).
test: setup
	MISLIB_PRESET=smoke MISLIB_OUTPUT_DIR=build/smoke $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider \
		--ignore=tests/test_browser.py

## JupyterLab and the built book in headless Chromium (Playwright); screenshots in build/browser/.
test-browser: setup book
	$(PY) -m pip install --quiet -e ".[browser]"
	$(PY) -m pytest tests/test_browser.py -v -p no:cacheprovider

## JupyterLab on 127.0.0.1 with the project kernel, on copies of the notebooks in $(LAB_DIR) (made when missing;
## a student's saved work is kept). MISLIB_PRESET=$(PRESET) chooses the preset of every notebook.
lab: setup
	mkdir -p $(LAB_DIR)
	for f in notebooks/[0-9][0-9]_*.ipynb; do test -e $(LAB_DIR)/$$(basename $$f) || cp $$f $(LAB_DIR)/; done
	MISLIB_PRESET=$(PRESET) $(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) \
		--ServerApp.root_dir=$(LAB_DIR) --MappingKernelManager.default_kernel_name=$(KERNEL_NAME) \
		$(if $(filter 0,$(shell id -u)),--allow-root)

## Static HTML book from the stored notebooks (no execution), MathJax vendored: build/book/html/index.html.
book: setup
	$(PY) -m pip install --quiet -e ".[docs]"
	$(PY) -m mislib.infra.book build/book

## Benchmarks (ratios measured side by side in one run).
bench: setup
	$(PY) -m bench

## Student copies of the notebooks in student/: solutions removed, an answer cell and a check cell per exercise.
student: setup
	$(PY) -m mislib.infra.student notebooks student

clean:
	rm -rf build student $(VENV)
