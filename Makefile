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

.PHONY: setup system-deps book test test-other-cpu notebooks clean

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

# The book: chapters executed at the smoke profile; any failing cell fails the build.
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

# Unit tests (including the md/ipynb sync check), then the notebooks against their outputs,
# then both again with other CPU kernels (test-other-cpu).
NBVAL := --nbval book -q --nbval-sanitize-with book/sanitize.cfg --nbval-cell-timeout=600
test: setup
	$(BIN)/python -m pytest tests -q --durations=15
	$(BIN)/jupytext --to ipynb --update $(BOOK_MD)
	$(BIN)/python -m pytest $(NBVAL)
	$(MAKE) --no-print-directory test-other-cpu

# Results must not hang on the machine that recorded them: ATen's portable kernels (no AVX2 or
# AVX-512, other summation orders) on one thread, for the equivalence tests and every chapter.
OTHER_CPU := ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 RACL_TEST_THREADS=1
test-other-cpu: setup
	$(OTHER_CPU) $(BIN)/python -m pytest tests/test_speed.py $(wildcard tests/test_fastpaths.py) tests/test_training.py -q
	$(OTHER_CPU) $(BIN)/python -m pytest $(NBVAL)

# Regenerate the paired notebooks' outputs after editing a chapter (smoke profile).
notebooks: setup
	$(BIN)/jupytext --to ipynb --execute $(BOOK_MD)

clean:
	rm -rf _build
