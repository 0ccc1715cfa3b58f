"""The code stays in small pieces with no import cycle (issue 19): no class over 200 lines, no function
over 60, and no two modules of bot/, handlers/ or store/ importing each other at load time, directly or
round a longer loop. Read from the source (ast); Alembic's migration scripts are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_layering import sources

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "store")
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of PACKAGES by dotted name (the layering test's scan, migrations left out)."""
    found = {}
    for package in PACKAGES:
        for rel, tree in sources(package):
            parts = rel.removesuffix(".py").split("/")
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = (ROOT / rel, tree)
    return found


def load_time_imports(name: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """The modules `name` imports while it loads: top-level imports, also under if/try, but not under
    `if TYPE_CHECKING:` and not inside functions (those run later)."""
    out: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else [])) if node.level else str(node.module)
                out.add(module)
                out.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`

    visit(tree.body)
    return {m for m in out if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    found = modules()
    graph = {name: load_time_imports(name, path, tree, set(found)) for name, (path, tree) in found.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from . import x\nfrom .y import z\nif TYPE_CHECKING:\n    import p.q\ndef f():\n    import p.r\n")
    known = {"p", "p.x", "p.y", "p.q", "p.r"}
    assert load_time_imports("p", ROOT / "p" / "__init__.py", tree, known) == {"p.x", "p.y"}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_class_over_200_lines_and_no_function_over_60(package: str) -> None:
    too_big = []
    for name, (_path, tree) in modules().items():
        if name.split(".")[0] != package:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                if lines > limit:
                    too_big.append(f"{name}.{node.name}: {lines} lines (limit {limit})")
    assert too_big == []
