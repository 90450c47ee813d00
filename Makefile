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
# without them those tests skip with the reason. `make docs` adds the docs extra (MkDocs) to whatever EXTRAS says.
EXTRAS ?= dev
DOCS_STAMP := $(VENV)/.forensik-docs-installed
# `make bench` runs these and writes their output, with the machine and the commit, to BENCH_RESULTS
# (committed: the docs' benchmarks page shows it). BENCHES=benchmarks/bench_digits.py runs one.
BENCHES ?= $(wildcard benchmarks/bench_*.py)
BENCH_RESULTS ?= benchmarks/results.md

SHARED ?= ../shared
REAL   ?= reports/real

.PHONY: venv report real demo test lab bench docs clean help

help:
	@echo "make report  - set up .venv, build the demo election, render all reports to $(REPORTS)/index.html"
	@echo "make real    - the real 2024 Sirekap set: 36 province reports, national report, Findings page, to $(REAL)/index.html"
	@echo "make test    - set up .venv and run the test suite"
	@echo "make venv    - only set up .venv (python -m venv + pip install -e .[dev]; EXTRAS=dev,dask,explore for more)"
	@echo "make lab     - start JupyterLab on the notebooks"
	@echo "make bench   - run the benchmarks, print each figure beside its target, write $(BENCH_RESULTS)"
	@echo "make docs    - add the docs extra to .venv and build the docs site into site/ (mkdocs build --strict)"

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py analysis/sources/sirekap/_partychart.pyx analysis/turnout/_sampler.pyx
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

# Two test workers on two cores: one BLAS/OpenMP thread each (more only spin; an L-BFGS-B fit on two
# parameters took 7x longer with a BLAS thread per core). A value exported by the caller is kept.
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1} \
	  $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lab]'
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out $(BENCH_RESULTS) $(BENCHES)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Empties the output folders but keeps their README.md (the layout is tracked; see .gitignore).
clean:
	@for dir in $(REPORTS) data/processed; do \
	  if [ -d "$$dir" ]; then find "$$dir" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +; fi; \
	done
	rm -rf .pytest_cache site
