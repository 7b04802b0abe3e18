# Everything Is a Mapping — the course's commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: help setup book test lint unit notebooks student student-check book-check lab execute bench lock clean

help:
	@echo "make setup     create .venv with the pinned environment and audiolab (editable, dev extra)"
	@echo "make book      build the HTML book into _build/html"
	@echo "make test      everything CI checks: ruff, unit tests, notebooks (quick mode), book"
	@echo "make student   the chapters without exercise solutions, in student/ (for handing out)"
	@echo "make lab       JupyterLab on the notebooks"
	@echo "make execute   re-run every notebook in place (full mode on a GPU)"
	@echo "make bench     benchmarks"

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	# tinysoundfont without PyAudio (playback only; no Linux wheel, needs PortAudio to build)
	$(BIN)/python -m pip install --quiet --no-deps -c requirements/constraints.txt tinysoundfont
	@touch $(STAMP)

setup: $(STAMP)

# Re-resolve the pins from pyproject.toml in a scratch venv and rewrite the constraints file.
lock:
	rm -rf /tmp/audiolab-lock && $(PYTHON) -m venv /tmp/audiolab-lock
	/tmp/audiolab-lock/bin/pip install --quiet -e ".[dev]"
	/tmp/audiolab-lock/bin/pip install --quiet --no-deps tinysoundfont
	{ sed -n '1,3p' requirements/constraints.txt; \
	  /tmp/audiolab-lock/bin/pip freeze --exclude-editable | grep -v '^mapping-audiolab'; } > /tmp/constraints.txt
	mv /tmp/constraints.txt requirements/constraints.txt

book: $(STAMP)
	$(BIN)/jupyter-book build . --all --warningiserror --nitpick --keep-going
	@echo "book: open _build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check audiolab tests notebooks

unit: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/test_book_html.py

notebooks: $(STAMP)
	AUDIOLAB_MODE=quick $(BIN)/pytest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider $(NOTEBOOKS)

# The student edition: every chapter without the cells tagged 'solution', in student/.
student: $(STAMP)
	rm -rf student && $(BIN)/python -m audiolab student --output-dir student

# The student copies must still run top to bottom (quick mode), with no solution left in them.
# `make test` checks this statically (tests/test_student.py: no chapter cell reads a name bound
# in a solution), which costs seconds; this target executes the copies too (as long as CI's
# notebook run again).
student-check: student
	AUDIOLAB_MODE=quick $(BIN)/pytest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider student/*.ipynb

book-check: book
	$(BIN)/pytest tests/test_book_html.py

test: lint unit notebooks student book-check

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

execute: $(STAMP)
	$(BIN)/python -m audiolab lab --inplace $(NOTEBOOKS)

bench: $(STAMP)
	$(BIN)/python -m audiolab bench features
	$(BIN)/python -m audiolab bench fit

clean:
	rm -rf _build .pytest_cache .ruff_cache student
