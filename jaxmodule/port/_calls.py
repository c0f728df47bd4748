"""References into torch -> jaxmodule: `torch.cat` -> `jaxmodule.cat`, `torch.nn.Linear` ->
`jaxmodule.nn.Linear`, `torch.float32` -> `jaxmodule.float32`, `torch.Tensor` -> `jaxmodule.Tensor`.

References through a submodule alias (`nn.Linear`, `F.relu`) keep their spelling (the import pass
points the alias at jaxmodule) and are only checked. `torch.cuda.is_available()` becomes
`jax.default_backend() == "gpu"`; `device=x.device` keywords of tensor factories are dropped
(JAX places the result). What jaxmodule lacks is left as written and reported.
"""

from __future__ import annotations

import libcst as cst

from . import _names
from ._context import LibRef, PortPass, dotted, expr
from ._kinds import Kind

__all__ = ["CallsPass", "translate"]

_REASONS = {
    "cuda": "torch.cuda has no jaxmodule equivalent: JAX places arrays and synchronises itself",
    "backends": "torch.backends settings have no jaxmodule equivalent: remove them",
    "distributed": "torch.distributed is not ported: use jax.sharding / jaxmodule.distributed",
    "jit": "TorchScript is not ported: use jaxmodule.compile",
    "autograd": "torch.autograd is not ported: use jaxmodule.grad / jaxmodule.backward "
    "(custom autograd Functions: jax.custom_vjp)",
    "utils.data": "torch.utils.data has no jaxmodule equivalent: keep torch's loaders and convert "
    "each batch with jaxmodule.tensor (or batch numpy arrays)",
    "utils.checkpoint": "activation checkpointing (torch.utils.checkpoint) has no jaxmodule "
    "equivalent: wrap the function with jax.checkpoint",
}
_OVERRIDES = {"cuda.amp.GradScaler": "amp.GradScaler"}
# Parents in which `a == b` needs no parentheses.
_LOOSE_PARENTS = (
    cst.If,
    cst.IfExp,
    cst.While,
    cst.Assign,
    cst.AnnAssign,
    cst.Arg,
    cst.Return,
    cst.BooleanOperation,
    cst.Element,
    cst.Expr,
)


def translate(ref: LibRef) -> tuple[str | None, str | None]:
    """jaxmodule path for torch's `ref.path` and a reason to report (None when all is well).

    A path of None means: leave it as torch's and report the reason.
    """
    path = _OVERRIDES.get(ref.path, ref.path)
    head = path.split(".")[0]
    if _names.exists(f"jaxmodule.{path}"):
        return path, None
    if head in _names.TENSOR_FUNCTIONS | _names.TORCH_LEVEL | _names.DTYPES:
        return path, f"jaxmodule has no `{path}` yet"
    for prefix, reason in _REASONS.items():
        if path == prefix or path.startswith(prefix + "."):
            return None, reason
    return None, f"no jaxmodule equivalent of `torch.{ref.path}`"


class CallsPass(PortPass):
    """Rewrite torch references to jaxmodule ones."""

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def _chain_root(self, node: cst.CSTNode) -> cst.Name | None:
        while isinstance(node, cst.Attribute):
            node = node.value
        return node if isinstance(node, cst.Name) else None

    def _is_maximal(self, node: cst.CSTNode) -> bool:
        parent = self.parent(node)
        return not (isinstance(parent, cst.Attribute) and parent.value is node)

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        if not self._is_maximal(original_node):
            return updated_node
        ref = self.aliases.resolve(original_node)
        if ref is None or ref.lib != "torch":
            return updated_node
        if ref.path == "cuda.is_available" and isinstance(self.parent(original_node), cst.Call):
            return updated_node  # leave_Call rewrites the call
        new_path, reason = translate(ref)
        if reason is not None:
            self.report(original_node, reason)
        root = self._chain_root(original_node)
        if (
            new_path is None
            or root is None
            or self.aliases.names.get(root.value) != LibRef("torch", "")
        ):
            return updated_node  # kept, or spelled through an alias the import pass repoints
        return expr(f"jaxmodule.{new_path}").with_changes(
            lpar=updated_node.lpar, rpar=updated_node.rpar
        )

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        parent = self.parent(original_node)
        if isinstance(parent, cst.Attribute) or self.aliases.names.get(
            original_node.value
        ) != LibRef("torch", ""):
            return updated_node
        if isinstance(
            parent, (cst.Arg, cst.Param, cst.FunctionDef, cst.ClassDef, cst.AssignTarget)
        ) and not (isinstance(parent, cst.Arg) and parent.value is original_node):
            return updated_node
        return cst.Name("jaxmodule")

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        ref = self.aliases.resolve(original_node.func)
        if ref is None:
            return updated_node
        if ref.lib == "torch" and ref.path == "cuda.is_available":
            self.state.needs.add("jax")
            check = expr('jax.default_backend() == "gpu"')
            if not isinstance(self.parent(original_node), _LOOSE_PARENTS):
                check = check.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            return check
        return self._drop_activation_devices(original_node, updated_node)

    def _drop_activation_devices(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        """Remove `device=x.device` (x an activation) from a library call."""
        keep = [
            new
            for old, new in zip(original.args, updated.args)
            if not (
                old.keyword is not None
                and old.keyword.value == "device"
                and isinstance(old.value, cst.Attribute)
                and old.value.attr.value == "device"
                and self.kinds.of(old.value.value) not in (Kind.MODULE, Kind.PY)
                and dotted(old.value.value) != "self"
            )
        ]
        if len(keep) == len(updated.args):
            return updated
        if keep:
            keep[-1] = keep[-1].with_changes(comma=updated.args[-1].comma)
        return updated.with_changes(args=keep)
