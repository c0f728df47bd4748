"""Training loops: `loss = f(...); loss.backward()` -> `loss = jaxmodule.backward(lambda: f(...))`.

For each `E.backward()` statement the pass finds, in the same block, the statements that compute
`E` from the model (the *forward slice*): walking back from `.backward()`, a statement joins the
slice when it assigns a name the slice needs and it may run the model (it calls a module, passes
one, reads a parameter, or uses a value an earlier such statement produced). Statements that only
prepare data (`data, target = get_batch(...)`, `hidden = repackage_hidden(hidden)`) stay where
they are and are read by the slice as constants.

* One expression (intermediates used once and nowhere else): the slice is inlined,
  `loss = jaxmodule.backward(lambda: F.nll_loss(model(data), target))`.
* Otherwise the slice becomes a local function whose extra results, the intermediates read
  after it (`output`, a recurrent `hidden`), come back as `has_aux=True` outputs:
  `loss, output = jaxmodule.backward(loss_fn, has_aux=True)`. Names the slice reads before it
  rebinds them become the function's arguments.
* `(loss / accum).backward()`, `scaler.scale(loss).backward()`: the function returns that
  expression, and `loss` too when it is used later.

What cannot be converted (the loss accumulated in a loop, computed in another block, or an
intermediate used between the forward pass and `.backward()`) is left and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.metadata import Assignment, BuiltinAssignment

from . import _names
from ._context import (
    PortPass,
    assign_target,
    assigned_in_order,
    bare,
    expr,
    name_counts,
    names_assigned,
    names_read,
    parenthesize,
)
from ._kinds import Kind

__all__ = ["TrainingPass"]

_DROPPED_KWARGS = ("retain_graph",)
_KEPT_KWARGS = ("inputs",)
# A statement with its `leading_lines` (libcst's BaseStatement has exactly these two kinds).
_Statement = cst.SimpleStatementLine | cst.BaseCompoundStatement


@dataclass
class _Plan:
    """How one `.backward()` statement is rewritten."""

    backward: int  # index of the `.backward()` statement
    included: list[int]  # indices of the forward slice, in order
    anchor: int  # where the new statements go (the backward or the last slice line)
    new: list[_Statement]


class _Unconvertible(Exception):
    pass


class TrainingPass(PortPass):
    """Fold each `.backward()` and the forward computation before it into `jaxmodule.backward`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._runs_model: dict[int, bool] = {}
        self._taken: dict[int, set[str]] = {}  # scope node -> names in use there

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated_node.with_changes(
            body=self._block(original_node, list(original_node.body), list(updated_node.body))
        )

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(
            body=self._block(original_node, list(original_node.body), list(updated_node.body))
        )

    # ---- one block ------------------------------------------------------------------------------
    def _block(self, block: cst.CSTNode, old: list, new: list) -> list:
        plans: list[_Plan] = []
        used: set[int] = set()
        for b, stmt in enumerate(old):
            call = _backward_call(stmt)
            if call is None or self.aliases.resolve(call.func) is not None:
                continue  # not `.backward()`, or already `jaxmodule.backward(...)`
            try:
                plan = self._plan(block, old, new, b, call)
            except _Unconvertible as e:
                self.report(stmt, str(e))
                continue
            if used & {b, *plan.included}:
                self.report(
                    stmt,
                    "two `.backward()` calls share one forward computation: convert them by hand",
                )
                continue
            used |= {b, *plan.included}
            plans.append(plan)
        if not plans:
            return new
        out: list = []
        replace = {p.anchor: p for p in plans}
        dropped = {i for p in plans for i in [p.backward, *p.included] if i != p.anchor}
        backwards = {p.backward for p in plans}
        carry: list[cst.EmptyLine] = []
        for i, stmt in enumerate(new):
            if i in replace:
                stmts = list(replace[i].new)
                if i in backwards and replace[i].included:  # keep the comments of `.backward()`
                    extra = _leading_comments(stmt) + _trailing_comment(stmt)
                    stmts[-1] = stmts[-1].with_changes(
                        leading_lines=[*stmts[-1].leading_lines, *extra]
                    )
                out.extend(stmts)
            elif i in dropped:
                if i in backwards:
                    carry.extend(_leading_comments(stmt) + _trailing_comment(stmt))
            else:
                if carry:
                    stmt = stmt.with_changes(leading_lines=[*carry, *stmt.leading_lines])
                    carry = []
                out.append(stmt)
        return out

    def _plan(self, block: cst.CSTNode, old: list, new: list, b: int, call: cst.Call) -> _Plan:
        kwargs = self._backward_kwargs(call)
        loss_expr = _backward_loss(old[b])
        diff = self._diff_flags(old[:b])
        needed = names_read(loss_expr)
        included: list[int] = []
        for k in range(b - 1, -1, -1):
            assigned = names_assigned(old[k])
            if not assigned & needed:
                continue
            if not diff[k]:
                needed -= assigned
                continue
            self._check_movable(old[k])
            included.insert(0, k)
            needed = (needed - _definite(old[k])) | _free_reads(old[k])
        if not included and self._touches_model(loss_expr):
            fn = cst.Lambda(params=cst.Parameters(), body=bare(_backward_loss(new[b])))
            return _Plan(b, [], b, [new[b].with_changes(body=[cst.Expr(_jm_backward(fn, kwargs))])])
        loss_names = names_read(loss_expr) & set().union(
            *[names_assigned(old[k]) for k in included]
        )
        if not included or not loss_names:
            raise _Unconvertible(
                "`.backward()` on a loss not computed in this block (a function "
                "argument, an outer block or a previous loop iteration): compute it "
                "in a function and call `jaxmodule.backward(fn)`"
            )
        anchor = self._anchor(old, included, b)
        outside = self._reads_outside(block, [old[k] for k in included] + [old[b]])
        return _Plan(
            b,
            included,
            anchor,
            self._emit(block, old, new, included, b, loss_expr, kwargs, outside),
        )

    def _backward_kwargs(self, call: cst.Call) -> list[cst.Arg]:
        kept = []
        for arg in call.args:
            name = arg.keyword.value if arg.keyword is not None else None
            if name in _DROPPED_KWARGS:
                continue
            if name in _KEPT_KWARGS:
                kept.append(arg)
                continue
            raise _Unconvertible(
                f"`.backward({name or 'gradient'}=...)` is not ported: use "
                f"jaxmodule.grad / jax.vjp for this gradient"
            )
        return kept

    # ---- which statements run the model -------------------------------------------------------
    def _diff_flags(self, stmts: list) -> list[bool]:
        flags: list[bool] = []
        produced: set[str] = set()
        for stmt in stmts:
            flag = bool(names_read(stmt) & produced) or self._touches_model(stmt)
            if flag:
                produced |= names_assigned(stmt)
            flags.append(flag)
        return flags

    def _touches_model(self, node: cst.CSTNode) -> bool:
        found = False
        owner = self

        class _Find(cst.CSTVisitor):
            def visit_Call(self, n: cst.Call) -> bool:
                nonlocal found
                found = found or owner._may_run_model(n)
                return not found

            def visit_Attribute(self, n: cst.Attribute) -> bool:
                nonlocal found
                found = found or owner.kinds.of(n) is Kind.PARAM
                return not found

            def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
                return False

        node.visit(_Find())
        return found

    def _may_run_model(self, call: cst.Call) -> bool:
        if any(self.kinds.of(a.value) in (Kind.MODULE, Kind.PARAM) for a in call.args):
            return True
        func = call.func
        if self.aliases.resolve(func) is not None:
            return False
        if isinstance(func, cst.Attribute):
            receiver = self.kinds.of(func.value)
            if receiver in (Kind.MODULE, Kind.PARAM):
                return True
            if receiver is Kind.PY or func.attr.value in _names.TENSOR_METHODS:
                return False
            return True
        if isinstance(func, cst.Name):
            kind = self.kinds.of(func)
            if kind is Kind.MODULE:
                return True
            if func.value in self.kinds.classes:
                return False
            if kind is Kind.PY and self._is_builtin(func):
                return False
            fn = self._local_function(func)
            return True if fn is None else self._function_runs_model(fn)
        return True

    def _is_builtin(self, name: cst.Name) -> bool:
        scope = self.kinds.scopes.get(name)
        bound = list(scope[name.value]) if scope is not None else []
        return bool(bound) and all(isinstance(a, BuiltinAssignment) for a in bound)

    def _local_function(self, name: cst.Name) -> cst.FunctionDef | None:
        scope = self.kinds.scopes.get(name)
        bound = list(scope[name.value]) if scope is not None else []
        if (
            len(bound) == 1
            and isinstance(bound[0], Assignment)
            and isinstance(bound[0].node, cst.FunctionDef)
        ):
            return bound[0].node
        return None

    def _function_runs_model(self, fn: cst.FunctionDef) -> bool:
        key = id(fn)
        if key not in self._runs_model:
            self._runs_model[key] = False  # recursion: assume not while deciding
            self._runs_model[key] = self._touches_model(fn.body)
        return self._runs_model[key]

    # ---- checks ---------------------------------------------------------------------------------
    def _check_movable(self, stmt: cst.BaseStatement) -> None:
        if isinstance(stmt, (cst.For, cst.While)):
            raise _Unconvertible(
                "the loss is accumulated in a loop before `.backward()`: move the "
                "loop into a function and call `jaxmodule.backward(fn)`"
            )
        if isinstance(stmt, (cst.If, cst.With)):
            for inner in _inner_statements(stmt):
                if isinstance(inner, (cst.For, cst.While)) or not _is_assignment_line(inner):
                    raise _Unconvertible(
                        "the loss is computed in an `if`/`with` block that does "
                        "more than assign values: compute it in a function and "
                        "call `jaxmodule.backward(fn)`"
                    )
        elif not isinstance(stmt, cst.SimpleStatementLine):
            raise _Unconvertible(
                "the loss is computed in a compound statement: compute it in a "
                "function and call `jaxmodule.backward(fn)`"
            )

    def _anchor(self, old: list, included: list[int], b: int) -> int:
        """Where `jaxmodule.backward(...)` goes: at the `.backward()` line, or at the slice's
        last line when statements before `.backward()` read the loss (`loss.item()`) and none of
        them touches gradients (`zero_grad`, `step`, `.grad`, the model)."""
        readers: list[int] = []
        for k in range(included[0], b):
            if k in included:
                continue
            before = [old[j] for j in included if j < k]
            made = set().union(*[names_assigned(s) for s in before]) if before else set()
            read = set().union(*[_free_reads(s) for s in before]) if before else set()
            if names_assigned(old[k]) & read:
                raise _Unconvertible(
                    "a statement inside the forward pass rebinds a value it reads: "
                    "move it before the forward pass"
                )
            if names_read(old[k]) & made:
                readers.append(k)
        if not readers:
            return b
        last = included[-1]
        if readers[0] > last and not any(self._touches_grads(old[k]) for k in range(last + 1, b)):
            return last
        raise _Unconvertible(
            "a statement between the forward pass and `.backward()` uses its "
            "intermediate values: move it after `.backward()`"
        )

    def _touches_grads(self, stmt: cst.CSTNode) -> bool:
        """Reads or changes gradients or parameters: `.grad`, `zero_grad`, `step`, an in-place
        method, or a method of a module."""
        kinds = self.kinds

        class _Find(cst.CSTVisitor):
            found = False

            def visit_Attribute(self, n: cst.Attribute) -> None:
                name = n.attr.value
                if (
                    name in ("grad", "zero_grad", "step", "backward")
                    or (name.endswith("_") and not name.endswith("__"))
                    or kinds.of(n.value) is Kind.MODULE
                ):
                    _Find.found = True

        stmt.visit(_Find())
        return _Find.found

    def _scope(self, block: cst.CSTNode) -> cst.CSTNode:
        """The function (or file) a block belongs to."""
        if isinstance(block, cst.Module):
            return block
        for parent in self.ancestors(block):
            if isinstance(parent, (cst.FunctionDef, cst.Module)):
                return parent
        return block

    def _reads_outside(self, block: cst.CSTNode, moved: list) -> set[str]:
        """Names read in the enclosing function (or file) outside the moved statements."""
        scope = self._scope(block)
        counts = name_counts(scope.body if isinstance(scope, cst.FunctionDef) else scope)
        for stmt in moved:
            counts.subtract(name_counts(stmt))
        return {n for n, c in counts.items() if c > 0}

    # ---- code generation ------------------------------------------------------------------------
    def _emit(
        self,
        block: cst.CSTNode,
        old: list,
        new: list,
        included: list[int],
        b: int,
        loss_expr: cst.BaseExpression,
        kwargs: list[cst.Arg],
        outside: set[str],
    ) -> list:
        loss_name = loss_expr.value if isinstance(loss_expr, cst.Name) else None
        made = assigned_in_order(cst.IndentedBlock(body=[old[k] for k in included]))
        params = _params([old[k] for k in included], set(made))
        # read afterwards, or carried to the next iteration of a loop (a parameter it rebinds)
        aux = [n for n in made if (n in outside or n in params) and n != loss_name]
        new_loss = _backward_loss(new[b])
        first = new[included[0]]
        if not aux and not params and self._inlinable(old, included, loss_expr, outside):
            inlined = self._inline([new[k] for k in included], new_loss, loss_name)
            call = _jm_backward(cst.Lambda(params=cst.Parameters(), body=inlined), kwargs)
            small = (
                cst.Assign([cst.AssignTarget(cst.Name(loss_name))], call)
                if loss_name
                else cst.Expr(call)
            )
            line = new[included[-1]].with_changes(body=[small])
            leading = [
                *first.leading_lines,
                *[c for k in included[1:] for c in _leading_comments(new[k])],
                *[c for k in included[:-1] for c in _trailing_comment(new[k])],
            ]
            return [line.with_changes(leading_lines=leading)]
        fn_name = self._fresh_name(self._scope(block))
        ret_value: cst.BaseExpression = bare(new_loss)
        if aux:
            ret_value = cst.Tuple(
                [cst.Element(ret_value), cst.Element(_names_expr(aux))], lpar=[], rpar=[]
            )
        body = [new[k] for k in included]
        body[0] = body[0].with_changes(leading_lines=[])
        body.append(cst.SimpleStatementLine([cst.Return(ret_value)]))
        fn = cst.FunctionDef(
            name=cst.Name(fn_name),
            params=cst.Parameters([cst.Param(cst.Name(p)) for p in params]),
            body=cst.IndentedBlock(body),
            leading_lines=first.leading_lines,
        )
        ref = cst.Name(fn_name) if not params else expr(f"lambda: {fn_name}({', '.join(params)})")
        call = _jm_backward(ref, [*kwargs, *([_kwarg("has_aux", "True")] if aux else [])])
        target: str | None
        if loss_name is not None:
            target = f"{loss_name}, {_names_code(aux)}" if aux else loss_name
        else:
            target = f"_, {_names_code(aux)}" if aux else None
        small = (
            cst.Expr(call) if target is None else cst.Assign([assign_target(expr(target))], call)
        )
        return [fn, cst.SimpleStatementLine([small])]

    def _inlinable(
        self, old: list, included: list[int], loss_expr: cst.BaseExpression, outside: set[str]
    ) -> bool:
        stmts = [old[k] for k in included]
        targets = [t for t in map(_single_name_assign, stmts) if t is not None]
        if len(targets) != len(stmts):
            return False
        if isinstance(loss_expr, cst.Name):
            if loss_expr.value != targets[-1]:
                return False
            uses = [s.body[0].value for s in stmts]
            inline = targets[:-1]
        else:
            if set(targets) & outside:
                return False
            uses = [s.body[0].value for s in stmts] + [loss_expr]
            inline = targets
        if len(set(targets)) != len(targets):
            return False
        for i, name in enumerate(inline):
            later = sum(name_counts(u)[name] for u in uses[i + 1 :])
            if later != 1 or name_counts(uses[i])[name]:
                return False
        return True

    def _inline(
        self, stmts: list, loss_expr: cst.BaseExpression, loss_name: str | None
    ) -> cst.BaseExpression:
        values = {
            name: s.body[0].value for s in stmts if (name := _single_name_assign(s)) is not None
        }
        result = values.pop(loss_name) if loss_name is not None else loss_expr
        for _ in range(len(values) + 1):
            result = result.visit(_Substitute(values))
        return bare(result)

    def _fresh_name(self, scope: cst.CSTNode) -> str:
        taken = self._taken.setdefault(
            id(scope),
            set(name_counts(scope))
            | names_assigned(scope)
            | set(name_counts(self.wrapper.module)) - _local_names(scope),
        )
        for name in ("loss_fn", "compute_loss", *(f"loss_fn_{i}" for i in range(2, 100))):
            if name not in taken:
                taken.add(name)
                return name
        raise _Unconvertible("no free name for the loss function")


