"""Tensor-method calls on activations -> `jaxmodule.Tensor.<method>(x, ...)`.

`x.view(B, T, C)` becomes `jaxmodule.Tensor.view(x, B, T, C)`: the method with torch's signature,
called on a JAX array. Device moves on activations (`x.to(device)`, `x.cuda()`, `x.cpu()`) are
dropped: JAX places arrays itself. Which calls are rewritten is decided by the receiver's kind
(`_kinds.py`): modules, parameters' in-place helpers and Python values keep their calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from . import _names
from ._context import Aliases, PortPass, bare, dotted, expr
from ._kinds import Kind, in_no_grad

__all__ = ["MethodsPass", "tensor_method_call", "is_device_arg"]


def tensor_method_call(
    method: str, receiver: cst.BaseExpression, args: Sequence[cst.Arg]
) -> cst.Call:
    """`jaxmodule.Tensor.<method>(receiver, *args)`."""
    first = cst.Arg(bare(receiver))
    if args:
        first = first.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return cst.Call(func=expr(f"jaxmodule.Tensor.{method}"), args=[first, *args])


def is_device_arg(node: cst.BaseExpression, aliases: Aliases) -> bool:
    """A device spelling: 'cuda', torch.device(...), `device`, `args.device`, `x.device`."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value  # bytes for a b'' literal, never a device
        return isinstance(value, str) and value.split(":")[0] in (
            "cpu",
            "cuda",
            "mps",
            "xpu",
            "gpu",
            "tpu",
        )
    if isinstance(node, cst.Call):
        ref = aliases.resolve(node.func)
        return ref is not None and ref.path == "device"
    name = dotted(node) or ""
    last = name.split(".")[-1]
    return "device" in last or last in ("dev", "rank", "local_rank")


class MethodsPass(PortPass):
    """Rewrite tensor-method calls whose receiver may be an activation."""

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = original_node.func
        if not isinstance(func, cst.Attribute):
            return updated_node
        method = func.attr.value
        receiver = func.value
        if method not in _names.TENSOR_METHODS and _names.inplace_base(method) is None:
            return updated_node
        if self.aliases.resolve(receiver) is not None or _is_index_update(receiver):
            return updated_node
        kind = self.kinds.of(receiver)
        if kind in (Kind.MODULE, Kind.PY):
            return updated_node
        if (
            method in _names.MODULE_ALSO_HAS
            and kind is Kind.UNKNOWN
            and self.kinds.looks_like_module(receiver)
        ):
            return updated_node
        if not _is_tensor_call(method, original_node):
            return updated_node
        if _names.inplace_base(method) is not None:
            if isinstance(self.parent(original_node), cst.Expr):
                return updated_node  # a statement: the in-place pass handled it
            if kind is not Kind.PARAM and not self._inside_no_grad_param(receiver):
                self.report(
                    original_node,
                    f"in-place `{method}` on an activation used as a value: "
                    f"compute it out of place and assign the result",
                )
            return updated_node
        if method == "backward":
            return updated_node  # the training-loop pass converts or reports it
        if method in _names.NOT_PORTABLE:
            self.report(original_node, _names.NOT_PORTABLE[method])
            return updated_node
        new_receiver = cst.ensure_type(updated_node.func, cst.Attribute).value
        if method in ("cuda", "cpu") or (method == "to" and self._only_device(original_node)):
            return bare(new_receiver).with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)
        self._check_exists(original_node, method)
        call = tensor_method_call(method, new_receiver, updated_node.args)
        return call.with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        """`out.data` on an activation (old torch code) -> `jaxmodule.Tensor.detach(out)`."""
        if (
            original_node.attr.value != "data"
            or self.kinds.of(original_node.value) is not Kind.TENSOR
        ):
            return updated_node
        parent = self.parent(original_node)
        if isinstance(parent, (cst.AssignTarget, cst.AugAssign)) or (
            isinstance(parent, cst.Attribute) and _names.inplace_base(parent.attr.value)
        ):
            return updated_node
        return tensor_method_call("detach", updated_node.value, [])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ):
        """Drop assignments that only moved values to a device (`x, y = x.to(dev), y.to(dev)`)."""
        body = [
            new
            for old, new in zip(original_node.body, updated_node.body)
            if _is_self_assignment(old) or not _is_self_assignment(new)
        ]
        if len(body) == len(updated_node.body):
            return updated_node
        if not body:
            return cst.RemovalSentinel.REMOVE
        return updated_node.with_changes(body=body)

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if updated_node.body:
            return updated_node
        return updated_node.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])

    def _inside_no_grad_param(self, receiver: cst.BaseExpression) -> bool:
        return isinstance(receiver, cst.Attribute) and in_no_grad(self, receiver)

    def _only_device(self, call: cst.Call) -> bool:
        args = [
            a for a in call.args if not (a.keyword and a.keyword.value in ("non_blocking", "copy"))
        ]
        if not args:
            return False
        for a in args:
            if a.keyword is not None:
                if a.keyword.value != "device":
                    return False
            elif not is_device_arg(a.value, self.aliases):
                return False
        return True

    def _check_exists(self, node: cst.CSTNode, method: str) -> None:
        if not _names.exists("jaxmodule.Tensor"):
            self.report(
                node, f"needs jaxmodule.Tensor (for `.{method}`), which this jaxmodule lacks"
            )
        elif not _names.exists(f"jaxmodule.Tensor.{method}"):
            self.report(node, f"jaxmodule.Tensor has no `{method}` yet")


def _is_self_assignment(stmt: cst.CSTNode) -> bool:
    """`x = x` or `a, b = a, b`."""
    if not (isinstance(stmt, cst.Assign) and len(stmt.targets) == 1):
        return False
    code = cst.Module([]).code_for_node
    return code(bare(stmt.targets[0].target)).replace(" ", "") == code(bare(stmt.value)).replace(
        " ", ""
    )


def _is_index_update(receiver: cst.BaseExpression) -> bool:
    """`x.at[i]` (a JAX index-update reference): its `.add`/`.set` are not tensor methods."""
    return (
        isinstance(receiver, cst.Subscript)
        and isinstance(receiver.value, cst.Attribute)
        and receiver.value.attr.value == "at"
    )


def _is_tensor_call(method: str, call: cst.Call) -> bool:
    """Exclude same-named methods of Python values recognisable from the call itself."""
    args = call.args
    if method == "split" and (
        not args or isinstance(args[0].value, (cst.SimpleString, cst.FormattedString))
    ):
        return False  # str.split
    if method == "sort" and any(a.keyword and a.keyword.value in ("key", "reverse") for a in args):
        return False  # list.sort
    if (
        method == "add"
        and len(args) == 1
        and isinstance(args[0].value, (cst.SimpleString, cst.Tuple))
    ):
        return False  # set.add
    return True
