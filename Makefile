# forensik: `make report` builds the demo election and renders every report; `make test` runs the tests;
# `make real` renders the 2024 Sirekap report set and its Findings page from ../shared (exits 2 without it).
# Both create .venv first when it is missing (plain `python -m venv` + pip; nothing else needed).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.forensik-installed
DEMO   ?= data/processed/demo.parquet
SCALE  ?= 0.02
SEED   ?= 2024
JOBS   ?= 2
PROVINCES ?= all
REPORTS ?= reports
# Extras installed into .venv: dev (tests). CI adds dask (the Dask executor's test) and explore (ipywidgets);
# without them those tests skip with the reason.
EXTRAS ?= dev

SHARED ?= ../shared
REAL   ?= reports/real

.PHONY: venv report real demo test lab bench clean help

help:
	@echo "make report  - set up .venv, build the demo election, render all reports to $(REPORTS)/index.html"
	@echo "make real    - the real 2024 Sirekap set: 36 province reports, national report, Findings page, to $(REAL)/index.html"
	@echo "make test    - set up .venv and run the test suite"
	@echo "make venv    - only set up .venv (python -m venv + pip install -e .[dev]; EXTRAS=dev,dask,explore for more)"
	@echo "make lab     - start JupyterLab on the notebooks"
	@echo "make bench   - run the benchmarks and print each figure beside its target"

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py analysis/sources/sirekap/_partychart.pyx
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $(STAMP)

$(DEMO): $(STAMP) analysis/synth.py
	$(BIN)/forensik demo --scale $(SCALE) --seed $(SEED) --out $(DEMO)

demo: $(DEMO)

report: $(DEMO)
	$(BIN)/forensik report --data $(DEMO) --province $(PROVINCES) --out $(REPORTS) --jobs $(JOBS) --seed $(SEED)

real: $(STAMP)
	$(BIN)/forensik real --shared $(SHARED) --out $(REAL) --jobs $(JOBS) --seed $(SEED)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lab]'
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(REPORTS) data/processed .pytest_cache
