# make demo: install into .venv and train the embedded default. make test: install and run every test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): one per core, at most 4 (each holds a TensorFlow runtime). 2 cores: 524 s vs 838 s.
TEST_WORKERS ?= $(shell python3 -c 'import os; print(min(4, os.cpu_count() or 1))')

.PHONY: install demo test lint format typecheck typecheck-baseline docs tensorboard clean benchmarks benchmarks-peer

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/digits_mmoe
	$(BIN)/moe-tf train --config configs/digits_mmoe.yaml --output-dir runs/digits_mmoe
	@echo "Compare runs: make tensorboard   (or: $(BIN)/tensorboard --logdir runs)"

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# ruff's lint rules and its formatter (the code's style: `make format` rewrites nothing on a clean tree)
lint: $(STAMP)
	$(BIN)/ruff check moe_tf tests benchmarks scripts
	$(BIN)/ruff format --check moe_tf tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff check --fix moe_tf tests benchmarks scripts
	$(BIN)/ruff format moe_tf tests benchmarks scripts

# mypy on the package against mypy-baseline.txt: a new error fails, and so does a recorded one that is gone until
# `make typecheck-baseline` records its removal, so the baseline only shrinks
typecheck: $(STAMP)
	@$(BIN)/mypy > .mypy-output.txt; rc=$$?; if [ $$rc -gt 1 ]; then cat .mypy-output.txt; exit $$rc; fi  # 1: type errors, 2: mypy failed
	$(BIN)/mypy-baseline filter --baseline-path mypy-baseline.txt --sort-baseline --no-colors < .mypy-output.txt

typecheck-baseline: $(STAMP)
	$(BIN)/mypy | $(BIN)/mypy-baseline sync --baseline-path mypy-baseline.txt --sort-baseline

# the documentation site (mkdocs.yml; the config reference is generated from the schema by docs/hooks.py)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site  # (the variable: material's banner about MkDocs 2)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/throughput.py --jit-compile true
	$(BIN)/python benchmarks/multi_modal.py
	$(BIN)/python benchmarks/multi_modal.py --other text
	$(BIN)/python benchmarks/synthetic_mmoe.py --seeds 42,1,2
	$(BIN)/python benchmarks/text.py --seeds 42,1
	$(BIN)/python benchmarks/averaging.py
	$(BIN)/python benchmarks/averaging.py --config configs/multi_fashion_mmoe.yaml --steps 60 --repeats 5 --name averaging_multi_fashion
	$(BIN)/python benchmarks/sparse_scaling.py
	$(BIN)/python benchmarks/sparse_scaling.py --batch-size 512 --name sparse_scaling_batch512
	$(BIN)/python benchmarks/architectures.py --epochs 3 --seeds 42,1,2
	$(BIN)/python benchmarks/weightings.py time --steps 20 --repeats 5
	$(BIN)/python benchmarks/weightings.py accuracy --config digits_parity --seeds 42,1,2
	$(BIN)/python benchmarks/weightings.py accuracy --config fashion_mnist --seeds 42,1,2 --epochs 1
	$(BIN)/python benchmarks/fashion_mnist.py --seeds 42,1,2,7
	$(BIN)/python benchmarks/fashion_mnist.py --epochs 1 --set training.jit_compile=false --name fashion_mnist_1epoch_no_xla
	$(BIN)/python benchmarks/fashion_mnist.py --epochs 1 --set training.jit_compile=true --name fashion_mnist_1epoch_xla
	$(BIN)/python benchmarks/fashion_mnist.py --config configs/fashion_mnist_resnet.yaml --epochs 20 --seeds 42,1,2 --set training.mixed_precision=mixed_bfloat16 --name fashion_mnist_resnet
	$(BIN)/python benchmarks/image_stems.py
	$(BIN)/python benchmarks/architectures.py --config configs/multi_fashion_resnet.yaml --name multi_fashion_resnet_pairs8 --epochs 3 --only mmoe,shared_bottom --set training.mixed_precision=mixed_bfloat16 --variant single_task_narrow model.architecture=single_task "model.stem.widths=[24,48,96]" model.stem.stem_filters=24
	$(BIN)/python benchmarks/robustness.py --configs 2000 --kill-trials 6
	$(BIN)/python benchmarks/soak.py --steps 20000
	$(BIN)/python benchmarks/compression.py --epochs 3
	$(BIN)/python benchmarks/search.py --trials 30 --steps 400 --eval-every 200 --final-epochs 3
	$(BIN)/python benchmarks/search_postgres.py
	$(BIN)/python benchmarks/efficiency.py

# moe-tf vs a hand-written PyTorch loop (needs the bench extra: CPU PyTorch; the tests never do)
benchmarks-peer: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/peer_pytorch.py
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python benchmarks/peer_pytorch.py --name peer_pytorch_no_onednn

clean:
	rm -rf runs build site *.egg-info
