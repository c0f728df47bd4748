"""What every porting pass shares: import aliases, the pass base class, node helpers.

A pass is a libcst transformer over one file. It reads the file's metadata (positions, parents,
scopes) through `PortPass`, classifies values with `Kinds`, records what it could not convert
with `report(node, reason)`, and records imports its output needs in `PortState.needs`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from ._kinds import Kinds

__all__ = [
    "LIBS",
    "LibRef",
    "Aliases",
    "PortState",
    "PortPass",
    "dotted",
    "local_name",
    "expr",
    "bare",
    "parenthesize",
    "assign_target",
    "names_read",
    "name_counts",
    "assigned_in_order",
    "names_assigned",
    "statements",
]

LIBS = ("torch", "jaxmodule")


@dataclass(frozen=True)
class LibRef:
    """A name inside torch or jaxmodule: `LibRef('torch', 'nn.functional.relu')`."""

    lib: str
    path: str

    def child(self, name: str) -> LibRef:
        return LibRef(self.lib, f"{self.path}.{name}" if self.path else name)

    @property
    def dotted(self) -> str:
        return f"{self.lib}.{self.path}" if self.path else self.lib


def dotted(node: cst.CSTNode) -> str | None:
    """'a.b.c' for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def local_name(alias: cst.ImportAlias) -> str | None:
    """The name `import x as NAME` binds; None without `as`.

    >>> local_name(cst.parse_statement("import torch.nn as nn").body[0].names[0])
    'nn'
    """
    return cst.ensure_type(alias.asname.name, cst.Name).value if alias.asname is not None else None


class Aliases:
    """The local names a file binds to torch or jaxmodule objects by its import statements.

    `jaxmodule` always refers to jaxmodule (earlier passes write `jaxmodule.` references before
    the import pass adds the import).
    """

    def __init__(self, module: cst.Module) -> None:
        self.names: dict[str, LibRef] = {"jaxmodule": LibRef("jaxmodule", "")}
        module.visit(_ImportCollector(self.names))

    def resolve(self, node: cst.CSTNode) -> LibRef | None:
        """The torch/jaxmodule object a Name/Attribute chain names, else None."""
        if isinstance(node, cst.Name):
            return self.names.get(node.value)
        if isinstance(node, cst.Attribute):
            head = self.resolve(node.value)
            return None if head is None else head.child(node.attr.value)
        return None

    def torch_roots(self) -> set[str]:
        """Local names bound to the torch package itself (`import torch [as th]`)."""
        return {n for n, ref in self.names.items() if ref == LibRef("torch", "")}


class _ImportCollector(cst.CSTVisitor):
    """Record what each import binds to a torch or jaxmodule name."""

    def __init__(self, names: dict[str, LibRef]) -> None:
        super().__init__()
        self.names = names

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            full = dotted(alias.name) or ""
            root, _, rest = full.partition(".")
            if root not in LIBS:
                continue
            local = local_name(alias)
            if local is not None:
                self.names[local] = LibRef(root, rest)
            else:
                self.names[root] = LibRef(root, "")
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return False
        full = dotted(node.module) or ""
        root, _, rest = full.partition(".")
        if root in LIBS:
            for alias in node.names:
                name = alias.name.value if isinstance(alias.name, cst.Name) else ""
                local = local_name(alias) or name
                self.names[local] = LibRef(root, rest).child(name)
        return False

    def visit_Expr(self, node: cst.Expr) -> bool:
        return False  # no imports inside expressions: skip the subtree

    def visit_Assign(self, node: cst.Assign) -> bool:
        return False


@dataclass
class PortState:
    """State shared by the passes over one file: imports the output needs."""

    needs: set[str] = field(default_factory=set)


class PortPass(cst.CSTTransformer):
    """Base of the porting passes: metadata access, kinds, and issue recording."""

    METADATA_DEPENDENCIES = (PositionProvider, ParentNodeProvider)

    def __init__(self, wrapper: MetadataWrapper, state: PortState) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.state = state
        self.aliases = Aliases(wrapper.module)
        self.issues: list[tuple[int, str]] = []
        self._kinds: Kinds | None = None

    @property
    def kinds(self) -> Kinds:
        """Value classification (`_kinds.Kinds`), built on first use: scope analysis is the
        costliest metadata, and some passes rarely need it."""
        if self._kinds is None:
            self._kinds = Kinds(self.wrapper, self.aliases)
        return self._kinds

    def report(self, node: cst.CSTNode, reason: str) -> None:
        """Record that the line of `node` (in this pass's input) is left unconverted."""
        self.issues.append((self.get_metadata(PositionProvider, node).start.line, reason))

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.get_metadata(ParentNodeProvider, node, None)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        parent = self.parent(node)
        while parent is not None:
            yield parent
            parent = self.parent(parent)


def expr(code: str) -> cst.BaseExpression:
    """Parse one expression."""
    return cst.parse_expression(code)


