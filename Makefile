# Developer entry points. `make demo` and `make test` are the two README set-up commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
ARTIFACTS ?= artifacts

.PHONY: help install demo test test-fast lint format serve worker bench docker-build compose-up compose-down

help:
	@echo "make install   install torch $(TORCH_VERSION) (CPU) and c2f in editable mode with all extras"
	@echo "make demo      install, train on the bundled synthetic dataset, serve in-process, print a recommendation"
	@echo "make test      run the test suite (what CI runs)"
	@echo "make lint      ruff check + ruff format --check + mypy"
	@echo "make serve     run the API on $(HOST):$(PORT) over $(ARTIFACTS)/ (embedded Redis + worker)"
	@echo "make bench     Gowalla benchmark: UD / LEGCF / C2F side by side (BENCH_ARGS=...; see BENCHMARKS.md)"

# torch first, pinned: an unpinned `torch` from the train extra would pull a multi-GB CUDA build.
install:
	$(PIP) install torch==$(TORCH_VERSION)
	$(PIP) install -e '.[serve,train,dev]'

demo: install
	c2f demo --out $(ARTIFACTS)

# Keep in sync with README.md and .ci/run (tests/test_deploy.py checks it).
test: install
	python3 -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow and not gowalla"

lint:
	ruff check .
	ruff format --check .
	mypy c2f/

format:
	ruff format .
	ruff check --fix .

serve:
	C2F_ARTIFACT_ROOT=$(ARTIFACTS) c2f serve --host $(HOST) --port $(PORT)

worker:
	C2F_ARTIFACT_ROOT=$(ARTIFACTS) c2f worker

# BENCH_ARGS, e.g. BENCH_ARGS="--variants legcf,c2f --max-epochs 20 --append"
BENCH_ARGS ?=
bench:
	$(PYTHON) benchmarks/train_gowalla.py $(BENCH_ARGS)

docker-build:
	docker build --target api -t c2f-api:latest .
	docker build --target worker -t c2f-worker:cpu .

compose-up:
	docker compose up --build -d

compose-down:
	docker compose down