class _Substitute(cst.CSTTransformer):
    """Replace names by expressions, parenthesised where an operator binds them."""

    def __init__(self, values: dict[str, cst.BaseExpression]) -> None:
        super().__init__()
        self.values = values
        self.inserted: set[int] = set()

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return True

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.Attribute:
        return updated_node.with_changes(attr=original_node.attr)

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        value = self.values.get(original_node.value)
        if value is None:
            return updated_node
        node = parenthesize(value)
        self.inserted.add(id(node))
        return node

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
        if id(updated_node.value) in self.inserted:
            updated_node = updated_node.with_changes(value=bare(updated_node.value))
        return updated_node.with_changes(keyword=original_node.keyword)


def _local_names(scope: cst.CSTNode) -> set[str]:
    """Names bound inside a function (they cannot clash with other functions' names)."""
    return names_assigned(scope.body) if isinstance(scope, cst.FunctionDef) else set()


def _backward_call(stmt: cst.CSTNode) -> cst.Call | None:
    """The `E.backward(...)` call when `stmt` is exactly that statement."""
    if not (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
    ):
        return None
    call = stmt.body[0].value
    if (
        isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value == "backward"
    ):
        return call
    return None


def _backward_loss(stmt: cst.CSTNode) -> cst.BaseExpression:
    """`E` of the statement `E.backward(...)` (one `_backward_call` accepts)."""
    call = _backward_call(stmt)
    if call is None:
        raise ValueError(
            f"_backward_loss: expected an `E.backward(...)` statement, got {type(stmt).__name__}"
        )
    return cst.ensure_type(call.func, cst.Attribute).value


