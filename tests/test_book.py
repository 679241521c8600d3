"""The book's paired notebooks: every chapter has its .ipynb, their code agrees, and the
table of contents lists every chapter."""

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "book").glob("*.md"))


def _code(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells if c.cell_type in ("code", "markdown")]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.name)
def test_paired_notebook_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{md.name} has no paired {ipynb.name}: run `make notebooks`"
    a = jupytext.read(md)
    b = nbformat.read(ipynb, as_version=4)
    assert _code(a) == _code(b), f"{ipynb.name} is out of date with {md.name}: run `make notebooks`"
    code_cells = [c for c in b.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code_cells), f"{ipynb.name} has unexecuted cells: run `make notebooks`"


def test_toc_lists_every_chapter():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    listed = {toc["root"]}
    for part in toc.get("parts", []) + [toc]:
        for ch in part.get("chapters", []) or []:
            listed.add(ch["file"])
    assert {f"book/{p.stem}" for p in CHAPTERS} == listed
