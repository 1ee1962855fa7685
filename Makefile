# The README's two set-up commands are `make quickstart` and `make test`.
PYTHON ?= python3
QUICK_DIR ?= quickstart

.PHONY: install install-test quickstart test test-all benchmark gpu-check

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

install-test:
	PYTHON=$(PYTHON) bash scripts/install.sh test

# A real, short ARC job end to end: collect -> train a few epochs -> eval -> sample -> report.
quickstart: install
	vaekit collect arc --count 20000 --out $(QUICK_DIR)/data/arc16.npz
	vaekit train arc --config examples/configs/arc_quickstart.yaml --data $(QUICK_DIR)/data/arc16.npz \
		--runs-dir $(QUICK_DIR)/runs --run-id demo --overwrite
	vaekit eval demo --runs-dir $(QUICK_DIR)/runs
	vaekit sample demo --runs-dir $(QUICK_DIR)/runs -n 32
	vaekit report demo --runs-dir $(QUICK_DIR)/runs

test: install-test
	$(PYTHON) -m pytest -q

test-all: install-test
	$(PYTHON) -m pytest -q -m ""

benchmark: install
	$(PYTHON) benchmarks/train_throughput.py
	$(PYTHON) benchmarks/eval_throughput.py

# The CUDA-marked tests and the training benchmark on the GPU; exits 1, saying so, without a CUDA device.
gpu-check: install-test
	PYTHON=$(PYTHON) bash scripts/gpu_check.sh
