# `make book` builds the static site into _build/html; `make test` runs the unit tests and
# the notebooks (nbval). Both create .venv and install everything they need first,
# including Debian's graphviz for `dot`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.racl-installed
SUDO   := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)
BOOK_MD := $(wildcard book/*.md)

.PHONY: setup system-deps book test unit nbval notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[book,test]'
	touch $@

system-deps:
	@command -v dot >/dev/null 2>&1 || { echo "installing Debian's graphviz (dot)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }

setup: $(STAMP) system-deps

# The book: chapters executed at the smoke profile; any failing cell fails the build.
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

# Unit tests (including the md/ipynb sync check), then the notebooks against their outputs.
test: setup
	$(BIN)/python -m pytest tests -q
	$(BIN)/jupytext --to ipynb --update $(BOOK_MD)
	$(BIN)/python -m pytest --nbval book -q --nbval-sanitize-with book/sanitize.cfg --nbval-cell-timeout=900

# Regenerate the paired notebooks' outputs after editing a chapter (smoke profile).
notebooks: setup
	$(BIN)/jupytext --to ipynb --execute $(BOOK_MD)

clean:
	rm -rf _build
