# Two commands do all the set-up on a fresh machine:
#   make demo   - install, fetch FashionMNIST if missing, run the main job on the embedded defaults
#   make test   - install, fetch FashionMNIST if missing, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision must come as a matching pair; these are the ones this project is tested with
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup data demo test bench clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

data: $(VENV)/.installed
	$(BIN)/cpbench data --install

demo: setup
	$(BIN)/cpbench export --preset quick
	$(BIN)/cpbench models

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quick_preset.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