def bare(node: cst.BaseExpression) -> cst.BaseExpression:
    """`node` without its outer parentheses."""
    if getattr(node, "lpar", None):
        return node.with_changes(lpar=[], rpar=[])
    return node


def assign_target(node: cst.BaseExpression) -> cst.AssignTarget:
    """`node` as the target of an assignment; TypeError when it cannot be one.

    >>> cst.Module([]).code_for_node(assign_target(expr("a, b")))
    'a, b = '
    """
    if not isinstance(node, cst.BaseAssignTargetExpression):
        raise TypeError(
            f"assign_target: expected a name, attribute, subscript, tuple or list, "
            f"got `{cst.Module([]).code_for_node(node)}`"
        )
    return cst.AssignTarget(node)


_ATOMS = (
    cst.Name,
    cst.Attribute,
    cst.Call,
    cst.Subscript,
    cst.Integer,
    cst.Float,
    cst.Imaginary,
    cst.SimpleString,
    cst.ConcatenatedString,
    cst.FormattedString,
    cst.List,
    cst.Dict,
    cst.Set,
    cst.ListComp,
    cst.SetComp,
    cst.DictComp,
)


def parenthesize(node: cst.BaseExpression) -> cst.BaseExpression:
    """`node` in parentheses unless it is an atom (safe as an operand of any operator)."""
    if isinstance(node, _ATOMS) or getattr(node, "lpar", None):
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def names_read(node: cst.CSTNode) -> set[str]:
    """Names a statement or expression reads (loads), nested functions included."""
    return set(name_counts(node))


def name_counts(node: cst.CSTNode) -> Counter[str]:
    """How often a statement or expression reads each name."""
    found: Counter[str] = Counter()

    class _Reads(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found[n.value] += 1

        def visit_AssignTarget(self, n: cst.AssignTarget) -> bool:
            _visit_target_reads(n.target, self)
            return False

        def visit_Attribute(self, n: cst.Attribute) -> bool:
            n.value.visit(self)
            return False

        def visit_Arg(self, n: cst.Arg) -> bool:
            n.value.visit(self)
            return False

        def visit_Param(self, n: cst.Param) -> bool:
            if n.default is not None:
                n.default.visit(self)
            return False

        def visit_For(self, n: cst.For) -> bool:
            _visit_target_reads(n.target, self)
            n.iter.visit(self)
            n.body.visit(self)
            if n.orelse is not None:
                n.orelse.visit(self)
            return False

        def visit_CompFor(self, n: cst.CompFor) -> bool:
            _visit_target_reads(n.target, self)
            n.iter.visit(self)
            for cond in n.ifs:
                cond.visit(self)
            if n.inner_for_in is not None:
                n.inner_for_in.visit(self)
            return False

        def visit_AsName(self, n: cst.AsName) -> bool:
            return False

        def visit_Import(self, n: cst.Import) -> bool:
            return False

        def visit_ImportFrom(self, n: cst.ImportFrom) -> bool:
            return False

    node.visit(_Reads())
    return found


def _visit_target_reads(target: cst.BaseExpression, visitor: cst.CSTVisitor) -> None:
    """Reads inside an assignment target: `x[i] = ...` reads x and i; `a, b = ...` reads none."""
    if isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            _visit_target_reads(el.value, visitor)
    elif isinstance(target, cst.StarredElement):
        _visit_target_reads(target.value, visitor)
    elif not isinstance(target, cst.Name):
        target.visit(visitor)


def names_assigned(node: cst.CSTNode) -> set[str]:
    """Names a statement binds (assignment, for/with targets, defs), nested functions excluded."""
    return set(assigned_in_order(node))


def assigned_in_order(node: cst.CSTNode) -> list[str]:
    """`names_assigned`, in the order of their first binding."""
    found: dict[str, None] = {}

    def targets(t: cst.BaseExpression) -> None:
        if isinstance(t, cst.Name):
            found[t.value] = None
        elif isinstance(t, (cst.Tuple, cst.List)):
            for el in t.elements:
                targets(el.value)
        elif isinstance(t, cst.StarredElement):
            targets(t.value)

    class _Binds(cst.CSTVisitor):
        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            targets(n.target)

        def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
            targets(n.target)

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            targets(n.target)

        def visit_For(self, n: cst.For) -> None:
            targets(n.target)

        def visit_AsName(self, n: cst.AsName) -> None:
            targets(n.name)

        def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
            targets(n.target)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            found[n.name.value] = None
            return False

        def visit_ClassDef(self, n: cst.ClassDef) -> bool:
            found[n.name.value] = None
            return False

        def visit_Lambda(self, n: cst.Lambda) -> bool:
            return False

        def visit_ListComp(self, n: cst.ListComp) -> bool:
            return False

        def visit_GeneratorExp(self, n: cst.GeneratorExp) -> bool:
            return False

    node.visit(_Binds())
    return list(found)


def statements(block: cst.CSTNode) -> list[cst.BaseStatement]:
    """The statements of a Module or IndentedBlock body."""
    return list(block.body) if isinstance(block, (cst.Module, cst.IndentedBlock)) else []
