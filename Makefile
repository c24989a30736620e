# chatmimic: `make demo` and `make test` are all a newcomer needs; both create or reuse .venv.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_DISABLE_TELEMETRY=1
export HF_HUB_OFFLINE ?= 1
export DO_NOT_TRACK=1
export WANDB_MODE=disabled
export UNSLOTH_DISABLE_STATISTICS=1
export TOKENIZERS_PARALLELISM=false

.PHONY: install demo docs figures test check-export check-clean check-readme readme nbtest pytest lab clean

# Install once: torch through the constraints file first (the CPU wheel here, the user's own build elsewhere),
# then the package with its dev extras. The stamp is remade only when the package metadata changes.
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo: the six stage notebooks run by papermill from configs/demo.yaml on a synthetic WhatsApp backup of
# invented people, offline (a GPT-2 stand-in, Gemma 3 270M from PyPI), into runs/demo/; it ends by printing where
# the report, the loss curves, the comparison table and the cost table are. A rerun keeps the finished stages.
demo: $(STAMP)
	$(BIN)/chatmimic run configs/demo.yaml $(ARGS)

# make test = the library is the export of the notebooks, the notebooks are clean, every notebook runs, pytest passes.
test: $(STAMP) check-export check-clean check-readme nbtest pytest

check-export:
	$(BIN)/nbdev_export
	@git diff --quiet --exit-code -- chatmimic || { git --no-pager diff --stat -- chatmimic; echo "chatmimic/ differs from the notebooks: run nbdev_export and commit both" >&2; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard chatmimic)" || { echo "nbdev_export wrote untracked files in chatmimic/: commit them" >&2; exit 1; }

check-clean:
	$(BIN)/nbdev_clean
	@git diff --quiet --exit-code -- nbs || { git --no-pager diff --stat -- nbs; echo "notebooks in nbs/ are not clean: run nbdev_clean and commit" >&2; exit 1; }

# README.md is generated from nbs/index.ipynb (nbconvert here; nbdev_readme needs Quarto).
readme: $(STAMP)
	$(BIN)/jupyter nbconvert --log-level WARN --to markdown nbs/index.ipynb --output-dir . --output README

check-readme:
	@$(BIN)/jupyter nbconvert --log-level WARN --to markdown nbs/index.ipynb --stdout 2>/dev/null | cmp -s - README.md || { echo "README.md differs from nbs/index.ipynb: run make readme and commit" >&2; exit 1; }

nbtest:
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest:
	$(BIN)/python -m pytest -q tests

# The README's figures come from the demo run, synthetic data only (docs.demo_run refuses a run of your own export):
# make demo, then make figures, then commit images/.
figures: $(STAMP)
	$(BIN)/python -c "from chatmimic.docs import demo_run; import sys; sys.exit(0 if demo_run('runs/demo') else 'runs/demo: no complete demo run; run make demo first')"
	mkdir -p images
	cp runs/demo/train_gpt2_full/loss.png images/demo-loss-full.png
	cp runs/demo/train_gemma_qlora/loss.png images/demo-loss-qlora.png
	cp runs/demo/cost/power.png images/demo-power.png

# JupyterLab on the project's kernel (.venv's python3 kernelspec): every notebook runs top to bottom on its defaults.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs

# The docs site in _docs/: a page per notebook with its synthetic outputs, the API reference and the published demo
# run. nbdev_proc_nbs's processing, then Quarto where it is installed, else smalldocs (pure Python, offline).
docs: $(STAMP)
	$(BIN)/python -m chatmimic.docs $(ARGS)

clean:
	rm -rf _docs _proc .pytest_cache runs/docs
