"""Module backward hooks driven by JAX autodiff.

torch wraps a hooked module's tensor inputs and outputs in identity autograd functions; when the
gradient reaches the outputs it runs the backward pre-hooks (which may replace `grad_output`),
and when it reaches the inputs it runs the full backward hooks with `(grad_input, grad_output)`
(which may replace `grad_input`). Here the identities are `jax.custom_vjp` functions ("gates")
with `symbolic_zeros`, so an input that is not being differentiated gets `None` in `grad_input`,
exactly like a torch tensor without `requires_grad`.

Hooks run in the backward pass. With concrete values (eager `jaxmodule.grad`) they are called
directly; under `jax.jit`/`jaxmodule.compile` the values are tracers, so the hooks run through
`jax.experimental.io_callback` at run time: they see real arrays on every step, and what they
return replaces the gradients in the compiled program.

Legacy hooks (`register_backward_hook`, `register_module_backward_hook`) get, as in torch, the
gradients of the module's last operation (torch registers them on the output's `grad_fn`).
A rule per class that defines `forward`, registered by the layer's own file beside that forward
(`register_last_operation`), gates the operands of that operation: `grad_input` is their
cotangents in torch's layout (None where an operand needs no gradient), `grad_output` the
gradients w.r.t. the module's outputs, and what the hooks return replaces those cotangents, so
it reaches the inputs and parameters as in torch. Rules:
  - Linear: 2-D input `addmm(bias, input, weight.T)` / `mm(input, weight.T)`; other ranks a view
    of the matmul, grad_input `(grad_output.reshape(-1, out_features),)` (`(1, out)` for 1-D).
  - Conv*d / ConvTranspose*d: `(grad_input, grad_weight, grad_bias)`, grad_bias None without bias;
    with `padding_mode != "zeros"` or odd `padding="same"` the first is w.r.t. the padded input;
    unbatched input: `(grad_output[None],)` (torch's final squeeze).
  - BatchNorm / LayerNorm / GroupNorm: `(grad_input, grad_weight, grad_bias)` (GroupNorm's
    grad_output has torch's two trailing Nones); InstanceNorm: grad_output viewed as
    `(1, N * C, ...)`; Embedding: `(grad_weight,)`; PReLU: `(grad_input, grad_weight)` with the
    weight viewed as `(1, C, 1, ...)`; Dropout in training: `(grad_input, None)`.
  - Softmin (softmax of -input), Softsign (a division) and Tanhshrink (a subtraction): the
    gradients w.r.t. that operation's operands.
  - Sequential: the rule of its last child, recursively; hooks on both chain in torch's order.
  - Any other module: the gradients w.r.t. its positional inputs. That is torch's answer whenever
    the forward is one operation on its inputs (elementwise activations, Softmax, GLU, pooling,
    Flatten, `a + b`), but not for a composite forward, an operation with a non-array operand
    (`x * 2`: torch adds a None), Identity and eval-mode Dropout (torch then reports the operation
    that produced the input), or a module returning a tuple (torch uses the first output's node).
When the module also has full backward hooks or backward pre-hooks (its own or global), the last
operation is torch's hook identity: grad_input is grad_output after the pre-hooks. A forward hook
that replaces the output is not seen by the rules. torch's FutureWarning about multiple autograd
Nodes is raised while differentiating when the rule says torch's operation has operands other than
the module's inputs (parameters, padding, a previous child); torch also warns when an input is a
leaf tensor, which JAX cannot tell, so single-operation modules never warn here.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from ..._swap import swapped
from ..parameter import _TensorCell
from . import _hooks

__all__ = [
    "forward_with_backward_hooks",
    "register_last_operation",
    "gate",
    "gate_view",
    "swap_gated",
    "input_and_params_rule",
    "call_last_child",
    "is_array",
]


def is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, _TensorCell))


def _unwrap(x: Any) -> Any:
    return x._value if isinstance(x, _TensorCell) else x


def _host_call(fn: Callable, values: tuple, template: tuple) -> tuple:
    """Call `fn(*values)` with concrete arrays; through io_callback when values are traced.

    `template` gives the shapes/dtypes of what fn returns (a tuple of arrays or None).
    """
    if not any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values)):
        return fn(*values)
    shapes = jax.tree_util.tree_map(lambda t: jax.ShapeDtypeStruct(t.shape, t.dtype), template)

    def on_host(*vals: Any) -> Any:
        out = fn(*jax.tree_util.tree_map(jnp.asarray, vals))
        return jax.tree_util.tree_map(lambda o, t: np.asarray(o, dtype=t.dtype), out, template)

    return io_callback(on_host, shapes, *values)


def _run_full_hooks(module: Any, hooks: list, grad_input: tuple, grad_output: tuple) -> tuple:
    for hook in hooks:
        out = hook(module, grad_input, grad_output)
        if out is None:
            continue
        if len(out) != len(grad_input):
            raise RuntimeError(
                "Backward hook returned an invalid number of grad_input, "
                f"got {len(out)}, but expected {len(grad_input)}"
            )
        grad_input = tuple(
            None if g is None or o is None else _unwrap(o) for o, g in zip(out, grad_input)
        )
    return grad_input


def _run_pre_hooks(module: Any, hooks: list, grad_output: tuple) -> tuple:
    for hook in hooks:
        out = hook(module, grad_output)
        if out is None:
            continue
        if len(out) != len(grad_output):
            raise RuntimeError(
                "Backward pre hook returned an invalid number of grad_output, "
                f"got {len(out)}, but expected {len(grad_output)}"
            )
        grad_output = tuple(_unwrap(o) for o in out)
    return grad_output


def _aval(x: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))


def _zero_like(ct: Any, primal_aval: Any) -> Any:
    if isinstance(ct, jax.custom_derivatives.SymbolicZero):
        if not jnp.issubdtype(primal_aval.dtype, jnp.inexact):
            return np.zeros(primal_aval.shape, jax.dtypes.float0)
        return jnp.zeros(primal_aval.shape, primal_aval.dtype)
    return ct


def _output_gate(ys: tuple, on_grad_output: Callable[[tuple], tuple]) -> tuple:
    """Identity on `ys` whose backward hands the output cotangents (zeros made dense, in the
    outputs' shapes) to `on_grad_output` and propagates what it returns."""
    avals: list = []

    @jax.custom_vjp
    def gate(*ys: Any) -> tuple:
        return ys

    def fwd(*ys: Any) -> tuple:
        avals[:] = [_aval(y.value) for y in ys]
        return tuple(y.value for y in ys), ()

    def bwd(_: tuple, cts: tuple) -> tuple:
        return on_grad_output(tuple(_zero_like(c, a) for c, a in zip(cts, avals)))

    gate.defvjp(fwd, bwd, symbolic_zeros=True)
    return gate(*ys)


class _Session:
    """State shared by the input gate and output gate of one hooked call."""

    def __init__(self, module: Any, full: list, pre: list, n_inputs: int, in_index: list) -> None:
        self.module = module
        self.full = full
        self.pre = pre
        self.n_inputs = n_inputs
        self.in_index = in_index
        self.perturbed: list[bool] | None = None
        self.grad_output: tuple | None = None

    # ---- input gate: runs the full hooks ----------------------------------------------------
    def input_gate(self, arrays: tuple) -> tuple:
        @functools.partial(jax.custom_vjp)
        def gate(*xs: Any) -> tuple:
            return xs

        def fwd(*xs: Any) -> tuple:
            self.perturbed = [x.perturbed for x in xs]
            self.in_avals = tuple(_aval(x.value) for x in xs)
            return tuple(x.value for x in xs), ()

        def bwd(_: tuple, cts: tuple) -> tuple:
            avals = self.in_avals
            if self.grad_output is None or not self.full:
                return tuple(_zero_like(c, a) for c, a in zip(cts, avals))
            packed: list = [None] * self.n_inputs
            assert self.perturbed is not None  # set by fwd, which always runs before bwd
            for pos, ct, pert in zip(self.in_index, cts, self.perturbed):
                if pert and not isinstance(ct, jax.custom_derivatives.SymbolicZero):
                    packed[pos] = ct
            grad_input = tuple(packed)
            present = tuple(g for g in grad_input if g is not None)
            go = self.grad_output
            self.grad_output = None

            def host(gi_present: tuple, grad_output: tuple) -> tuple:
                it = iter(gi_present)
                gi = tuple(None if g is None else next(it) for g in grad_input)
                res = _run_full_hooks(self.module, self.full, gi, grad_output)
                return tuple(r for r in res if r is not None) if len(res) == len(gi) else gi_present

            new_present = _host_call(host, (present, go), present)
            it = iter(new_present)
            out = []
            for pos, ct, a in zip(self.in_index, cts, avals):
                out.append(next(it) if grad_input[pos] is not None else _zero_like(ct, a))
            return tuple(out)

        gate.defvjp(fwd, bwd, symbolic_zeros=True)
        return gate(*arrays)

    # ---- output gate: runs the pre-hooks (and full hooks when no input is differentiated) ----
    def output_gate(self, leaves: tuple) -> tuple:
        def on_grad_output(grad_output: tuple) -> tuple:
            if self.pre:
                grad_output = _host_call(
                    lambda go: _run_pre_hooks(self.module, self.pre, go),
                    (grad_output,),
                    grad_output,
                )
            no_input_grads = not self.perturbed or not any(self.perturbed)
            if no_input_grads and self.full:
                warnings.warn(
                    "Full backward hook is firing when gradients are computed with respect to "
                    "module outputs since no inputs require gradients.",
                    stacklevel=2,
                )
                empty = (None,) * self.n_inputs

                def host(go: tuple) -> tuple:
                    for hook in self.full:
                        res = hook(self.module, empty, go)
                        if res is not None and not (
                            isinstance(res, tuple) and all(r is None for r in res)
                        ):
                            raise RuntimeError(
                                "Backward hook for Modules where no input requires gradient "
                                "should always return None or None for all gradients."
                            )
                    return ()

                _host_call(host, (grad_output,), ())
            else:
                self.grad_output = grad_output
            return grad_output

        return _output_gate(leaves, on_grad_output)


# ---- legacy hooks (`register_backward_hook`): the gradients of the module's last operation ----
_MULTI_NODE_WARNING = (
    "Using a non-full backward hook when the forward contains multiple autograd Nodes is deprecated "
    "and will be removed in future versions. This hook will be missing some grad_input. Please use "
    "register_full_backward_hook to get the documented behavior."
)

# id(child) -> [outer sessions, warn]: set by a container rule before it calls its last child, so
# that the child's own hooked call gates its last operation for the container's hooks too.
_PENDING: dict[int, list] = {}


def _hook_name(hook: Callable) -> str:
    return getattr(hook, "__name__", type(hook).__name__)


def _run_legacy_hooks(module: Any, hooks: list, grad_input: tuple, grad_output: tuple) -> tuple:
    """Chain the hooks as torch chains a Node's hooks; validate what they return as torch does."""
    for hook in hooks:
        out = hook(module, grad_input, grad_output)
        if out is None:
            continue
        if not isinstance(out, tuple):
            raise TypeError(f"expected tuple, but hook returned '{type(out).__name__}'")
        if len(out) != len(grad_input):
            raise RuntimeError(
                f"hook '{_hook_name(hook)}' has returned an incorrect number of values "
                f"(got {len(out)}, but expected {len(grad_input)})"
            )
        new: list[jax.Array | None] = []
        for o, g in zip(out, grad_input):
            if g is None or o is None:
                new.append(None)
                continue
            o = jnp.asarray(_unwrap(o))
            if o.shape != g.shape:
                raise RuntimeError(f"hook '{_hook_name(hook)}' has changed the size of value")
            if o.dtype != g.dtype:
                raise RuntimeError(
                    f"hook '{_hook_name(hook)}' has changed the type of value "
                    f"(was {g.dtype} got {o.dtype})"
                )
            new.append(o)
        grad_input = tuple(new)
    return grad_input


def _inexact_leaves(result: Any) -> tuple[list, Any, list[int]]:
    leaves, treedef = jax.tree_util.tree_flatten(
        result, is_leaf=lambda x: isinstance(x, _TensorCell)
    )
    idx = [
        k
        for k, x in enumerate(leaves)
        if is_array(x) and jnp.issubdtype(jnp.result_type(_unwrap(x)), jnp.inexact)
    ]
    return leaves, treedef, idx


class _LegacySession:
    """One call of a module with legacy hooks: `capture` records grad_output at the module's
    outputs; `operand_gate` sits on the operands of the module's last operation and runs the hooks
    on their cotangents (in torch's layout), feeding what the hooks return back into autodiff."""

    def __init__(self, module: Any, hooks: list) -> None:
        self.module = module
        self.hooks = hooks
        self.grad_output: tuple | None = None

    def capture(self, result: Any) -> Any:
        leaves, treedef, idx = _inexact_leaves(result)
        if not idx:
            return result

        def record(grad_output: tuple) -> tuple:
            self.grad_output = grad_output
            return grad_output

        for k, g in zip(idx, _output_gate(tuple(_unwrap(leaves[k]) for k in idx), record)):
            leaves[k] = g
        return jax.tree_util.tree_unflatten(treedef, leaves)

    def operand_gate(self, operands: tuple, transforms: tuple, go_extra: int) -> tuple:
        idx = [i for i, o in enumerate(operands) if o is not None]
        if not idx:
            return operands
        state: dict = {}

        @jax.custom_vjp
        def gate(*xs: Any) -> tuple:
            return xs

        def fwd(*xs: Any) -> tuple:
            state["perturbed"] = [x.perturbed for x in xs]
            state["avals"] = tuple(_aval(x.value) for x in xs)
            return tuple(x.value for x in xs), ()

        def bwd(_: tuple, cts: tuple) -> tuple:
            zeros = tuple(_zero_like(c, a) for c, a in zip(cts, state["avals"]))
            live = [
                p and not isinstance(c, jax.custom_derivatives.SymbolicZero)
                for c, p in zip(cts, state["perturbed"])
            ]
            if not any(live) or self.grad_output is None:
                return zeros
            grad_input: list = [None] * len(operands)
            for k, (i, ct) in enumerate(zip(idx, cts)):
                if live[k]:
                    grad_input[i] = transforms[i][0](ct) if transforms[i] else ct
            present = tuple(g for g in grad_input if g is not None)
            mask = [g is not None for g in grad_input]

            def host(gi_present: tuple, grad_output: tuple) -> tuple:
                it = iter(gi_present)
                gi = tuple(next(it) if m else None for m in mask)
                go = tuple(grad_output) + (None,) * go_extra
                res = _run_legacy_hooks(self.module, self.hooks, gi, go)
                # the present gradients: exactly the non-None `gi` (see `mask`)
                return tuple(
                    jnp.zeros_like(g) if r is None else r for r, g in zip(res, gi) if g is not None
                )

            new = iter(_host_call(host, (present, self.grad_output), present))
            out = list(zeros)
            for k, i in enumerate(idx):
                if mask[i]:
                    g = next(new)
                    out[k] = transforms[i][1](g) if transforms[i] else g
            return tuple(out)

        gate.defvjp(fwd, bwd, symbolic_zeros=True)
        gated = gate(*(_unwrap(operands[i]) for i in idx))
        result = list(operands)
        for i, g in zip(idx, gated):
            result[i] = g
        return tuple(result)


def gate(
    sessions: list, operands: tuple, transforms: tuple | None = None, go_extra: int = 0
) -> tuple:
    """Gate the last operation's operands for every session. `sessions[0]` is the innermost module
    (its hooks run first, as torch runs a Node's hooks in registration order), so it is applied last."""
    transforms = transforms or (None,) * len(operands)
    for s in reversed(sessions):
        operands = s.operand_gate(operands, transforms, go_extra)
    return operands


def _gate_outputs(sessions: list, result: Any) -> Any:
    """The last operation is an identity over the outputs (torch's BackwardHookFunction)."""
    leaves, treedef, idx = _inexact_leaves(result)
    for k, g in zip(idx, gate(sessions, tuple(_unwrap(leaves[k]) for k in idx))):
        leaves[k] = g
    return jax.tree_util.tree_unflatten(treedef, leaves)


def gate_view(sessions: list, y: Any, shape: tuple) -> Any:
    """The last operation is a view of `y` with torch's `shape` (e.g. Linear on 3-D input)."""
    (g,) = gate(sessions, (y,), ((lambda c: c.reshape(shape), lambda c: c.reshape(jnp.shape(y))),))
    return g


def swap_gated(pairs: tuple) -> Any:
    """Temporarily hold gated values in parameter cells (restored unless forward wrote the cell)."""
    kept = [(c, v) for c, v in pairs if c is not None]
    return swapped([c for c, _ in kept], [v for _, v in kept], keep_written=True)


def input_and_params_rule(names: tuple, go_extra: int = 0) -> Callable:
    """The last operation takes (input, *parameters) (batch_norm, layer_norm, group_norm)."""

    def rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
        if len(args) != 1 or kwargs or not is_array(args[0]):
            return NotImplemented
        params = tuple(getattr(m, n) for n in names)
        xg, *pg = gate(sessions, (args[0], *params), go_extra=go_extra)
        with swap_gated(tuple(zip(params, pg))):
            return m.forward(xg), True

    return rule


def call_last_child(child: Any, x: Any, sessions: list) -> tuple:
    """Call a container's last child so that the container's hooks see the child's last operation."""
    full, pre, legacy = _split_hooks(child)
    if full or pre:  # the child's outputs pass through its BackwardHookFunction last
        return _gate_outputs(sessions, child(x)), True
    if legacy:
        entry = [sessions, True]
        _PENDING[id(child)] = entry
        try:
            y = child(x)
        finally:
            _PENDING.pop(id(child), None)
        return y, entry[1]
    if (
        child._forward_pre_hooks
        or child._forward_hooks
        or _hooks._global_forward_pre_hooks
        or _hooks._global_forward_hooks
    ):  # not emulated: see the module docstring
        return _gate_outputs(sessions, child(x)), True
    return _legacy_forward(child, (x,), {}, sessions)


def _fallback_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> tuple:
    """No rule: the gradients w.r.t. the module's positional inputs (torch's answer whenever the
    forward is one operation on its inputs, e.g. activations, pooling, dropout, `x * 2`, `a + b`)."""
    gated = gate(sessions, tuple(a if is_array(a) else None for a in args))
    args = tuple(a if g is None else g for a, g in zip(args, gated))
    composite = bool(m._modules) or next(iter(m.parameters()), None) is not None
    return m.forward(*args, **kwargs), composite


_LAST_OPERATION_RULES: dict[type, Callable] = {}


def register_last_operation(cls: type, rule: Callable) -> None:
    """Declare the legacy-hook rule of the modules whose `forward` is defined by `cls`.

    `rule(module, args, kwargs, sessions)` runs the forward with the operands of torch's last
    operation passed through `gate(sessions, operands, ...)` and returns `(output, warns)` (warns:
    whether torch's operation has operands other than the module's inputs), or NotImplemented
    for the fallback (the gradients w.r.t. the positional inputs). Each layer file registers its
    rule beside the forward it mirrors.
    """
    _LAST_OPERATION_RULES[cls] = rule


def _rule_for(module: Any) -> Callable | None:
    """The legacy rule of the class that defines `module.forward`, or None."""
    for cls in type(module).__mro__:
        if "forward" in cls.__dict__:
            return _LAST_OPERATION_RULES.get(cls)
    return None


def _legacy_forward(module: Any, args: tuple, kwargs: dict, sessions: list) -> tuple:
    """(output, whether torch warns about multiple autograd Nodes) with the last operation gated."""
    rule = _rule_for(module)
    out = NotImplemented if rule is None else rule(module, args, kwargs, sessions)
    return _fallback_rule(module, args, kwargs, sessions) if out is NotImplemented else out


def _split_hooks(module: Any) -> tuple[list, list, list]:
    """(full hooks, backward pre-hooks, legacy hooks) that apply to a call of `module`."""
    glob = list(_hooks._global_backward_hooks.values())
    own = list(module._backward_hooks.values())
    global_legacy = _hooks._global_is_full_backward_hook[0] is False
    own_legacy = module._is_full_backward_hook is False
    full = ([] if global_legacy else glob) + ([] if own_legacy else own)
    legacy = (glob if global_legacy else []) + (own if own_legacy else [])
    pre = list(_hooks._global_backward_pre_hooks.values()) + list(
        module._backward_pre_hooks.values()
    )
    return full, pre, legacy


def _differentiated(module: Any, args: tuple, kwargs: dict) -> bool:
    """Whether JAX is differentiating this call (torch: the output has a grad_fn)."""
    try:
        from jax._src.interpreters import ad
    except ImportError:  # pragma: no cover - JAX moved its internals: warn whenever hooked
        return True
    kinds = tuple(getattr(ad, n) for n in ("JVPTracer", "LinearizeTracer") if hasattr(ad, n))
    leaves = jax.tree_util.tree_leaves(
        (args, kwargs, [p._value for p in module.parameters()]),
        is_leaf=lambda x: isinstance(x, _TensorCell),
    )
    return any(isinstance(_unwrap(v), kinds) for v in leaves)


# ---- the hooked forward ------------------------------------------------------------------------
def _full_hooks_forward(
    module: Any, args: tuple, kwargs: dict, full: list, pre: list, forward: Callable
) -> Any:
    """`forward(*args, **kwargs)` between the input gate (full hooks) and output gate (pre-hooks)."""
    in_index = [i for i, a in enumerate(args) if is_array(a)]
    session = _Session(module, full, pre, len(args), in_index)
    if in_index:
        gated = session.input_gate(tuple(_unwrap(args[i]) for i in in_index))
        arg_list = list(args)
        for i, g in zip(in_index, gated):
            arg_list[i] = g
        args = tuple(arg_list)
    result = forward(*args, **kwargs)
    leaves, treedef, idx = _inexact_leaves(result)
    if not idx:
        if not isinstance(result, (jax.Array, tuple)):
            warnings.warn(
                "For backward hooks to be called, module output should be an array or a tuple "
                f"of arrays but received {type(result)}",
                stacklevel=3,
            )
        return result
    gated = session.output_gate(tuple(_unwrap(leaves[k]) for k in idx))
    for k, g in zip(idx, gated):
        leaves[k] = g
    return jax.tree_util.tree_unflatten(treedef, leaves)


def forward_with_backward_hooks(module: Any, args: tuple, kwargs: dict) -> Any:
    """Run `module.forward(*args, **kwargs)` with the gates its backward hooks need."""
    full, pre, legacy = _split_hooks(module)
    entry = _PENDING.pop(id(module), None)
    sessions = ([_LegacySession(module, legacy)] if legacy else []) + (entry[0] if entry else [])
    if full or pre:

        def forward(*a: Any, **k: Any) -> Any:
            y = module.forward(*a, **k)
            # The legacy hooks sit on torch's BackwardHookFunction: their grad_input is what the
            # pre-hooks returned, their grad_output what reached the module's outputs.
            return _gate_outputs(sessions, y) if sessions else y

        result, warn = _full_hooks_forward(module, args, kwargs, full, pre, forward), True
    else:
        result, warn = _legacy_forward(module, args, kwargs, sessions)
    if legacy:
        result = sessions[0].capture(result)
    if entry is not None:
        entry[1] = warn
    if legacy and warn and _differentiated(module, args, kwargs):
        warnings.warn(_MULTI_NODE_WARNING, FutureWarning, stacklevel=4)
    return result
