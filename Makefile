# Two commands for a newcomer:  make lab  (set up, open the course)  and  make test  (set up, run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# nbgrader runs alembic as a subprocess: the venv's bin must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup lab test clean

setup: $(STAMP)
	@sh tests/browser/install_chromium.sh

# Re-runs only when the dependency pins change. torch is installed first, pinned, so pip takes the
# CPU wheel and never resolves a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/course

test: setup
	$(BIN)/python tests/suite.py

clean:
	rm -rf $(VENV) *.egg-info
