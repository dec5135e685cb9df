# Quick start:  make demo   (synthetic scene, no microphone)   |   make test   (whole suite)
export NUMBA_CACHE_DIR ?= $(HOME)/.cache/avstream/numba
export OPENBLAS_NUM_THREADS ?= 1
VENV := .venv/bin

.PHONY: setup demo test bench engines soak
setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/avstream run $(if $(wildcard engines/demo_av.onnx),--engine engines/demo_av.onnx)

test: setup
	$(VENV)/python -m pytest -q --durations=15 tests

bench: setup
	$(VENV)/python -m pip install -q pyroomacoustics acoular spaudiopy
	$(VENV)/avstream bench

# retrain the shipped audio-visual engines (about 25 minutes on 2 cores; engines/README.md)
engines: setup
	bash scripts/make_engines.sh

# the 30-minute soak of the whole demo: memory, descriptors, threads, MCAP parts (README, reliability)
soak: setup
	$(VENV)/python scripts/soak.py --minutes $(or $(MINUTES),30)
