"""Gradients over modules: `grad`, `value_and_grad`, and the torch-style `backward`.

JAX differentiates functions of arrays; jaxmodule's modules hold their arrays in cells. So each
function here temporarily puts JAX's tracers into the trainable cells (parameters with
`requires_grad=True`), calls the user's function, reads what it wrote into the other cells
(buffers such as BatchNorm statistics, the generator key) as auxiliary outputs, and restores the
parameters. Buffers, integer buffers and frozen parameters are constants. Works eagerly and inside
`jax.jit` / `jaxmodule.compile`.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
from jax._src.core import EvalTrace, trace_ctx  # whether the call is eager (no public API)

from . import _replay
from ._random import default_generator
from ._swap import Recording, recording, swapped
from .nn.functional._eager_jit import ENABLED, eager_trace
from .nn.modules._pytree import module_cells
from .nn.modules.module import Module
from .nn.parameter import Parameter

__all__ = ["grad", "value_and_grad", "backward"]


def _side_cells(modules: Sequence[Module], exclude: set[int]) -> list:
    """Every cell the function may write besides the differentiated ones (buffers, frozen
    parameters, the global generator), each once."""
    out, seen = [], set(exclude)
    for m in modules:
        for c in module_cells(m)[0]:
            if id(c) not in seen:
                seen.add(id(c))
                out.append(c)
    out.append(default_generator)
    return out


def _own_writes(cells: list, values: list) -> list:
    """For each differentiated cell, the value the function wrote into it (gradient stopped), or
    None. A written cell (e.g. Embedding's max_norm renormalisation) keeps the written value, as
    in torch; its gradient is w.r.t. the value on entry."""
    return [
        None if c._value is v else jax.lax.stop_gradient(c._value) for c, v in zip(cells, values)
    ]


def _commit(side: list, side_values: list, cells: list, written: list) -> None:
    """Give the side cells their new concrete values and the written differentiated cells theirs."""
    for c, v in zip(side, side_values):
        c._value = v
    for c, v in zip(cells, written):
        if v is not None:
            c._value = v


def _differentiate(
    fn: Callable,
    diff_cells: list,
    side_cells: list,
    plain: dict[int, Any],
    args: tuple,
    kwargs: dict,
    has_aux: bool,
) -> tuple[Any, Any, list, dict]:
    """Run fn with JAX's tracers in `diff_cells` and in the positional arguments `plain`
    (index -> value). Returns (value, aux, cell grads, plain grads)."""
    originals = [c._value for c in diff_cells]
    call_args = list(args)

    def inner(values: list, plain_values: dict) -> tuple:
        for c, v in zip(diff_cells, values):
            c._value = v
        for n, v in plain_values.items():
            call_args[n] = v
        out = fn(*call_args, **kwargs)
        value, aux = out if has_aux else (out, None)
        return value, (aux, [c._value for c in side_cells], _own_writes(diff_cells, values))

    # `inner` puts tracers into the cells; everything is restored on the way out (also when fn
    # raises), then the side cells receive their new concrete values
    with swapped([*diff_cells, *side_cells], [*originals, *(c._value for c in side_cells)]):
        (value, (aux, side_values, written)), (g_cells, g_plain) = jax.value_and_grad(
            inner, argnums=(0, 1), has_aux=True
        )(originals, plain)
    _commit(side_cells, side_values, diff_cells, written)
    return value, aux, g_cells, g_plain


def value_and_grad(
    fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable:
    """Like `jax.value_and_grad`, but a Module argument is differentiated w.r.t. its trainable
    parameters only.

    For a Module argument the gradient is a module of the same class whose trainable parameters
    hold their gradients and whose other cells (buffers, frozen parameters) hold None, as torch
    leaves `.grad` None for them. Other arguments are differentiated as JAX would. State the
    function writes into buffers (BatchNorm statistics) and the generator key persists.

    >>> import jax.numpy as jnp, jaxmodule
    >>> from jaxmodule import nn
    >>> model = nn.Linear(3, 1)
    >>> loss, grads = jaxmodule.value_and_grad(lambda m, x: m(x).sum())(model, jnp.ones((2, 3)))
    >>> grads.weight.shape, grads.bias.item()
    ((1, 3), 2.0)
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(n >= len(args) for n in nums):
            raise TypeError(
                f"value_and_grad: argnums={argnums} but the function was called with "
                f"{len(args)} positional arguments"
            )
        diff_cells: list = []
        plain: dict[int, Any] = {}
        layout: list = []
        for n in nums:
            a = args[n]
            if isinstance(a, Module):
                cells, _ = module_cells(a)
                mask = [isinstance(c, Parameter) and c.requires_grad for c in cells]
                layout.append((n, mask, len(diff_cells)))
                diff_cells.extend(c for c, m in zip(cells, mask) if m)
            else:
                plain[n] = a
                layout.append((n, None, 0))
        modules = [a for a in args if isinstance(a, Module)]
        side = _side_cells(modules, {id(c) for c in diff_cells})
        value, aux, g_cells, g_plain = _differentiate(
            fn, diff_cells, side, plain, args, kwargs, has_aux
        )
        out = []
        for n, mask, start in layout:
            if mask is None:
                out.append(g_plain[n])
                continue
            it = iter(g_cells[start:])
            leaves = [next(it) if m else None for m in mask]
            out.append(jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(args[n]), leaves))
        result = out[0] if isinstance(argnums, int) else tuple(out)
        return ((value, aux), result) if has_aux else (value, result)

    return wrapper


def grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """Like `jax.grad`, with `value_and_grad`'s handling of Module arguments.

    >>> import jax.numpy as jnp, jaxmodule
    >>> from jaxmodule import nn
    >>> g = jaxmodule.grad(lambda m: m(jnp.ones((1, 2))).sum())(nn.Linear(2, 2))
    >>> g.bias.tolist()
    [1.0, 1.0]
    """
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = out
            return g, aux
        return out[1]

    return wrapper


def _read_parameters(fn: Callable, args: tuple, kwargs: dict) -> tuple[list, list]:
    """The trainable parameters `fn(*args, **kwargs)` reads, and the other cells it writes, found
    by tracing it once abstractly (`jax.eval_shape`) with cell reads recorded. Every cell is
    restored afterwards."""

    def probe(key: Any) -> Any:
        default_generator._value = key  # traced, so random draws (dropout) are allowed
        return fn(*args, **kwargs)

    with recording(every=True) as rec:
        try:
            jax.eval_shape(probe, default_generator._value)
        finally:
            for c, old in rec.written.values():
                c._value = old
    params = [c for c in rec.touched.values() if isinstance(c, Parameter) and c.requires_grad]
    taken = {id(p) for p in params}
    side = [c for c, _ in rec.written.values() if id(c) not in taken]
    if not any(c is default_generator for c in side):
        side.append(default_generator)
    return params, side


# Zero-argument `backward`, eagerly: the trainable parameters each loss function (keyed by its
# code object, so a lambda written in a loop is one key) read on its last call. The next call
# differentiates w.r.t. them in one pass while recording reads and writes, and keeps the result
# only if the loss read no other trainable parameter; otherwise it runs the two-pass form (probe,
# then differentiate). Weak references: the table keeps no parameter alive. Bounded, oldest out.
_LAST_READ: OrderedDict[Any, list[weakref.ref]] = OrderedDict()
_LAST_READ_SIZE = 256


def _code_key(fn: Callable) -> Any:
    code = getattr(fn, "__code__", None)
    return code if code is not None else getattr(getattr(fn, "__func__", None), "__code__", None)


def _remember(key: Any, params: list) -> None:
    if key is None:
        return
    _LAST_READ[key] = [weakref.ref(p) for p in params]
    _LAST_READ.move_to_end(key)
    while len(_LAST_READ) > _LAST_READ_SIZE:
        _LAST_READ.popitem(last=False)


def _read_params(rec: Recording) -> list:
    """The trainable parameters from outside the block that a recording saw read."""
    return [
        c
        for i, c in rec.touched.items()
        if isinstance(c, Parameter) and c.requires_grad and i not in rec.created
    ]


