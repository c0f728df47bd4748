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

The legacy `register_backward_hook` is given the same arguments as a full hook (gradients with
respect to the module's inputs and outputs). torch instead reports the gradients of the module's
last autograd operation, which depend on torch's kernels (e.g. `addmm` for Linear); that
difference is documented, not emulated.
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

from ..parameter import _TensorCell
from . import _hooks

__all__ = ["forward_with_backward_hooks"]


def _is_array(x: Any) -> bool:
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
            raise RuntimeError("Backward hook returned an invalid number of grad_input, "
                               f"got {len(out)}, but expected {len(grad_input)}")
        grad_input = tuple(None if g is None or o is None else _unwrap(o) for o, g in zip(out, grad_input))
    return grad_input


def _run_pre_hooks(module: Any, hooks: list, grad_output: tuple) -> tuple:
    for hook in hooks:
        out = hook(module, grad_output)
        if out is None:
            continue
        if len(out) != len(grad_output):
            raise RuntimeError("Backward pre hook returned an invalid number of grad_output, "
                               f"got {len(out)}, but expected {len(grad_output)}")
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
        @jax.custom_vjp
        def gate(*ys: Any) -> tuple:
            return ys

        def fwd(*ys: Any) -> tuple:
            self.out_avals = tuple(_aval(y.value) for y in ys)
            return tuple(y.value for y in ys), ()

        def bwd(_: tuple, cts: tuple) -> tuple:
            avals = self.out_avals
            grad_output = tuple(_zero_like(c, a) for c, a in zip(cts, avals))
            if self.pre:
                grad_output = _host_call(lambda go: _run_pre_hooks(self.module, self.pre, go),
                                         (grad_output,), grad_output)
            no_input_grads = not self.perturbed or not any(self.perturbed)
            if no_input_grads and self.full:
                warnings.warn("Full backward hook is firing when gradients are computed with respect to "
                              "module outputs since no inputs require gradients.", stacklevel=2)
                empty = (None,) * self.n_inputs

                def host(go: tuple) -> tuple:
                    for hook in self.full:
                        res = hook(self.module, empty, go)
                        if res is not None and not (isinstance(res, tuple) and all(r is None for r in res)):
                            raise RuntimeError("Backward hook for Modules where no input requires gradient "
                                               "should always return None or None for all gradients.")
                    return ()

                _host_call(host, (grad_output,), ())
            else:
                self.grad_output = grad_output
            return grad_output

        gate.defvjp(fwd, bwd, symbolic_zeros=True)
        return gate(*leaves)


def forward_with_backward_hooks(module: Any, args: tuple, kwargs: dict) -> Any:
    """Run `module.forward(*args, **kwargs)` between the input and output gates."""
    full = list(_hooks._global_backward_hooks.values()) + list(module._backward_hooks.values())
    pre = list(_hooks._global_backward_pre_hooks.values()) + list(module._backward_pre_hooks.values())
    in_index = [i for i, a in enumerate(args) if _is_array(a)]
    session = _Session(module, full, pre, len(args), in_index)
    if in_index:
        gated = session.input_gate(tuple(_unwrap(args[i]) for i in in_index))
        args = list(args)
        for i, g in zip(in_index, gated):
            args[i] = g
        args = tuple(args)
    result = module.forward(*args, **kwargs)
    leaves, treedef = jax.tree_util.tree_flatten(result, is_leaf=lambda x: isinstance(x, _TensorCell))
    idx = [k for k, x in enumerate(leaves) if _is_array(x) and jnp.issubdtype(jnp.result_type(_unwrap(x)), jnp.inexact)]
    if not idx:
        if not isinstance(result, (jax.Array, tuple)):
            warnings.warn("For backward hooks to be called, module output should be an array or a tuple "
                          f"of arrays but received {type(result)}", stacklevel=2)
        return result
    gated = session.output_gate(tuple(_unwrap(leaves[k]) for k in idx))
    for k, g in zip(idx, gated):
        leaves[k] = g
    return jax.tree_util.tree_unflatten(treedef, leaves)
