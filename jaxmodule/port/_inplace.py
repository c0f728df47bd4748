"""In-place updates of activations -> out-of-place assignments.

JAX arrays are immutable, so an activation updated in place is rebound instead:

* `x[mask] = v` -> `x = x.at[mask].set(v)`; `x[:, 0] += 1` -> `x = x.at[:, 0].add(1)`
* `x.add_(y)` -> `x = x + y` (also `sub_`, `mul_`, `div_`, `pow_`; `alpha=` kept)
* `x.masked_fill_(m, v)` -> `x = jaxmodule.Tensor.masked_fill(x, m, v)` (any `<method>_`)
* `x.zero_()` -> `x = jaxmodule.zeros_like(x)`; `x.fill_(v)` -> `x = jaxmodule.full_like(x, v)`

Parameters and buffers keep their in-place helpers (jaxmodule's Parameter/Buffer implement them):
receivers classified as parameters (`.weight`, `.data`, loop variables over `.parameters()`),
and any attribute receiver inside `with torch.no_grad()` or a `@torch.no_grad()` function.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst
from libcst.metadata import Assignment

from . import _names
from ._context import PortPass, assign_target, expr, parenthesize
from ._kinds import Kind, in_no_grad
from ._methods import tensor_method_call

__all__ = ["InplacePass"]

_OPERATORS: dict[str, Callable[[], cst.BaseBinaryOp]] = {
    "add_": cst.Add,
    "sub_": cst.Subtract,
    "mul_": cst.Multiply,
    "div_": cst.Divide,
    "pow_": cst.Power,
}
_AUG_METHODS = {
    cst.AddAssign: "add",
    cst.SubtractAssign: "subtract",
    cst.MultiplyAssign: "multiply",
    cst.DivideAssign: "divide",
    cst.PowerAssign: "power",
}


class InplacePass(PortPass):
    """Rewrite in-place updates of activations as assignments."""

    # ---- x.method_(...) as a statement ------------------------------------------------------
    def leave_Expr(self, original_node: cst.Expr, updated_node: cst.Expr) -> cst.BaseSmallStatement:
        call = original_node.value
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)):
            return updated_node
        method = call.func.attr.value
        base = _names.inplace_base(method)
        receiver = call.func.value
        if (
            base is None
            or self.aliases.resolve(receiver) is not None
            or not self._is_activation(receiver)
        ):
            return updated_node
        if not isinstance(receiver, (cst.Name, cst.Attribute)):
            self.report(
                original_node,
                f"in-place `{method}` on an expression: compute the value out of "
                f"place and assign it",
            )
            return updated_node
        if self._is_caller_argument(receiver):
            self.report(
                original_node,
                f"in-place `{method}` on a function argument: the caller's value "
                f"cannot be updated in JAX; return the new value instead",
            )
            return updated_node
        new_call = cst.ensure_type(updated_node.value, cst.Call)
        new_receiver = cst.ensure_type(new_call.func, cst.Attribute).value
        value = self._out_of_place(original_node, method, base, new_receiver, list(new_call.args))
        if value is None:
            return updated_node
        return cst.Assign(targets=[assign_target(new_receiver)], value=value)

    def _is_activation(self, receiver: cst.BaseExpression) -> bool:
        kind = self.kinds.of(receiver)
        if kind not in (Kind.TENSOR, Kind.UNKNOWN):
            return False
        return not (isinstance(receiver, cst.Attribute) and in_no_grad(self, receiver))

    def _is_caller_argument(self, receiver: cst.BaseExpression) -> bool:
        """A plain function parameter (never rebound) of unknown kind, outside `forward`."""
        if not isinstance(receiver, cst.Name) or self.kinds.of(receiver) is not Kind.UNKNOWN:
            return False
        scope = self.kinds.scopes.get(receiver)
        bound = [a for a in scope[receiver.value]] if scope is not None else []
        return bool(bound) and all(
            isinstance(a, Assignment) and isinstance(a.node, cst.Param) for a in bound
        )

    def _out_of_place(
        self, node: cst.CSTNode, method: str, base: str, x: cst.BaseExpression, args: list[cst.Arg]
    ) -> cst.BaseExpression | None:
        positional = [a for a in args if a.keyword is None]
        keywords = {a.keyword.value: a.value for a in args if a.keyword is not None}
        if method in _names.RANDOM_INPLACE:
            self.report(
                node,
                f"random in-place `{method}` on an activation: draw a new array "
                f"(jaxmodule.randn_like / rand_like) and assign it",
            )
            return None
        if method == "zero_":
            return cst.Call(expr("jaxmodule.zeros_like"), [cst.Arg(x)])
        if method == "fill_" and len(positional) == 1 and not keywords:
            self._require(node, "full_like")
            return cst.Call(
                expr("jaxmodule.full_like"),
                [cst.Arg(x, comma=_comma()), cst.Arg(positional[0].value)],
            )
        if method == "detach_":
            return tensor_method_call("detach", x, [])
        if method in _names.INPLACE_ONLY:
            self.report(node, f"in-place `{method}` on an activation has no out-of-place rewrite")
            return None
        if (
            method in _OPERATORS
            and len(positional) == 1
            and set(keywords) <= {"alpha"}
            and (method in ("add_", "sub_") or not keywords)
        ):
            other = positional[0].value
            if "alpha" in keywords:  # a product binds tighter than + and -: no parentheses needed
                other = cst.BinaryOperation(
                    parenthesize(keywords["alpha"]), cst.Multiply(), parenthesize(other)
                )
                return cst.BinaryOperation(parenthesize(x), _OPERATORS[method](), other)
            return cst.BinaryOperation(parenthesize(x), _OPERATORS[method](), parenthesize(other))
        return tensor_method_call(base, x, args)

    def _require(self, node: cst.CSTNode, name: str) -> None:
        if not _names.exists(f"jaxmodule.{name}"):
            self.report(node, f"jaxmodule has no `{name}` yet")

    # ---- x[i] = v, x[i] op= v -----------------------------------------------------------------
    def leave_Assign(
        self, original_node: cst.Assign, updated_node: cst.Assign
    ) -> cst.BaseSmallStatement:
        targets = [t.target for t in original_node.targets]
        subscripts = [t for t in targets if isinstance(t, cst.Subscript)]
        if not subscripts:
            return updated_node
        if len(targets) != 1:
            if any(self._decide(t) is True for t in subscripts):
                self.report(
                    original_node,
                    "chained assignment into an indexed tensor: split it into "
                    "one `x = x.at[i].set(v)` per target",
                )
            return updated_node
        decision = self._decide(subscripts[0])
        if decision is not True:
            if decision:
                self.report(original_node, decision)
            return updated_node
        return self._index_update(
            cst.ensure_type(updated_node.targets[0].target, cst.Subscript),
            "set",
            updated_node.value,
        )

    def leave_AugAssign(
        self, original_node: cst.AugAssign, updated_node: cst.AugAssign
    ) -> cst.BaseSmallStatement:
        if not isinstance(original_node.target, cst.Subscript):
            return updated_node
        decision = self._decide(original_node.target)
        if decision is not True:
            if decision:
                self.report(original_node, decision)
            return updated_node
        method = _AUG_METHODS.get(type(original_node.operator))
        if method is None:
            self.report(
                original_node,
                "this augmented assignment into an indexed tensor has no `.at[]` "
                "method: write `x = x.at[i].set(x[i] <op> v)`",
            )
            return updated_node
        return self._index_update(
            cst.ensure_type(updated_node.target, cst.Subscript), method, updated_node.value
        )

    def _decide(self, target: cst.Subscript) -> bool | str:
        """True to rewrite; a reason to report; '' to leave silently (not a tensor)."""
        base = target.value
        kind = self.kinds.of(base)
        if kind in (Kind.PY, Kind.MODULE):
            return ""
        if kind is Kind.PARAM or (isinstance(base, cst.Attribute) and in_no_grad(self, base)):
            return (
                "indexed write into a parameter or buffer: write "
                "`p.copy_(p.at[i].set(v))` inside `with jaxmodule.no_grad()`"
            )
        if not isinstance(base, (cst.Name, cst.Attribute)):
            return "indexed write into an indexed expression: index the array once and use `.at[]`"
        if kind is Kind.TENSOR or _array_index(target):
            return True
        name = base.value if isinstance(base, cst.Name) else base.attr.value
        return (
            f"cannot tell whether `{name}` is a tensor: if it is, write "
            f"`{name} = {name}.at[i].set(v)`"
        )

    def _index_update(
        self, target: cst.Subscript, method: str, value: cst.BaseExpression
    ) -> cst.Assign:
        ref = cst.Subscript(value=cst.Attribute(target.value, cst.Name("at")), slice=target.slice)
        call = cst.Call(func=cst.Attribute(ref, cst.Name(method)), args=[cst.Arg(value)])
        return cst.Assign(targets=[assign_target(target.value)], value=call)


def _comma() -> cst.Comma:
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _array_index(target: cst.Subscript) -> bool:
    """An index only arrays take: several dimensions, `...`, or `None`."""
    if len(target.slice) > 1:
        return True
    index = target.slice[0].slice
    if isinstance(index, cst.Index):
        value = index.value
        return isinstance(value, cst.Ellipsis) or (
            isinstance(value, cst.Name) and value.value == "None"
        )
    return False
