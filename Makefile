# `make book` builds the static site into _build/html; `make test` runs the unit tests and
# the notebooks (nbval). Both create .venv and install everything they need first,
# including Debian's graphviz for `dot`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.racl-installed
SUDO   := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)
BOOK_MD := $(wildcard book/*.md)
# MathJax 3 served with the book (from the PyPI package django-static-mathjax), so that the
# built site renders its math offline; _config.yml points sphinx's mathjax_path at it.
# (Not under _static: jupyter-book would add every .js file there to every page.)
MATHJAX := _mathjax/mathjax/tex-mml-chtml.js

.PHONY: setup system-deps device-packages book test test-unit-heavy test-unit-rest test-nbval test-other-cpu notebooks notebooks-committed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[book,test]'
	touch $@

# graphviz's `dot` draws the cells; g++ builds torch.compile's CPU code (the retraining's
# `compile` switch and tests/test_compile.py)
system-deps:
	@command -v dot >/dev/null 2>&1 || { echo "installing Debian's graphviz (dot)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }
	@command -v g++ >/dev/null 2>&1 || { echo "installing Debian's g++ (torch.compile on the CPU)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq g++ >/dev/null; }

$(MATHJAX): $(STAMP)
	rm -rf _mathjax && mkdir -p _mathjax/mathjax
	src="$$($(BIN)/python -c 'import mathjax, pathlib; print(pathlib.Path(mathjax.__file__).parent / "static/mathjax/es5")')" && \
	  cp -r "$$src/tex-mml-chtml.js" "$$src/a11y" "$$src/adaptors" "$$src/input" "$$src/output" "$$src/sre" "$$src/ui" _mathjax/mathjax/

setup: $(STAMP) system-deps $(MATHJAX)

# The book: chapters executed at the smoke profile; any failing cell fails the build. One
# thread per kernel: the smoke-size steps are as fast on one (a smoke search: 21 s on one, 22 s
# on two idle cores), and two threads beside any other busy process stall on every small
# parallel region (the same search ran past 10 minutes next to one training process).
book: setup
	OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . -W -n --keep-going

# `make test`: the md/ipynb pairs as committed (before jupytext touches them), then four
# independent parts, run side by side on JOBS cores (default: all), each on one thread, so
# that no part's PyTorch threads wait for a core another part holds:
#   test-unit-heavy  the unit tests that train, search or attack (the longest part)
#   test-other-cpu   the equivalence tests and every chapter on ATen's portable kernels
#   test-unit-rest   every other unit test file (a new file lands here)
#   test-nbval       every chapter's notebook against its committed outputs
# Each part prints its output when it ends (make --output-sync); `make -k` runs all of them
# even when one fails. `make test JOBS=1` runs them one after another (beside a campaign).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
ONE_THREAD := OMP_NUM_THREADS=1 RACL_TEST_THREADS=1
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
NBVAL := --nbval book -q --nbval-sanitize-with book/sanitize.cfg --nbval-cell-timeout=600
UNIT_HEAVY := tests/test_training.py tests/test_search.py tests/test_fastpaths.py tests/test_speed.py \
  tests/test_attacks.py tests/test_compile.py tests/test_lipschitz.py tests/test_bench.py tests/test_errors.py \
  tests/test_report.py tests/test_eval_records.py
TEST_PARTS := test-unit-heavy test-other-cpu test-unit-rest test-nbval
test: setup
	$(PYTEST) tests/test_book.py -q
	$(BIN)/jupytext --to ipynb --update $(BOOK_MD)
	@echo "make test: $(words $(TEST_PARTS)) parts ($(TEST_PARTS)) on $(JOBS) cores; each prints its output when it ends"
	$(MAKE) --no-print-directory -k -j$(JOBS) --output-sync=target $(TEST_PARTS)

test-unit-heavy: setup
	$(ONE_THREAD) $(PYTEST) $(UNIT_HEAVY) -q --durations=10

test-unit-rest: setup
	$(ONE_THREAD) $(PYTEST) tests $(addprefix --ignore=,$(UNIT_HEAVY)) --ignore=tests/test_book.py -q --durations=10

test-nbval: setup
	$(ONE_THREAD) $(PYTEST) $(NBVAL)

# Results must not hang on the machine that recorded them: ATen's portable kernels (no AVX2 or
# AVX-512, other summation orders) on one thread, for the equivalence tests and every chapter.
OTHER_CPU := ATEN_CPU_CAPABILITY=default $(ONE_THREAD)
test-other-cpu: setup
	$(OTHER_CPU) $(PYTEST) tests/test_speed.py $(wildcard tests/test_fastpaths.py) tests/test_training.py -q
	$(OTHER_CPU) $(PYTEST) $(NBVAL)

# Regenerate the paired notebooks' outputs after editing a chapter (smoke profile).
notebooks: setup
	$(BIN)/jupytext --to ipynb --execute $(BOOK_MD)

# The same from the committed records alone. A campaign running here writes records that
# are not committed yet, and the chapters would show them (and nbval in a clean clone would
# then fail). This executes a clone of HEAD beside the repository, where it finds ../shared
# as the repository does, on JOBS cores, and copies the notebooks back (commit the chapters first).
COMMITTED := $(abspath $(CURDIR)/../$(notdir $(CURDIR))-committed)
notebooks-committed: setup
	rm -rf $(COMMITTED) && git clone -q $(CURDIR) $(COMMITTED)
	cd $(COMMITTED) && ls $(BOOK_MD) | PYTHONPATH=$(COMMITTED) OMP_NUM_THREADS=1 xargs -P $(JOBS) -n 1 \
	  $(abspath $(BIN))/jupytext --to ipynb --execute
	cp $(addprefix $(COMMITTED)/,$(BOOK_MD:.md=.ipynb)) book/
	rm -rf $(COMMITTED)

clean:
	rm -rf _build

# What a lent GPU machine lacks, for the device tool's `carry` (.whl is ignored; README, "On a
# lent GPU"): torchattacks' wheel, and pyautoattack's code alone (its wheel holds a 44 MB example
# model, too large to travel beside the tree). benchmarks/device_env.sh, which the device scripts
# source, installs the one and puts the other on PYTHONPATH.
device-packages: setup
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux2014_x86_64 -d .whl torchattacks==3.5.1
	rm -rf .whl/site && $(BIN)/python -m pip install -q --no-deps --no-compile --target .whl/site pyautoattack==0.2.0
	rm -rf .whl/site/pyautoattack/examples
	du -sh .whl
