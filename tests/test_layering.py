"""The package's import graph flows one way (issue 11, part 5): configs and profiles are
plain data that import no behaviour, ``plan`` knows which runs a table needs, ``reproduce``
runs them, ``report`` reads records and the paper and imports neither. Read from the source
with ``ast`` (every import, at module level or inside a function), so nothing is imported."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "racl"
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__main__")
#: edges that a file owned by another engineer still has; each names the one-line edit that
#: removes it (see the module docstring)
PENDING: set = set()


def imports(module: str) -> dict[str, list[int]]:
    """{racl module imported by ``module``: [line numbers]}, module level and in functions."""
    tree = ast.parse((PKG / f"{module}.py").read_text())
    out: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                names = [node.module.split(".")[0]]
            elif node.level == 1:
                names = [a.name for a in node.names]
            elif node.level == 0 and node.module and node.module.split(".")[0] == "racl":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("racl.")]
        for n in names:
            if n in MODULES and n != module:
                out.setdefault(n, []).append(node.lineno)
    return out


def function_level(module: str) -> list[tuple[str, int]]:
    """racl imports inside a function or class of ``module``: (module, line)."""
    tree = ast.parse((PKG / f"{module}.py").read_text())
    top = {id(n) for n in tree.body}
    return [(m, line) for m, lines in imports(module).items() for line in lines
            if not any(isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno == line and id(n) in top for n in tree.body)]


GRAPH = {m: set(imports(m)) for m in MODULES}


def test_the_graph_was_read():
    assert {"profiles", "plan", "reproduce", "report", "training", "evaluation"} <= set(MODULES)
    assert "plan" in GRAPH["reproduce"] and "profiles" in GRAPH["plan"] and "report" in GRAPH["plan"]


def reach(module: str) -> set:
    """Every racl module ``module`` imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        for n in GRAPH[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_profiles_are_plain_data():
    """racl.profiles imports, even through other modules, only the validators and names of
    low-level modules (epsilon check, speed switches, operation names; the keyed seeds of
    racl.data that racl.attacks uses): no model, run directory, runner or reader."""
    assert reach("profiles") <= {"attacks", "data", "operations", "speed"}, sorted(reach("profiles"))


def test_report_imports_neither_reproduce_nor_training():
    assert not {"reproduce", "training", "search", "plan", "cli"} & GRAPH["report"]


def test_plan_imports_no_runner():
    assert not {"reproduce", "training", "search", "evaluation", "cli"} & GRAPH["plan"]


@pytest.mark.parametrize("module", ["profiles", "plan", "reproduce"])
def test_imports_at_module_top(module):
    assert function_level(module) == []


def test_no_import_cycles():
    """Depth-first search for a cycle in the graph (less the pending edges)."""
    graph = {m: {n for n in GRAPH[m] if (m, n) not in PENDING} for m in MODULES}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])


def test_pending_edges_are_still_there():
    """An allowance that is no longer needed must go (then this test and PENDING go with it)."""
    for a, b in PENDING:
        assert b in GRAPH[a], f"racl.{a} no longer imports racl.{b}: remove ({a!r}, {b!r}) from PENDING"
