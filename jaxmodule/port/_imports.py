"""Imports: torch's -> jaxmodule's, keeping each alias (`import torch.nn as nn` ->
`import jaxmodule.nn as nn`, `from torch import nn, optim` -> `from jaxmodule import nn, optim`).

Runs last, once the other passes have rewritten references: `import torch` becomes
`import jaxmodule` and stays beside it only while unconverted code still names torch. Names
jaxmodule lacks stay on a torch import and are reported. `import jaxmodule` / `import jax` are
added when the converted code needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

import libcst as cst

from ._calls import translate
from ._context import LibRef, PortPass, dotted, local_name

__all__ = ["ImportsPass"]


def _line(code: str) -> cst.SimpleStatementLine:
    return cst.parse_statement(code + "\n")  # type: ignore[return-value]


class ImportsPass(PortPass):
    """Rewrite import statements; add the imports converted code needs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.referenced = _referenced_roots(self.wrapper.module)
        self.imported = _bound_roots(_all_import_lines(self.wrapper.module))

    # ---- one import line -> one or more lines ---------------------------------------------------
    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ):
        if not any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in original_node.body):
            return updated_node
        codes: list[str] = []
        changed = False
        for small in original_node.body:
            if isinstance(small, cst.Import):
                new = self._import(small)
            elif isinstance(small, cst.ImportFrom):
                new = self._import_from(small)
            else:
                new = None
            if new is None:
                codes.append(cst.Module([]).code_for_node(small))
            else:
                codes.extend(new)
                changed = True
        if not changed:
            return updated_node
        if not codes:
            return cst.RemovalSentinel.REMOVE
        lines = [_line(c) for c in codes]
        lines[0] = lines[0].with_changes(leading_lines=original_node.leading_lines)
        lines[-1] = lines[-1].with_changes(trailing_whitespace=original_node.trailing_whitespace)
        return cst.FlattenSentinel(lines)

    def _import(self, node: cst.Import) -> list[str] | None:
        out: list[str] = []
        kept: list[str] = []
        touched = False
        for alias in node.names:
            full = dotted(alias.name) or ""
            root, _, rest = full.partition(".")
            local = local_name(alias)
            spelled = full + (f" as {local}" if local else "")
            if root != "torch":
                kept.append(spelled)
                continue
            touched = True
            bound = local or "torch"
            if not rest:
                needed = "jaxmodule" in self.referenced or bound not in self.referenced
                if needed and "jaxmodule" not in self.imported:
                    out.append("import jaxmodule")
                if bound in self.referenced:
                    kept.append(spelled)
                continue
            new_path, reason = translate(LibRef("torch", rest))
            if reason is not None:
                self.report(node, reason)
            if new_path is None:
                kept.append(spelled)
                continue
            out.append(f"import jaxmodule.{new_path}" + (f" as {local}" if local else ""))
            if local is None and "torch" in self.referenced:
                kept.append(spelled)
        if not touched:
            return None
        return ([f"import {', '.join(kept)}"] if kept else []) + list(dict.fromkeys(out))

    def _import_from(self, node: cst.ImportFrom) -> list[str] | None:
        if node.relative or node.module is None:
            return None
        full = dotted(node.module) or ""
        root, _, rest = full.partition(".")
        if root != "torch":
            return None
        if isinstance(node.names, cst.ImportStar):
            self.report(node, "`import *` from torch is not ported: import the names you use")
            return None
        groups: dict[str, list[str]] = {}
        kept: list[str] = []
        for alias in node.names:
            name = cst.ensure_type(alias.name, cst.Name).value
            local = local_name(alias) or name
            new_path, reason = translate(LibRef("torch", rest).child(name))
            if reason is not None:
                self.report(node, reason)
            if new_path is None:
                kept.append(name if local == name else f"{name} as {local}")
                continue
            module, _, new_name = new_path.rpartition(".")
            groups.setdefault(module, []).append(
                new_name if new_name == local else f"{new_name} as {local}"
            )
        out = [
            f"from {'.'.join(filter(None, ['jaxmodule', module]))} import {', '.join(names)}"
            for module, names in groups.items()
        ]
        if kept:
            out.append(f"from {full} import {', '.join(kept)}")
        return out

    # ---- imports the converted code needs ----------------------------------------------------
    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = _dedupe_imports(list(updated_node.body))
        bound = _bound_roots(body)
        for root in ("jaxmodule", "jax"):
            if (root in self.referenced or root in self.state.needs) and root not in bound:
                _insert_line(body, f"import {root}")
        return updated_node.with_changes(body=body)


def _all_import_lines(module: cst.Module) -> list[cst.SimpleStatementLine]:
    """Every import line of the file, nested ones included."""
    found: list[cst.SimpleStatementLine] = []

    class _Lines(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
            if _is_import_line(node):
                found.append(node)

    module.visit(_Lines())
    return found


def _referenced_roots(module: cst.Module) -> set[str]:
    """Root names used outside import statements (`torch` in `torch.cat(...)`)."""
    found: set[str] = set()

    class _Roots(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> bool:
            return False

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            found.add(node.value)

    module.visit(_Roots())
    return found


def _is_import_line(stmt: cst.BaseStatement) -> TypeGuard[cst.SimpleStatementLine]:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    )


def _import_lines(body: Sequence[cst.BaseStatement]) -> list[tuple[int, cst.SimpleStatementLine]]:
    return [(i, stmt) for i, stmt in enumerate(body) if _is_import_line(stmt)]


def _import_root(stmt: cst.SimpleStatementLine) -> str:
    small = stmt.body[0]
    module = (
        small.module
        if isinstance(small, cst.ImportFrom)
        else cst.ensure_type(small, cst.Import).names[0].name
    )
    return (dotted(module) or "").split(".")[0] if module is not None else ""


def _bound_roots(body: Sequence[cst.BaseStatement]) -> set[str]:
    bound: set[str] = set()
    for _, stmt in _import_lines(body):
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    bound.add(local_name(alias) or (dotted(alias.name) or "").split(".")[0])
            elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                bound.update(
                    local_name(a) or cst.ensure_type(a.name, cst.Name).value for a in small.names
                )
    return bound


def _dedupe_imports(body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    seen: set[str] = set()
    drop: set[int] = set()
    for i, stmt in _import_lines(body):
        code = cst.Module([]).code_for_node(stmt.with_changes(leading_lines=[])).strip()
        if code in seen:
            drop.add(i)
        seen.add(code)
    return [s for i, s in enumerate(body) if i not in drop]


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _import_position(body: list[cst.BaseStatement]) -> int:
    """Before the first jaxmodule import, else after the file's leading docstring and imports."""
    for i, line in _import_lines(body):
        if _import_root(line) == "jaxmodule":
            return i
    position = 0
    for i, stmt in enumerate(body):
        if _is_import_line(stmt) or (i == 0 and _is_docstring(stmt)):
            position = i + 1
        else:
            break
    return position


def _insert_line(body: list[cst.BaseStatement], code: str) -> None:
    """Insert an import line, taking over the comments above the line it goes before."""
    i = _import_position(body)
    line = _line(code)
    after = body[i] if i < len(body) else None
    if after is not None and _is_import_line(after):
        line = line.with_changes(leading_lines=after.leading_lines)
        body[i] = after.with_changes(leading_lines=[])
    body.insert(i, line)
