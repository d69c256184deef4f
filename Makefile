# scmm_lightning: `make help` lists the targets.
PYTHON ?= python
CONFIG ?= experiments/synthetic.yaml

.DEFAULT_GOAL := help
DATA_ROOT ?= $(SCMM_DATA_ROOT)
SEEDS ?= 0 1 2
# test processes: one per core, at most 4 (each loads torch and the fixtures); 0 runs the suite in this
# process. On 2 cores: 429 vs 671 s
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(min(4, n or 1))")
REFERENCE_CONFIGS = experiments/seed_to_seed_iv.yaml experiments/seed_iv_to_seed.yaml experiments/deap_to_seed.yaml \
	experiments/seed_to_deap_valence.yaml experiments/seed_to_deap_arousal.yaml

.PHONY: help install demo test test-all lint bench bench-de bench-recordings bench-eval device-wheels bench-real bench-recipes bench-probe rehearse-seed-iv reproduce-seed2deap reproduce-all ablations
SETTING ?= experiments/ablations_synthetic.yaml

help: ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

install: ## install the package with its dev extra (torch==2.13.0 first if torch is absent: a CPU wheel here, see README Development)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[dev]"

demo: install ## install, then pre-train SCMM on the synthetic pair and run the transfer protocol (CPU, ~1 min)
	$(PYTHON) -m scmm_lightning fit --config $(CONFIG)

test: ## run the default test suite (excludes `slow` and `gpu`) in TEST_WORKERS pytest-xdist processes (one thread each)
	$(PYTHON) -m pytest -n $(TEST_WORKERS)

test-all: ## run every test, slow ones included (gpu tests skip without CUDA)
	$(PYTHON) -m pytest -n $(TEST_WORKERS) -m ""

lint: ## ruff lint and format check
	$(PYTHON) -m ruff check scmm_lightning tests benchmarks
	$(PYTHON) -m ruff format --check scmm_lightning tests benchmarks

bench: ## pre-training throughput: SCMM step vs its floor (last line JSON)
	$(PYTHON) benchmarks/pretrain_throughput.py

bench-de: ## DEAP-shaped raw -> DE extraction and cache reload times (last line JSON)
	$(PYTHON) benchmarks/de_extraction.py

bench-recordings: ## own-recordings reader on the 24 real eegmat EDF files: prepare and reload times (last line JSON)
	$(PYTHON) benchmarks/prepare_recordings.py

bench-eval: ## evaluation engines, loop vs batched: fine-tuning, LP-FT, one probe call; 1 and 2 processes, medians of 3 interleaved repeats (~9 min on 2 cores; last line JSON)
	$(PYTHON) benchmarks/evaluation.py

device-wheels: ## the wheels benchmarks/device_check.sh needs on a lent GPU machine (jsonargparse and helpers) into .whl/
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl \
		$$($(PYTHON) -c "from importlib.metadata import version as v; print(*(f'{n}=={v(n)}' for n in ('jsonargparse', 'typeshed_client', 'docstring_parser')))")

bench-real: ## every method under one cross-subject protocol on real EEG (eegmat), 3 seeds (~30 min on 2 cores; last line JSON)
	$(PYTHON) benchmarks/real_eeg.py

bench-recipes: ## LP-FT/cv vs the reference recipe/hold-out on the synthetic pair and the separable fixture, 3 seeds (last line JSON)
	$(PYTHON) benchmarks/finetune_recipes.py

bench-probe: ## raw-feature probe vs scikit-learn's LogisticRegressionCV on eegmat's cross-subject folds (needs the dev extra; last line JSON)
	$(PYTHON) benchmarks/probe_vs_sklearn.py

rehearse-seed-iv: ## the shipped SEED -> SEED-IV config end to end on full-size stand-in corpora in the official layouts (~2 min; needs the dev extra; last line JSON)
	$(PYTHON) benchmarks/seed_iv_rehearsal.py

reproduce-seed2deap: ## SEED -> DEAP valence end to end for SEEDS (default 0 1 2): make reproduce-seed2deap DATA_ROOT=/path
	$(PYTHON) -m scmm_lightning reproduce --data_root "$(DATA_ROOT)" --seeds $(SEEDS) --configs experiments/seed_to_deap_valence.yaml

reproduce-all: ## every reference setting for SEEDS: make reproduce-all DATA_ROOT=/path
	$(PYTHON) -m scmm_lightning reproduce --data_root "$(DATA_ROOT)" --seeds $(SEEDS) --configs $(REFERENCE_CONFIGS)

ablations: ## every method/ablation x SEEDS on SETTING (default: synthetic pair, CPU, minutes) -> one table
	$(PYTHON) -m scmm_lightning ablations --setting $(SETTING) --seeds $(SEEDS) --data_root "$(DATA_ROOT)"
