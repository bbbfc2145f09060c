"""How citysoc imports: at the top of each module, without circles.

A module imports what it uses at its top, so a reader sees its dependencies in one place. Importing lazily is
left to `citysoc.wiring.lazy`, the table of components a command may not need (the case API, Spark, the
correlator, Elasticsearch), and to the CLI's command table (`citysoc.cli.entry`); the few imports inside
functions that remain are listed below with their reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from citysoc import wiring

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "citysoc"
# packages whose modules citysoc imports: a circle through them counts too
PACKAGES = ("citysoc", "collectors", "correlator", "case_api")

# (module path, function) -> why that function imports inside its body
FUNCTION_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("citysoc/schema.py", "spark_schema"):
        "pyspark: the lake's writers (`soc ingest`, the intake) import the schema and need no Spark; "
        "callers of spark_schema are in correlator and bench",
    ("citysoc/store/factory.py", "open_event_store"):
        "the Elasticsearch store (the elasticsearch client, pyspark's data source API): the case API and "
        "`soc ingest` open the lake without them; the case API opens stores here, not through citysoc.wiring",
}
# modules that call importlib.import_module -> why
IMPORTLIB_ALLOWED: dict[str, str] = {
    "citysoc/wiring.py": "`lazy`, the components a command may not need, imported on first use",
    "citysoc/cli/entry.py": "the command table: `soc CMD` imports only CMD's module",
}


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), filename=str(path))


def _function_imports(tree: ast.AST, function: str | None = None) -> Iterator[tuple[str, ast.Import | ast.ImportFrom]]:
    for node in ast.iter_child_nodes(tree):
        inner = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else function
        if isinstance(node, ast.Import | ast.ImportFrom) and function is not None:
            yield function, node
        yield from _function_imports(node, inner)


def test_no_module_imports_inside_a_function_unless_listed_with_its_reason() -> None:
    found = {(path, function): node.lineno for path, tree in _modules(PACKAGE)
             for function, node in _function_imports(tree)}
    unlisted = sorted(f"{path}:{line} in {function}()" for (path, function), line in found.items()
                      if (path, function) not in FUNCTION_IMPORTS_ALLOWED)
    assert not unlisted, "import at the top of the module, or add to citysoc.wiring.lazy:\n" + "\n".join(unlisted)
    stale = sorted(set(FUNCTION_IMPORTS_ALLOWED) - set(found))
    assert not stale, f"listed but no longer importing inside the function: {stale}"


def test_the_ast_walk_finds_an_import_inside_a_nested_function() -> None:
    tree = ast.parse("import os\n\ndef outer():\n    def inner():\n        from json import dumps\n")
    assert [(function, node.lineno) for function, node in _function_imports(tree)] == [("inner", 5)]


def test_only_the_listed_modules_import_by_name_at_run_time() -> None:
    by_name = {"import_module", "__import__"}
    calling = {path for path, tree in _modules(PACKAGE) for node in ast.walk(tree)
               if (isinstance(node, ast.Attribute) and node.attr in by_name)
               or (isinstance(node, ast.Name) and node.id in by_name)}
    assert calling == set(IMPORTLIB_ALLOWED)


def test_every_lazy_component_resolves_to_what_its_table_names() -> None:
    """A misspelt module or name in the table would otherwise fail only when its command runs."""
    entries = {name: entry for name, entry in vars(wiring._Components).items() if isinstance(entry, wiring._Import)}
    assert len(entries) >= 25
    for name, entry in entries.items():
        value = getattr(wiring.lazy, name)
        assert value is not None, name
        if isinstance(value, type) or callable(value):
            assert value.__module__.split(".")[0] in PACKAGES, (name, value)
            assert value.__name__ == entry.attribute, (name, value)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: not those in functions, nor under `if TYPE_CHECKING`."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _run_time_imports(node.orelse)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    yield from _run_time_imports(block)


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of PACKAGES it imports when it is imported."""
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges: set[str] = set()
        for node in _run_time_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in files)
                continue
            base = node.module or ""
            if node.level:
                parent = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join([*parent[:len(parent) - node.level + 1], *([base] if base else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in files:
                    edges.add(f"{base}.{alias.name}")
                elif base in files:
                    edges.add(base)
        edges.discard(module)
        graph[module] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_circle_of_imports_runs_through_citysoc() -> None:
    graph = import_graph()
    assert "citysoc.wiring" in graph and "citysoc.cli.entry" in graph and "citysoc.store.parquet" in graph
    through_citysoc = [circle for circle in circles(graph) if any(m.split(".")[0] == "citysoc" for m in circle)]
    assert not through_citysoc


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
])
def test_circles_are_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert circles(graph) == expected
