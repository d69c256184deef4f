# scmm_lightning: `make help` lists the targets.
PYTHON ?= python
CONFIG ?= experiments/synthetic.yaml

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint bench bench-de

help: ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

install: ## install the package with its dev extra (CPU torch first if torch is absent)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[dev]"

demo: install ## install, then pre-train SCMM on the synthetic corpus (CPU, ~1 min)
	$(PYTHON) -m scmm_lightning fit --config $(CONFIG)

test: ## run the default test suite (excludes `slow` and `gpu`)
	$(PYTHON) -m pytest

test-all: ## run every test, slow ones included (gpu tests skip without CUDA)
	$(PYTHON) -m pytest -m ""

lint: ## ruff lint and format check
	$(PYTHON) -m ruff check scmm_lightning tests benchmarks
	$(PYTHON) -m ruff format --check scmm_lightning tests benchmarks

bench: ## pre-training throughput: SCMM step vs its floor (last line JSON)
	$(PYTHON) benchmarks/pretrain_throughput.py

bench-de: ## DEAP-shaped raw -> DE extraction and cache reload times (last line JSON)
	$(PYTHON) benchmarks/de_extraction.py