def _branches(stmt: cst.CSTNode) -> list[list]:
    """The statement lists an `if` (every branch) or `with` runs; [[stmt]] for a simple line."""
    if isinstance(stmt, cst.With):
        return [list(stmt.body.body)]
    if isinstance(stmt, cst.If):
        out = [list(stmt.body.body)]
        orelse = stmt.orelse
        if orelse is None:
            out.append([])
        elif isinstance(orelse, cst.If):
            out.extend(_branches(orelse))
        else:
            out.append(list(orelse.body.body))
        return out
    return [[stmt]]


def _definite(stmt: cst.CSTNode) -> set[str]:
    """Names a statement always binds (every branch of an `if`; plain assignments only)."""
    branches = _branches(stmt)
    if branches == [[stmt]]:
        ok = isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Assign) for s in stmt.body
        )
        return names_assigned(stmt) if ok else set()
    sets = [set().union(*[_definite(s) for s in branch]) for branch in branches]
    return set.intersection(*sets) if sets else set()


def _free_reads(stmt: cst.CSTNode) -> set[str]:
    """Names a statement reads before binding them itself."""
    branches = _branches(stmt)
    if branches == [[stmt]]:
        return names_read(stmt)
    free: set[str] = set()
    if isinstance(stmt, cst.If):
        free |= names_read(stmt.test)
    for branch in branches:
        bound: set[str] = set()
        for inner in branch:
            free |= _free_reads(inner) - bound
            bound |= _definite(inner)
    if isinstance(stmt, cst.With):
        for item in stmt.items:
            free |= names_read(item.item)
    return free


