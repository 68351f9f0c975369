# datadistill: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch where the machine provides it (pip finds it by this exact version).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: setup data demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# Fashion-MNIST comes from the Debian package dataset-fashion-mnist (IDX files, offline).
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
		echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null || \
		(apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or put the four IDX files"; \
		echo "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...) in a folder and pass --data-dir."; \
		exit 1; \
	fi

demo: setup data
	$(BIN)/datadistill demo --out $(DEMO_OUT)

test: setup
	-@$(MAKE) --no-print-directory data >/dev/null 2>&1 || echo "(Fashion-MNIST not installed: tests that need it are skipped)"
	$(BIN)/python -m pytest

# The benchmark grid of BENCHMARKS.md (resumable: finished cells are skipped).
bench: setup data
	$(BIN)/datadistill bench --dataset fashion-mnist --methods random,class-mean,kmeans,herding,kcenter,best-of-random --ipc 1,10,50 --protocol dc --full-data

clean:
	rm -rf $(VENV) .pytest_cache
