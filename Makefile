# Two commands for a newcomer:  make lab  (set up, open the course)  and  make test  (set up, run every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# nbgrader runs alembic as a subprocess: the venv's bin must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup lab test clean

setup: $(STAMP)
	@sh autograder/install_bubblewrap.sh
	@sh tests/browser/install_chromium.sh
	@sh tests/hub/install_hub_env.sh

# Re-runs only when the dependency pins change. torch is installed first, pinned, so pip takes the
# CPU wheel and never resolves a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

# JupyterLab refuses to run as root unless told to (containers and CI run as root).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBGRADER_SERVER_EXTENSIONS := formgrader validate_assignment assignment_list course_list

lab: setup
	@$(BIN)/jupyter labextension enable --level=sys_prefix @jupyter/nbgrader @jupyter-widgets/jupyterlab-manager \
		>/dev/null 2>&1
	@for e in $(NBGRADER_SERVER_EXTENSIONS); do \
		$(BIN)/jupyter server extension enable --sys-prefix nbgrader.server_extensions.$$e >/dev/null 2>&1; done
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/course $(ROOT_FLAG)

test: setup
	$(BIN)/python tests/suite.py

clean:
	rm -rf $(VENV) *.egg-info