def _single_name_assign(stmt: cst.CSTNode) -> str | None:
    if (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Assign)
    ):
        targets = stmt.body[0].targets
        if len(targets) == 1 and isinstance(targets[0].target, cst.Name):
            return targets[0].target.value
    return None


def _is_assignment_line(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Pass)) for s in stmt.body
    )


def _inner_statements(stmt: cst.If | cst.With) -> list:
    out = []
    blocks = [stmt.body]
    orelse = getattr(stmt, "orelse", None)
    while orelse is not None:
        blocks.append(orelse.body)
        orelse = getattr(orelse, "orelse", None)
    for block in blocks:
        for inner in block.body:
            if isinstance(inner, (cst.If, cst.With)):
                out.extend(_inner_statements(inner))
            else:
                out.append(inner)
    return out


def _params(stmts: list, made: set[str]) -> list[str]:
    """Names the statements read before they rebind them (they become function arguments)."""
    params: list[str] = []
    bound: set[str] = set()
    for stmt in stmts:
        for name in sorted(_free_reads(stmt) & made - bound):
            if name not in params:
                params.append(name)
        bound |= names_assigned(stmt)
    return params


def _leading_comments(stmt: cst.CSTNode) -> list[cst.EmptyLine]:
    return [line for line in getattr(stmt, "leading_lines", ()) if line.comment is not None]


def _trailing_comment(stmt: cst.CSTNode) -> list[cst.EmptyLine]:
    trailing = getattr(stmt, "trailing_whitespace", None)
    if trailing is not None and trailing.comment is not None:
        return [cst.EmptyLine(comment=trailing.comment)]
    return []


def _names_code(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"({', '.join(names)})"


def _names_expr(names: list[str]) -> cst.BaseExpression:
    return expr(_names_code(names))


def _kwarg(name: str, value: str) -> cst.Arg:
    return cst.Arg(
        expr(value),
        keyword=cst.Name(name),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )


def _jm_backward(fn: cst.BaseExpression, kwargs: list[cst.Arg]) -> cst.Call:
    args = [cst.Arg(fn), *[a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in kwargs]]
    return cst.Call(expr("jaxmodule.backward"), args)