def _backward_one_pass(
    fn: Callable,
    guess: list,
    args: tuple,
    kwargs: dict,
    has_aux: bool,
    replay: Any = None,
    discover: bool = False,
) -> tuple[Any, Any, list, list] | None:
    """Differentiate `fn` w.r.t. the parameters `guess`, recording what it reads and writes.

    Returns (value, aux, parameters read, their gradients) with the written cells updated, or
    None, with every cell as it was, when `fn` read a trainable parameter outside `guess`. With a
    `replay` key (an eager call), the loss is traced and its value and gradient run as a cached
    program (`_replay.py`); if that is not possible, eager autodiff runs instead. `discover`
    (with `replay`, `guess` empty: a loss function's first call): the parameters the trace read
    are differentiated as the jaxpr's constants they became, so even the first call runs the
    loss's Python once; None when that cannot be done (then the two-pass form runs)."""
    diff_ids = {id(p) for p in guess}
    originals = [p._value for p in guess]
    found: dict[str, Any] = {}

    def inner(values: list) -> tuple:
        for c, v in zip(guess, values):
            c._value = v
        with recording(every=True) as rec:
            found["rec"] = rec
            out = fn(*args, **kwargs)
            found["read"] = _read_params(rec)
        value, aux = out if has_aux else (out, None)
        side = [c for i, (c, _) in rec.written.items() if i not in diff_ids]
        found["side"] = side
        return value, (aux, [c._value for c in side], _own_writes(guess, values))

    def attempt(run: Callable[[], tuple]) -> tuple:
        try:
            return run()
        finally:  # every cell as on entry; the new values are committed below once accepted
            rec = found.get("rec")
            for i, (c, old) in rec.written.items() if rec is not None else ():
                if i not in diff_ids:
                    c._value = old
            for c, v in zip(guess, originals):
                c._value = v

    def read_constants(consts: list) -> tuple[int, ...]:
        """The positions of the read parameters' arrays among the trace's constants."""
        where: dict[int, int] = {}
        for i, c in enumerate(consts):
            where.setdefault(id(c), i)
        arrays = [id(p._value) for p in found["read"]]
        if len(set(arrays)) != len(arrays):  # two parameters holding one array
            raise _replay.Unsupported("parameters share an array")
        found["wrt"] = [p for p in found["read"] if id(p._value) in where]
        return tuple(where[id(p._value)] for p in found["wrt"])

    out = None
    if replay is not None:
        try:
            out = attempt(
                lambda: _replay.value_and_grad(
                    inner, originals, replay, read_constants if discover else None
                )
            )
        except _replay.Unsupported:
            found.clear()
    if out is None:
        if discover:
            return None
        out = attempt(lambda: jax.value_and_grad(inner, has_aux=True)(originals))
    (value, (aux, side_values, written)), grads = out
    read = found["read"]
    if discover:  # every read parameter: those used in arithmetic, then the others (zeros)
        _commit(found["side"], side_values, guess, written)
        used = found["wrt"]
        unused = [p for p in read if all(p is not q for q in used)]
        zeros = [jax.numpy.zeros_like(p._value) for p in unused]
        return value, aux, used + unused, list(grads) + zeros
    if any(id(p) not in diff_ids for p in read):
        return None
    _commit(found["side"], side_values, guess, written)
    read_ids = {id(p) for p in read}
    kept = [(p, g) for p, g in zip(guess, grads) if id(p) in read_ids]
    return value, aux, [p for p, _ in kept], [g for _, g in kept]


