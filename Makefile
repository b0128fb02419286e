# Two commands do all the set-up on a fresh machine:
#   make demo   - install, fetch FashionMNIST if missing, then `cpbench demo`: export the quick preset,
#                 recount paper 003, time the models on the CPU (ONNX Runtime) and OpenVINO, fit time
#                 models to them (saved as this machine's fit in models/fits; the shipped reference
#                 calibrations are never written), fit the precision model, recommend, and write
#                 reports/demo/index.html, under one progress bar with the time left
#   make test   - install, fetch FashionMNIST if missing, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision must come as a matching pair; these are the ones this project is tested with
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup data browser demo test bench clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

data: $(VENV)/.installed
	$(BIN)/cpbench data --install

# headless Chromium, for the test that opens a report as a browser would (Debian: installed when root)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get update -q >/dev/null; apt-get install -y -q chromium chromium-driver >/dev/null; }; } || \
	  echo "no Chromium and cannot install it here: install chromium for the report test"

demo: setup
	$(BIN)/cpbench demo

test: setup browser
	$(BIN)/ruff check cpbench tests benchmarks
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quick_preset.py
	$(BIN)/python benchmarks/count_speed.py
	$(BIN)/python benchmarks/timing_overhead.py
	$(BIN)/python benchmarks/openvino_agreement.py
	$(BIN)/python benchmarks/kernel_model.py --device cpu-1thread
	$(BIN)/python benchmarks/repeatability.py --device cpu-1thread
	$(BIN)/python benchmarks/optimizer_speed.py
	$(BIN)/python benchmarks/ray_executor.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
