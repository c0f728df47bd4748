"""Receiver classification: is this value a module, a parameter, a tensor, or a Python value?

The port decides from the source alone, file by file, with these rules (documented in
docs/porting.md):

* A name's kind joins the kinds of every assignment to it in its scope (libcst scopes);
  assignments that tell nothing are ignored, and conflicting ones make it unknown.
* Modules: instances of `nn.X` classes and of classes in the file that subclass an `nn` class;
  `self` in such a class; `self.x` assigned a module in any method; parameters annotated with a
  module type; unannotated parameters named like `model`, `net`, `criterion` (`MODULE_NAME_RE`);
  iteration over a module (ModuleList) or over `.modules()` / `.children()`.
* Parameters: `nn.Parameter(...)`; `.weight` / `.bias` / `.data` / `.running_mean` ...;
  loop variables over `.parameters()` / `.named_parameters()`.
* Tensors: results of torch/jaxmodule tensor functions, of `nn.functional`, of calling a module,
  of tensor methods on tensors; `forward` arguments; registered buffers; arithmetic with a tensor.
* Python values: literals, containers, comprehensions, builtins' results, imported modules,
  classes and functions, results of calls on Python values (`np.zeros`, `args.x`), `x.shape`.
* Everything else is unknown; passes treat an unknown receiver of a tensor-only method name as a
  tensor.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import libcst as cst
from libcst.metadata import BuiltinAssignment, MetadataWrapper, ParentNodeProvider, ScopeProvider

from . import _names

if TYPE_CHECKING:  # annotations only: _context builds Kinds, so it imports this file
    from ._context import Aliases, PortPass

__all__ = ["Kind", "Kinds", "is_no_grad_ref", "in_no_grad"]

_Node = TypeVar("_Node", bound=cst.CSTNode)


class Kind(enum.Enum):
    """What a value is, as far as the port can tell."""

    MODULE = "module"
    PARAM = "parameter"
    TENSOR = "tensor"
    PY = "python"
    UNKNOWN = "unknown"


KindTree = Kind | tuple  # a Kind, or a tuple of KindTrees for tuple values
_TENSORISH = (Kind.TENSOR, Kind.PARAM)
_LITERALS = (
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
    cst.GeneratorExp,
    cst.Lambda,
)
_MODULE_PY_METHODS = frozenset(
    "parameters named_parameters buffers named_buffers modules named_modules children "
    "named_children state_dict load_state_dict zero_grad register_buffer register_parameter "
    "register_forward_hook register_forward_pre_hook register_full_backward_hook add_module "
    "extra_repr get_submodule get_parameter".split()
)


def join(kinds: list[KindTree]) -> KindTree:
    """One kind for a value that may come from several places (unknowns are ignored)."""
    tuples = [k for k in kinds if isinstance(k, tuple)]
    if tuples and len(tuples) == len(kinds) and len({len(t) for t in tuples}) == 1:
        return tuple(join(list(col)) for col in zip(*tuples))
    flat = {flatten(k) for k in kinds} - {Kind.UNKNOWN}
    if len(flat) == 1:
        return flat.pop()
    if flat and flat <= set(_TENSORISH):
        return Kind.TENSOR
    return Kind.UNKNOWN


def flatten(tree: KindTree) -> Kind:
    """A tuple of values is a Python value (unless every element is a tensor)."""
    if isinstance(tree, Kind):
        return tree
    return Kind.PY


def _element(tree: KindTree, index: int) -> KindTree:
    if isinstance(tree, tuple):
        return tree[index] if index < len(tree) else Kind.UNKNOWN
    return tree


def is_no_grad_ref(path: str) -> bool:
    return path in ("no_grad", "inference_mode")


def in_no_grad(pass_: PortPass, node: cst.CSTNode) -> bool:
    """True inside `with no_grad():` / `with inference_mode():` or a function decorated so."""
    for parent in pass_.ancestors(node):
        if isinstance(parent, cst.With):
            for item in parent.items:
                call = item.item
                ref = pass_.aliases.resolve(call.func if isinstance(call, cst.Call) else call)
                if ref is not None and is_no_grad_ref(ref.path):
                    return True
        if isinstance(parent, (cst.FunctionDef, cst.Lambda)):
            for deco in getattr(parent, "decorators", ()):
                d = deco.decorator
                ref = pass_.aliases.resolve(d.func if isinstance(d, cst.Call) else d)
                if ref is not None and is_no_grad_ref(ref.path):
                    return True
            return False
    return False


class Kinds:
    """Classify expressions of one file (see the module docstring for the rules)."""

    def __init__(self, wrapper: MetadataWrapper, aliases: Aliases) -> None:
        self.scopes = wrapper.resolve(ScopeProvider)
        self.parents = wrapper.resolve(ParentNodeProvider)
        self.aliases = aliases
        self._cache: dict[int, KindTree] = {}
        self._busy: set[int] = set()
        self.classes: dict[str, cst.ClassDef] = {}
        self.functions: dict[str, cst.FunctionDef] = {}
        self._collect_defs(wrapper.module)
        self.module_classes = self._find_module_classes()
        self._attrs: dict[int, dict[str, list]] = {}

    # ---- file-level facts ---------------------------------------------------------------
    def _collect_defs(self, module: cst.Module) -> None:
        classes, functions = self.classes, self.functions

        class _Defs(cst.CSTVisitor):
            def visit_ClassDef(self, node: cst.ClassDef) -> None:
                classes.setdefault(node.name.value, node)

            def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
                functions.setdefault(node.name.value, node)

            def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
                return False  # definitions are compound statements

        module.visit(_Defs())

    def _find_module_classes(self) -> set[str]:
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, cls in self.classes.items():
                if name in found:
                    continue
                for base in cls.bases:
                    ref = self.aliases.resolve(base.value)
                    if (
                        ref is not None
                        and ref.path.startswith("nn.")
                        and ref.path.split(".")[-1][:1].isupper()
                    ) or (isinstance(base.value, cst.Name) and base.value.value in found):
                        found.add(name)
                        changed = True
                        break
        return found

    def class_attrs(self, cls: cst.ClassDef) -> dict[str, list]:
        """`self.<name>` -> the values (expressions or Kinds) assigned to it in the class."""
        if id(cls) in self._attrs:
            return self._attrs[id(cls)]
        attrs: dict[str, list] = {}
        for stmt in cls.body.body:
            if not isinstance(stmt, cst.FunctionDef) or not stmt.params.params:
                continue
            selfname = stmt.params.params[0].name.value
            _SelfAttrs(selfname, attrs).collect(stmt.body)
        self._attrs[id(cls)] = attrs
        return attrs

    def enclosing(
        self, node: cst.CSTNode, kind: type[_Node] | tuple[type[_Node], ...]
    ) -> _Node | None:
        parent = self.parents.get(node)
        while parent is not None and not isinstance(parent, kind):
            parent = self.parents.get(parent)
        return parent

    def method_class(self, fn: cst.FunctionDef) -> cst.ClassDef | None:
        """The class whose body defines `fn` directly."""
        block = self.parents.get(fn)
        cls = self.parents.get(block) if block is not None else None
        return cls if isinstance(cls, cst.ClassDef) else None

    # ---- classification -----------------------------------------------------------------
    def of(self, node: cst.CSTNode) -> Kind:
        """The kind of an expression."""
        return flatten(self.tree(node))

    def tree(self, node: cst.CSTNode) -> KindTree:
        """The kind of an expression, per element for tuples."""
        key = id(node)
        if key in self._cache:
            return self._cache[key]
        if key in self._busy:
            return Kind.UNKNOWN
        self._busy.add(key)
        try:
            result = self._compute(node)
        finally:
            self._busy.discard(key)
        self._cache[key] = result
        return result

    def looks_like_module(self, node: cst.CSTNode) -> bool:
        """Name heuristic for receivers of methods both modules and tensors have."""
        name = (
            node.value
            if isinstance(node, cst.Name)
            else node.attr.value
            if isinstance(node, cst.Attribute)
            else ""
        )
        return bool(_names.MODULE_NAME_RE.search(name))

    def _compute(self, node: cst.CSTNode) -> KindTree:
        if self.aliases.resolve(node) is not None:
            return Kind.PY  # a torch/jaxmodule namespace, class or function
        if isinstance(node, cst.Name):
            return Kind.PY if node.value in ("None", "True", "False") else self._name(node)
        if isinstance(node, cst.Attribute):
            return self._attribute(node)
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.Subscript):
            base = self.of(node.value)
            return (
                Kind.TENSOR
                if base in _TENSORISH
                else Kind.MODULE
                if base is Kind.MODULE
                else Kind.UNKNOWN
            )
        if isinstance(node, cst.BinaryOperation):
            return self._operands([node.left, node.right])
        if isinstance(node, cst.Comparison):
            return self._operands([node.left] + [c.comparator for c in node.comparisons])
        if isinstance(node, cst.UnaryOperation):
            return Kind.PY if isinstance(node.operator, cst.Not) else self.tree(node.expression)
        if isinstance(node, (cst.BooleanOperation,)):
            return join([self.tree(node.left), self.tree(node.right)])
        if isinstance(node, cst.IfExp):
            return join([self.tree(node.body), self.tree(node.orelse)])
        if isinstance(node, cst.Tuple):
            return tuple(
                Kind.UNKNOWN if isinstance(e, cst.StarredElement) else self.tree(e.value)
                for e in node.elements
            )
        if isinstance(node, cst.NamedExpr):
            return self.tree(node.value)
        if isinstance(node, _LITERALS):
            return Kind.PY
        return Kind.UNKNOWN

    def _operands(self, nodes: Sequence[cst.CSTNode]) -> Kind:
        kinds = [self.of(n) for n in nodes]
        if any(k in _TENSORISH for k in kinds):
            return Kind.TENSOR
        return Kind.PY if all(k is Kind.PY for k in kinds) else Kind.UNKNOWN

    def _name(self, node: cst.Name) -> KindTree:
        scope = self.scopes.get(node)
        if scope is None:
            return Kind.UNKNOWN
        kinds: list[KindTree] = []
        for assignment in scope[node.value]:
            if isinstance(assignment, BuiltinAssignment):
                kinds.append(Kind.PY)
                continue
            bound = getattr(assignment, "node", None)
            if isinstance(bound, (cst.Import, cst.ImportFrom, cst.FunctionDef, cst.ClassDef)):
                kinds.append(Kind.PY)
            elif isinstance(bound, cst.Param):
                kinds.append(self._param(bound))
            elif isinstance(bound, cst.Name):
                kinds.append(self._binding(bound))
        return join(kinds)

    def _binding(self, target: cst.Name) -> KindTree:
        path: list[int] = []
        node: cst.CSTNode = target
        parent = self.parents.get(node)
        while isinstance(parent, cst.Element) or isinstance(parent, (cst.Tuple, cst.List)):
            if isinstance(parent, (cst.Tuple, cst.List)):
                path.append(next(i for i, e in enumerate(parent.elements) if e is node))
            node, parent = parent, self.parents.get(parent)
        if isinstance(parent, cst.AssignTarget):
            tree = self.tree(cst.ensure_type(self.parents[parent], cst.Assign).value)
        elif isinstance(parent, cst.AnnAssign):
            tree = (
                self.tree(parent.value)
                if parent.value is not None
                else self._annotation(parent.annotation.annotation)
            )
        elif isinstance(parent, cst.AugAssign):
            tree = Kind.TENSOR if self.of(parent.value) in _TENSORISH else Kind.UNKNOWN
        elif isinstance(parent, (cst.For, cst.CompFor)):
            tree = self.element_of(parent.iter)
        elif isinstance(parent, cst.AsName):
            return Kind.PY
        elif isinstance(parent, cst.NamedExpr):
            tree = self.tree(parent.value)
        else:
            return Kind.UNKNOWN
        for index in reversed(path):
            tree = _element(tree, index)
        return tree

    def element_of(self, iterable: cst.BaseExpression) -> KindTree:
        """The kind of the items a for loop over `iterable` yields."""
        if isinstance(iterable, cst.Call):
            func = iterable.func
            args = [a.value for a in iterable.args]
            if isinstance(func, cst.Name) and self.of(func) is Kind.PY:
                if func.value == "range":
                    return Kind.PY
                if func.value == "enumerate" and args:
                    return (Kind.PY, self.element_of(args[0]))
                if func.value == "zip":
                    return tuple(self.element_of(a) for a in args)
            if isinstance(func, cst.Attribute):
                method = func.attr.value
                per_method: dict[str, KindTree]
                per_method = {
                    "parameters": Kind.PARAM,
                    "named_parameters": (Kind.PY, Kind.PARAM),
                    "buffers": Kind.TENSOR,
                    "named_buffers": (Kind.PY, Kind.TENSOR),
                    "modules": Kind.MODULE,
                    "children": Kind.MODULE,
                    "named_modules": (Kind.PY, Kind.MODULE),
                    "named_children": (Kind.PY, Kind.MODULE),
                    "items": (Kind.PY, Kind.UNKNOWN),
                    "keys": Kind.PY,
                }
                if method in per_method and self.of(func.value) is not Kind.PY:
                    return per_method[method]
        if isinstance(iterable, (cst.List, cst.Tuple)):
            return (
                join([self.tree(e.value) for e in iterable.elements])
                if iterable.elements
                else Kind.UNKNOWN
            )
        kind = self.of(iterable)
        if kind is Kind.MODULE:
            return Kind.MODULE
        return Kind.TENSOR if kind in _TENSORISH else Kind.UNKNOWN

    def _annotation(self, ann: cst.BaseExpression) -> Kind:
        ref = self.aliases.resolve(ann)
        if ref is not None:
            if ref.path == "Tensor":
                return Kind.TENSOR
            if ref.path.startswith("nn.") and ref.path.split(".")[-1][:1].isupper():
                return Kind.MODULE
            return Kind.UNKNOWN
        if isinstance(ann, cst.Name):
            if ann.value in self.module_classes:
                return Kind.MODULE
            if ann.value in ("int", "float", "str", "bool", "list", "dict", "tuple", "set"):
                return Kind.PY
        return Kind.UNKNOWN

    def _param(self, param: cst.Param) -> Kind:
        if param.annotation is not None:
            kind = self._annotation(param.annotation.annotation)
            if kind is not Kind.UNKNOWN:
                return kind
        fn = self.enclosing(param, (cst.FunctionDef, cst.Lambda))
        if not isinstance(fn, cst.FunctionDef):
            return Kind.UNKNOWN
        cls = self.method_class(fn)
        static = any(
            isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
            for d in fn.decorators
        )
        if cls is not None and not static and fn.params.params and fn.params.params[0] is param:
            return Kind.MODULE if cls.name.value in self.module_classes else Kind.PY
        if isinstance(param.default, (cst.Integer, cst.Float, cst.SimpleString)) or (
            isinstance(param.default, cst.Name) and param.default.value in ("True", "False")
        ):
            return Kind.PY
        if cls is not None and cls.name.value in self.module_classes and fn.name.value == "forward":
            return Kind.TENSOR
        name = param.name.value
        if _names.MODULE_NAME_RE.search(name):
            return Kind.MODULE
        if _names.PY_NAME_RE.match(name):
            return Kind.PY
        return Kind.UNKNOWN

    def _self_attr(self, node: cst.Attribute) -> list | None:
        """Values assigned to `self.<attr>` when `node` is such an attribute, else None."""
        if not isinstance(node.value, cst.Name):
            return None
        fn = self.enclosing(node, cst.FunctionDef)
        cls = None
        while fn is not None and (cls := self.method_class(fn)) is None:
            fn = self.enclosing(fn, cst.FunctionDef)
        if (
            fn is None
            or cls is None
            or not fn.params.params
            or fn.params.params[0].name.value != node.value.value
        ):
            return None
        return self.class_attrs(cls).get(node.attr.value)

    def _attribute(self, node: cst.Attribute) -> KindTree:
        attr = node.attr.value
        if attr in _names.PY_ATTRS or attr == "training":
            return Kind.PY
        base = self.of(node.value)
        if base is Kind.MODULE:
            values = self._self_attr(node)
            if values:
                return join([v if isinstance(v, (Kind, tuple)) else self.tree(v) for v in values])
            return Kind.PARAM if attr in _names.PARAM_ATTRS else Kind.MODULE
        if base is Kind.PARAM:
            return (
                Kind.PARAM
                if attr == "data"
                else Kind.TENSOR
                if attr in _names.TENSOR_ATTRS
                else Kind.PY
            )
        if base is Kind.PY:
            return Kind.PY
        if attr == "data":
            return Kind.TENSOR if base is Kind.TENSOR else Kind.PARAM
        if attr in _names.PARAM_ATTRS:
            return Kind.PARAM
        if attr in _names.TENSOR_ATTRS:
            return Kind.TENSOR
        return Kind.UNKNOWN

    def _call(self, node: cst.Call) -> KindTree:
        func = node.func
        ref = self.aliases.resolve(func)
        if ref is not None:
            return _library_call_kind(ref.path)
        if isinstance(func, cst.Name):
            if func.value in self.module_classes and func.value in self.classes:
                return Kind.MODULE
            if func.value in self.classes:
                return Kind.PY
            kind = self.of(func)
            if kind is Kind.MODULE:
                return Kind.TENSOR
            if kind is Kind.PY and func.value in _names.PY_BUILTINS:
                return Kind.PY
            return Kind.UNKNOWN
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = self.of(func.value)
            if receiver is Kind.MODULE:
                if method in _names.MODULE_RESULT_METHODS:
                    return Kind.MODULE
                return Kind.PY if method in _MODULE_PY_METHODS else Kind.TENSOR
            if receiver is Kind.PY:
                return Kind.PY
            if method in _names.TENSOR_METHODS or _names.inplace_base(method):
                if method in _names.PY_RESULT_METHODS:
                    return Kind.PY
                if (
                    method in _names.MODULE_ALSO_HAS
                    and receiver is Kind.UNKNOWN
                    and self.looks_like_module(func.value)
                ):
                    return Kind.MODULE
                return Kind.TENSOR
            return Kind.TENSOR if self.of(func) is Kind.MODULE else Kind.UNKNOWN
        return Kind.TENSOR if self.of(func) is Kind.MODULE else Kind.UNKNOWN


def _library_call_kind(path: str) -> Kind:
    """The kind of what calling torch/jaxmodule's `path` returns."""
    last = path.split(".")[-1]
    if path.startswith("Tensor."):
        return Kind.PY if last in _names.PY_RESULT_METHODS else Kind.TENSOR
    if path in ("nn.Parameter", "nn.parameter.Parameter"):
        return Kind.PARAM
    if (
        path.startswith(("nn.functional.", "nn.init."))
        or path in _names.TENSOR_FUNCTIONS
        or path == "backward"
    ):
        return Kind.TENSOR
    if path.startswith("nn.") and last[:1].isupper():
        return Kind.MODULE
    return Kind.PY


class _SelfAttrs(cst.CSTVisitor):
    """Collect `self.x = value`, `self.register_buffer('x', ...)` in one method body."""

    def __init__(self, selfname: str, attrs: dict[str, list]) -> None:
        self.selfname = selfname
        self.attrs = attrs

    def collect(self, body: cst.CSTNode) -> None:
        body.visit(self)

    def _is_self(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Name) and node.value == self.selfname

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            t = target.target
            if isinstance(t, cst.Attribute) and self._is_self(t.value):
                self.attrs.setdefault(t.attr.value, []).append(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        t = node.target
        if node.value is not None and isinstance(t, cst.Attribute) and self._is_self(t.value):
            self.attrs.setdefault(t.attr.value, []).append(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and self._is_self(func.value) and node.args):
            return
        first = node.args[0].value
        if not isinstance(first, cst.SimpleString):
            return
        kind = {
            "register_buffer": Kind.TENSOR,
            "register_parameter": Kind.PARAM,
            "add_module": Kind.MODULE,
            "register_module": Kind.MODULE,
        }.get(func.attr.value)
        name = first.evaluated_value  # bytes for a b'' literal, which names no attribute
        if kind is not None and isinstance(name, str):
            self.attrs.setdefault(name, []).append(kind)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False