def backward(
    fn: Callable,
    *args: Any,
    inputs: Iterable[Parameter] | None = None,
    has_aux: bool = False,
    **kwargs: Any,
) -> Any:
    """Torch-style backward: compute `fn(*args, **kwargs)` and add its gradient to each
    trainable parameter's `.grad` (accumulating until `zero_grad`, as torch does).

    `loss = jaxmodule.backward(lambda: criterion(model(x), y))` is the counterpart of
    `loss = criterion(model(x), y); loss.backward()`: with no Module argument (and no
    `inputs=`), every trainable Parameter the computation reads is differentiated, wherever it
    comes from (globals, closures, several models); frozen parameters keep `grad=None`. With
    Module arguments (`jaxmodule.backward(loss_fn, model, x, y)`) the parameters are those of
    the Module arguments; `inputs=` names them explicitly, as torch's `backward(inputs=...)`.

    **There is no `loss.backward()`.** A loss is a plain jax array, which has no `.backward`
    (JAX differentiates functions, not arrays that remember how they were computed), so torch
    code that calls it fails with jax's own error, which jaxmodule cannot intercept:

    ```text
    AttributeError: 'jaxlib._jax.ArrayImpl' object has no attribute 'backward'
    ```

    (`DynamicJaxprTracer has no attribute backward` under `jax.jit`; under `jaxmodule.compile`
    the same AttributeError gains a note naming your line and this fix.) Move the forward
    computation into the function this takes: `loss = criterion(model(x), y); loss.backward()`
    becomes `loss = jaxmodule.backward(lambda: criterion(model(x), y))`, and
    `optimizer.step()` follows as before. See docs/coming_from_pytorch.md.

    Args:
        fn: the loss function; returns a scalar, or `(loss, aux)` with `has_aux=True`.
        *args, **kwargs: passed to `fn`.
        inputs: the parameters to differentiate (default: see above).
        has_aux: `fn` returns `(loss, aux)`; aux (logits, a new hidden state, ...) is returned
            alongside the loss, concrete, never a tracer.

    Returns:
        The loss, or `(loss, aux)` with `has_aux=True`.

    The zero-argument form, called eagerly with the eager cache on (the default), traces `fn`
    once per call, recording which trainable parameters it reads, and runs the value and the
    gradient w.r.t. them as one cached program per traced structure (`_replay.py`): Python side
    effects in `fn` (a print, appending to a list) happen once per call, as in torch. When the
    loss cannot be traced, or with the cache off, it falls back to JAX's eager autodiff: the
    parameters are found by tracing `fn` once abstractly, then remembered per loss function (its
    code, so a `lambda` written inside the training loop counts as one), and later calls
    differentiate w.r.t. them in one pass, checking that `fn` read no other; there side effects
    happen twice on the first call and whenever the parameters read change. Under
    `jaxmodule.compile` they happen at trace time only.

    >>> import jax.numpy as jnp, jaxmodule
    >>> from jaxmodule import nn
    >>> model = nn.Linear(2, 1)
    >>> loss = jaxmodule.backward(lambda: model(jnp.ones((4, 2))).sum())
    >>> model.bias.grad.tolist()
    [4.0]
    >>> loss, out = jaxmodule.backward(lambda m: (m(jnp.ones((1, 2))).sum(), "aux"), model, has_aux=True)
    >>> out
    'aux'
    """
    modules = [a for a in args if isinstance(a, Module)]
    if inputs is None and not modules:
        key = _code_key(fn) if eager_trace() else None  # traced (compile): one trace, no memory
        refs = _LAST_READ.get(key) if key is not None else None
        guess = (
            [p for p in (r() for r in refs) if p is not None and p.requires_grad] if refs else None
        )
        replay = key if ENABLED[0] and type(trace_ctx.trace) is EvalTrace else None
        if guess is not None:  # the parameters as traced inputs: the fastest program
            done = _backward_one_pass(fn, guess, args, kwargs, has_aux, replay)
        elif replay is not None:  # a first call: found and differentiated in one traced pass
            done = _backward_one_pass(fn, [], args, kwargs, has_aux, replay, discover=True)
            if done is not None:
                _remember(key, done[2])
        else:
            done = None
        if done is not None:
            value, aux, params, grads = done
            _accumulate(params, grads)
            return (value, aux) if has_aux else value
        params, side = _read_parameters(fn, args, kwargs)
        _remember(key, params)
    elif inputs is None:
        seen: set[int] = set()
        params = []
        for m in modules:
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        side = _side_cells(modules, {id(p) for p in params})
    else:
        params = [p for p in inputs if p.requires_grad]
        side = _side_cells(modules, {id(p) for p in params})
    value, aux, grads, _ = _differentiate(fn, params, side, {}, args, kwargs, has_aux=has_aux)
    _accumulate(params, grads)
    return (value, aux) if has_aux else value


def _accumulate(params: list, grads: list) -> None:
    """Add each gradient to its parameter's `.grad`, as torch's backward does."""
    for p, g in zip(params, grads):
        p.grad = g if p.grad is None else p.grad + g
