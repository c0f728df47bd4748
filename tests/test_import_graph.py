"""The package's imports point one way: no import cycles, function-level imports included.

Every module of `jaxmodule` is parsed with `ast`; each import of another jaxmodule module,
at module level or inside a function, is an edge. An import inside a function still ties the
two files together (it only runs later), so it counts. Imports under `if TYPE_CHECKING:` do
not run and do not count.

How an import becomes edges (B is the module named, importer is the file holding the import):

- `import B` / `from B import n`: an edge to B, except when B is a package above the importer
  (Python initialises those before the importer runs, so that edge says nothing about order);
  other packages on B's path that are not above the importer get an edge too (their `__init__`
  runs).
- `from B import n` where `B.n` is a submodule: an edge to `B.n`, the file actually used. So
  `from .. import functional as F` is an edge to `nn.functional`, not to the `nn` package.
- `from B import n` where n is a plain name and B is a package above the importer: an edge to
  B; reaching a sibling through the parent's re-exports is how cycles start.

A package `__init__` importing its own submodules is the ordinary direction (the package
depends on its children) and is an edge like any other.
"""

from __future__ import annotations

import ast
import pathlib

import jaxmodule

PACKAGE_DIR = pathlib.Path(jaxmodule.__file__).parent
PACKAGE = "jaxmodule"


def _module_files() -> dict[str, pathlib.Path]:
    files = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


MODULES = _module_files()

# Back edges not yet removed (issue 15), each with what removing it takes. The graph is checked
# without them; each must still exist, so fixing one means deleting its line here.
KNOWN_BACK_EDGES: dict[tuple[str, str], str] = {}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Yield (import node, inside a function) for every import that runs."""

    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for orelse in child.orelse:
                    yield from visit_one(orelse, in_function)
                continue
            yield from visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
            return
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from visit(node, inner)

    yield from visit(tree, False)


def _resolve_base(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    # the package a relative import starts from: the importer itself when it is a package
    base = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    if node.module:
        base += node.module.split(".")
    return ".".join(base)


def _is_above(package: str, importer: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _edges_to(importer: str, module: str) -> set[str]:
    """Edges for executing `module` (and the packages on its path not above the importer)."""
    edges = set()
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in MODULES and not _is_above(prefix, importer):
            edges.add(prefix)
    return edges


def _node_edges(importer: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    edges: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == PACKAGE:
                edges |= _edges_to(importer, alias.name)
        return edges
    base = _resolve_base(importer, node)
    if base.split(".")[0] != PACKAGE:
        return edges
    edges |= _edges_to(importer, base)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in MODULES:
            edges |= _edges_to(importer, submodule)
        elif base in MODULES:
            edges.add(base)  # a plain name from a package's __init__ (even a package above)
    edges.discard(importer)
    return edges


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set()
        for node, _ in _imports(tree):
            graph[name] |= _node_edges(name, node)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit); returns every SCC."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    return [
        c for c in strongly_connected_components(graph) if len(c) > 1 or c[0] in graph.get(c[0], ())
    ]


def test_tarjan_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_edges_resolve_submodules_not_parent_packages():
    tree = ast.parse(
        "from .. import functional as F\nfrom ..parameter import Parameter\n"
        "def f():\n    from .module import Module\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .conv import Conv2d\n"
    )
    edges = set()
    for node, _ in _imports(tree):
        edges |= _node_edges("jaxmodule.nn.modules.linear", node)
    assert edges == {
        "jaxmodule.nn.functional",
        "jaxmodule.nn.parameter",
        "jaxmodule.nn.modules.module",
    }
    # a plain name from the parent package's __init__ is an edge to that package
    node = ast.parse("from .. import Parameter").body[0]
    assert _node_edges("jaxmodule.nn.modules.linear", node) == {"jaxmodule.nn"}


def test_known_back_edges_still_exist():
    graph = import_graph()
    gone = [edge for edge in KNOWN_BACK_EDGES if edge[1] not in graph.get(edge[0], ())]
    assert not gone, f"remove these from KNOWN_BACK_EDGES, they are gone: {gone}"


def test_no_import_cycles():
    graph = import_graph()
    for importer, target in KNOWN_BACK_EDGES:
        graph[importer].discard(target)
    cycles = import_cycles(graph)
    assert not cycles, (
        "import cycles (each line is one strongly connected component):\n"
        + "\n".join("  " + " <-> ".join(c) for c in cycles)
    )


def _deferred_imports_without_reason() -> list[str]:
    bare = []
    for name, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        for node, in_function in _imports(ast.parse(source, filename=str(path))):
            if not in_function or not _node_edges(name, node):
                continue
            nearby = lines[node.lineno - 2 : node.lineno]  # the previous line and the import's own
            if not any("# deferred:" in line for line in nearby):
                bare.append(
                    f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
                )
    return bare


def test_function_level_imports_say_why():
    """An import of jaxmodule inside a function needs a `# deferred: why` comment on its line or
    the line above (an optional dependency, a cost paid only on an error path); with no cycles,
    everything else belongs at the top of the file."""
    bare = _deferred_imports_without_reason()
    assert not bare, "function-level imports without a `# deferred:` reason:\n" + "\n".join(bare)
