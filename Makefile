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
export LLAMA_CPP_DIR ?= $(CURDIR)/.cache/llama.cpp

.PHONY: install demo docs figures test slowest lint check-export check-clean check-readme check-leftovers readme nbtest pytest lab clean

# Install once: torch through the constraints file first (the CPU wheel here, the user's own build elsewhere),
# then the package with its dev extras. The stamp is remade only when the package metadata changes.
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@# llama.cpp's GGUF converter (the GGUF export and its test): the source distribution of llama-cpp-python on PyPI vendors
	@# llama.cpp; it is downloaded once into .cache/ (never built) and only the converter, its conversion/ package and gguf-py/ unpacked.
	v=0.3.36; test -f .cache/llama_cpp_python-$$v.tar.gz || $(BIN)/pip download -q --no-deps --no-binary :all: llama-cpp-python==$$v -d .cache && \
	  rm -rf .cache/llama.cpp && mkdir -p .cache/llama.cpp && tar xzf .cache/llama_cpp_python-$$v.tar.gz -C .cache/llama.cpp --strip-components=3 \
	    llama_cpp_python-$$v/vendor/llama.cpp/convert_hf_to_gguf.py llama_cpp_python-$$v/vendor/llama.cpp/conversion llama_cpp_python-$$v/vendor/llama.cpp/gguf-py
	touch $(STAMP)

# JupyterLab's settings overrides (.jupyter/overrides.json: news and update checks off, no request leaves the machine),
# copied into the environment whenever the committed file changes, so an existing .venv gets them too.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): .jupyter/overrides.json $(STAMP)
	install -D -m 644 $< $@

install: $(STAMP) $(LAB_OVERRIDES)

# The demo: the six stage notebooks run by papermill from configs/demo.yaml on a synthetic WhatsApp backup of
# invented people, offline (a GPT-2 stand-in, Gemma 3 270M from PyPI), into runs/demo/; it ends by printing where
# the report, the loss curves, the comparison table and the cost table are. A rerun keeps the finished stages.
demo: $(STAMP)
	$(BIN)/chatmimic run configs/demo.yaml $(ARGS)

# make test = the library is the export of the notebooks, the notebooks are clean, every notebook runs, pytest passes,
# and those runs left nothing in nbs/.
test: $(STAMP) $(LAB_OVERRIDES) check-export check-clean check-readme nbtest pytest check-leftovers slowest

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

# Each notebook's time goes to .cache/nbtest.log; `make test` ends by printing the slowest ten notebooks and tests.
# Notebooks and test files run TEST_WORKERS at a time (pytest-xdist, a test file per worker), each with one torch thread
# unless OMP_NUM_THREADS says otherwise: two torch processes of two threads each on two cores spin against each other
# (the audit notebook's toy runs, two at once: 42-44 s each with two threads, 25-26 s with one), and a lone test spends
# much of its time importing torch and transformers on one core anyway.
TEST_WORKERS ?= 2
TEST_THREADS := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1}
nbtest:
	@mkdir -p .cache
	set -o pipefail; $(TEST_THREADS) $(BIN)/nbdev_test --n_workers $(TEST_WORKERS) --timing 2>&1 | tee .cache/nbtest.log

pytest:
	@mkdir -p .cache
	set -o pipefail; $(TEST_THREADS) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10 tests 2>&1 | tee .cache/pytest.log

slowest:
	@echo "slowest notebooks (nbdev_test):"; grep -E '\.ipynb: [0-9]+ secs' .cache/nbtest.log | sort -t: -k2 -n -r | head -10 | sed 's/^/  /' || true
	@echo "slowest tests (pytest):"; sed -n '/slowest 10 durations/,/^$$/p' .cache/pytest.log | tail -n +2 | sed 's/^/  /' || true

# Notebook runs write under runs/ or a temporary folder, never beside the notebooks: after nbtest and pytest, nbs/ holds
# no untracked or ignored file (a clean checkout has none; scratch notebooks nbs/_*.ipynb are allowed).
check-leftovers:
	@left="$$(git status --porcelain --ignored -- nbs | grep -E '^(\?\?|!!) ' | grep -vE '^\?\? nbs/_[^/]*\.ipynb$$')"; \
	test -z "$$left" || { echo "$$left" >&2; echo "nbs/ holds the files above, which a clean checkout does not: a notebook run left them (write under ../runs/nbs/ or a temporary folder instead, then remove them), or they are new and not committed yet" >&2; exit 1; }

# The README's figures come from the demo run, synthetic data only (docs.publishable_run refuses a run of your own export):
# make demo, then make figures, then commit images/.
figures: $(STAMP)
	$(BIN)/python -c "from chatmimic.docs import publishable_run; import sys; sys.exit(0 if publishable_run('runs/demo') else 'runs/demo: no complete demo run; run make demo first')"
	mkdir -p images
	cp runs/demo/train_full/loss.png images/demo-loss-full.png
	cp runs/demo/train_qlora/loss.png images/demo-loss-qlora.png
	cp runs/demo/cost/power.png images/demo-power.png

# JupyterLab on nbs/ with the project's kernel: every notebook's metadata names `python3`, the kernelspec ipykernel installs
# in .venv (JUPYTER_PREFER_ENV_PATH puts it before one in ~/.local), run by .venv's python; every notebook runs top to
# bottom on its defaults. Only on 127.0.0.1, behind the random token Jupyter makes; --allow-root only when run as root.
# It prints the URL to open, token included. Checkpoints go to runs/lab/checkpoints (private, git-ignored), not into
# nbs/. News and update checks are off (.jupyter/overrides.json). More options: make lab ARGS='--no-browser --port 8890'.
LAB_DIR ?= nbs
LAB_CHECKPOINTS ?= runs/lab/checkpoints
lab: $(STAMP) $(LAB_OVERRIDES)
	@umask 077 && mkdir -p $(LAB_CHECKPOINTS)
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_DIR) --ServerApp.ip=127.0.0.1 \
	  --FileCheckpoints.checkpoint_dir=$(abspath $(LAB_CHECKPOINTS)) $$(test "$$(id -u)" = 0 && echo --allow-root) $(ARGS)

# The docs site in _docs/: a page per notebook with its synthetic outputs, the API reference and the published demo
# run. nbdev_proc_nbs's processing, then Quarto where it is installed, else smalldocs (pure Python, offline).
docs: $(STAMP)
	$(BIN)/python -m chatmimic.docs $(ARGS)

# pyflakes' checks and syntax errors on the library, the tests and the benchmarks (ruff.toml); also a test in make test.
lint: $(STAMP)
	$(BIN)/ruff check chatmimic tests bench

clean:
	rm -rf _docs _proc .pytest_cache runs/docs
