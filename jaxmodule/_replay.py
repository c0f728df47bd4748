"""Eager `jaxmodule.backward` as one cached program: trace the loss, run a cached value-and-grad.

Differentiating a Python loss eagerly with `jax.value_and_grad` pays JAX's eager autodiff on every
call: each op, and each cached layer program (`nn/modules/_eager.py`), is linearized, partially
evaluated and transposed in Python, several milliseconds for a small LSTM step against torch's one.
`value_and_grad` here does the same work as `jax.value_and_grad(fn, has_aux=True)(primals)` in
three steps instead:

1. trace `fn` to a jaxpr (`jax.make_jaxpr`), with the cached layer programs and functionals
   staying one equation each (`eager_trace()` is true for this trace, `is_replay_trace`);
   the arrays the loss captures (the batch, a hidden state, frozen parameters) become the jaxpr's
   constants, so new values of them never retrace;
2. fingerprint the jaxpr's structure (equations, shapes, dtypes, literals, sub-jaxprs);
3. run one `jax.jit` program per fingerprint, which evaluates the jaxpr's value and gradient,
   with the constants as arguments.

Python in `fn` runs once per call, as eagerly (prints, appends, control flow on Python values all
behave as in torch); only the arithmetic is cached. `wrt` differentiates chosen constants too:
`jaxmodule.backward` passes, on a loss function's first call, the positions of the trainable
parameters the trace read, so they are found and differentiated in the same single pass; later
calls trace with the remembered parameters as inputs (constants would cost every trace a
conversion per parameter), a second program. The caller falls back to eager autodiff when
tracing fails (a loss that reads a concrete value, `loss.item()`, or returns a non-array object
JAX cannot trace) and stops trying for that loss function; a loss function whose jaxprs keep
changing (more than `MAX_PROGRAMS` structures) stops being replayed as well, so nothing compiles on
every call. The switch is the eager cache's (`JAXMODULE_EAGER_JIT=0`, `set_eager_jit(False)`).

>>> import jax.numpy as jnp
>>> from jaxmodule import _replay
>>> (value, aux), grads = _replay.value_and_grad(
...     lambda p: ((p[0] ** 2).sum(), "note"), [jnp.arange(3.0)], key="doc"
... )
>>> float(value), aux, grads[0].tolist()
(5.0, 'note', [0.0, 2.0, 4.0])
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax._src import core as _jax_core  # the current trace, jaxpr types (no public API)

__all__ = ["REPLAY", "MAX_PROGRAMS", "is_replay_trace", "value_and_grad"]

# The trace `value_and_grad` is recording now (None outside): cached programs bind as one
# equation inside it, and the generator may draw (its key is a constant of the jaxpr).
REPLAY: list[Any] = [None]

# Distinct jaxpr structures one loss function may produce before it is no longer replayed.
MAX_PROGRAMS = 8

# Loss function key -> fingerprints seen (None: not replayed any more). Bounded, oldest out.
_SEEN: OrderedDict[Any, set[int] | None] = OrderedDict()
_SEEN_SIZE = 256

# id(jaxpr) -> (jaxpr, its fingerprint): the cached programs' jaxprs are the same objects on every
# trace, so each is fingerprinted once. Holds the jaxprs alive; bounded, oldest out.
_SUB: OrderedDict[int, tuple[Any, tuple]] = OrderedDict()
_SUB_SIZE = 128


def is_replay_trace() -> bool:
    """Whether the current trace is the loss trace of `value_and_grad` (not a trace inside it)."""
    return REPLAY[0] is not None and _jax_core.trace_ctx.trace is REPLAY[0]


def _function_key(f: Any) -> Any:
    info = getattr(f, "debug_info", None)  # lu.WrappedFun
    if info is not None:
        return ("fun", getattr(info, "func_src_info", None), getattr(info, "func_name", None))
    code = getattr(f, "__code__", None)
    if code is not None:
        return ("fun", code)
    return None


_PLAIN_PARAMS = (int, float, bool, str, bytes, type(None), np.dtype)


def _param(v: Any) -> Any:
    """A stable, hashable stand-in for an equation parameter."""
    if isinstance(v, _PLAIN_PARAMS):
        return v
    if isinstance(v, (_jax_core.ClosedJaxpr, _jax_core.Jaxpr)):
        return _jaxpr_key(v)
    if isinstance(v, (tuple, list)):
        if all(isinstance(x, _PLAIN_PARAMS) for x in v):
            return (type(v).__name__, tuple(v))
        return (type(v).__name__, tuple(_param(x) for x in v))
    if callable(v) and not isinstance(v, type):
        key = _function_key(v)
        if key is not None:
            return key
    try:
        hash(v)
    except TypeError:
        if isinstance(v, np.ndarray):
            return ("ndarray", v.shape, str(v.dtype), v.tobytes())
        return ("id", id(v))
    return v


def _jaxpr_key(j: Any) -> tuple:
    hit = _SUB.get(id(j))
    if hit is not None and hit[0] is j:
        return hit[1]
    if isinstance(j, _jax_core.ClosedJaxpr):  # its constants are baked into the program
        key = (_structure(j.jaxpr), tuple(_const_key(c) for c in j.consts))
    else:
        key = _structure(j)
    _SUB[id(j)] = (j, key)
    if len(_SUB) > _SUB_SIZE:
        _SUB.popitem(last=False)
    return key


def _const_key(c: Any) -> Any:
    """A small constant by value, a large one by identity (the memo keeps it alive)."""
    if np.size(c) <= 16:
        val = np.asarray(c)
        return ("const", str(val.dtype), val.shape, val.tobytes())
    return ("const", id(c))


def _structure(jaxpr: Any) -> tuple:
    """Equations, variable wiring, avals and literals of a jaxpr, as a hashable tuple."""
    ids: dict[Any, int] = {}

    def var(x: Any) -> Any:
        if isinstance(x, _jax_core.Literal):
            val = np.asarray(x.val)
            return ("lit", str(val.dtype), val.shape, val.tobytes())
        return ids.setdefault(x, len(ids))

    def avals(vs: list) -> tuple:
        return tuple((v.aval, var(v)) for v in vs)

    out: list[Any] = [avals(jaxpr.constvars), avals(jaxpr.invars)]
    for eqn in jaxpr.eqns:
        params = tuple((k, _param(v)) for k, v in eqn.params.items())
        out.append((eqn.primitive, params, tuple(var(v) for v in eqn.invars), avals(eqn.outvars)))
    out.append(tuple(var(v) for v in jaxpr.outvars))
    return tuple(out)


class _Program:
    """A jaxpr keyed by its structure and by which of its constants are differentiated too
    (`wrt`): equal keys run the first one's compiled program."""

    __slots__ = ("jaxpr", "wrt", "key", "_hash")

    def __init__(self, jaxpr: Any, key: tuple, wrt: tuple[int, ...] = ()) -> None:
        self.jaxpr, self.wrt = jaxpr, wrt
        self.key = (key, wrt)
        self._hash = hash(self.key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Program) and self._hash == other._hash and self.key == other.key


@functools.partial(jax.jit, static_argnums=0)
def _run(program: _Program, consts: list, primals: list) -> tuple:
    def f(p: list, chosen: list) -> tuple:
        cs = list(consts)
        for i, v in zip(program.wrt, chosen):
            cs[i] = v
        outs = _jax_core.eval_jaxpr(program.jaxpr, cs, *jax.tree_util.tree_leaves(p))
        return outs[0], outs[1:]

    chosen = [consts[i] for i in program.wrt]
    (value, rest), (grads, const_grads) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
        primals, chosen
    )
    return value, rest, grads + const_grads


def _trace_public(fn: Callable, primals: list) -> tuple[Any, list]:
    closed = jax.make_jaxpr(fn)(*primals)
    return closed.jaxpr, list(closed.consts)


def _trace_direct(fn: Callable, primals: list) -> tuple[Any, list]:
    """`jax.make_jaxpr` without its jit-style argument handling (a third of a small step's
    cost): JAX's own tracing entry point, where this JAX version has the expected one."""
    fun = _lu.wrap_init(fn, debug_info=_DEBUG)
    jaxpr, _, consts = _pe.trace_to_jaxpr_dynamic(fun, [_jax_core.typeof(p) for p in primals])
    return jaxpr, consts


try:  # private API: checked once here, else the public `make_jaxpr`
    import inspect

    from jax._src import linear_util as _lu
    from jax._src.interpreters import partial_eval as _pe

    _DEBUG = _lu.DebugInfo("jaxmodule.backward", "loss", None, None)
    if list(inspect.signature(_pe.trace_to_jaxpr_dynamic).parameters)[:2] != ["fun", "in_avals"]:
        raise ImportError("trace_to_jaxpr_dynamic changed")
    _trace = _trace_direct
except Exception:  # pragma: no cover - other JAX versions
    _trace = _trace_public


class Unsupported(Exception):
    """The loss cannot be replayed (now or for this loss function): use eager autodiff."""


def value_and_grad(
    fn: Callable[[list], tuple],
    primals: list,
    key: Any,
    wrt: Callable[[list], tuple[int, ...]] | None = None,
) -> tuple:
    """`jax.value_and_grad(fn, has_aux=True)(primals)` for a list of arrays `primals`, eagerly, as
    a traced jaxpr and a cached program (see the module docstring). `fn(values)` returns
    `(scalar loss, aux)`; aux may hold Python objects, returned as they are. `key` names the loss
    function (its code) for the bookkeeping. `wrt(consts)`, called after the trace with the arrays
    the loss captured, picks constants to differentiate as well (their gradients follow the
    primals'): how a first call differentiates the parameters it found it read. Raises
    `Unsupported` when it cannot."""
    seen = _SEEN.get(key, set())
    if seen is None:
        raise Unsupported(key)
    statics: dict[str, Any] = {}

    def traced(*values: Any) -> list:
        previous, REPLAY[0] = REPLAY[0], _jax_core.trace_ctx.trace
        try:
            value, aux = fn(list(values))
        finally:
            REPLAY[0] = previous
        leaves, treedef = jax.tree_util.tree_flatten(aux)
        is_array = [isinstance(x, jax.Array) for x in leaves]
        statics["aux"] = (treedef, is_array, [None if a else x for x, a in zip(leaves, is_array)])
        return [value, *(x for x, a in zip(leaves, is_array) if a)]

    try:
        jaxpr, consts = _trace(traced, primals)
        program = _Program(jaxpr, _structure(jaxpr), wrt(list(consts)) if wrt else ())
        if program._hash not in seen and len(seen) >= MAX_PROGRAMS:
            raise Unsupported(f"more than {MAX_PROGRAMS} programs")
        value, rest, grads = _run(program, list(consts), primals)
    except Exception as e:
        _mark(key, None)
        raise Unsupported(str(e)) from e
    seen.add(program._hash)
    _mark(key, seen)
    treedef, is_array, others = statics["aux"]
    arrays = iter(rest)
    aux = jax.tree_util.tree_unflatten(
        treedef, [next(arrays) if a else x for x, a in zip(others, is_array)]
    )
    return (value, aux), grads


def _mark(key: Any, seen: set[int] | None) -> None:
    _SEEN[key] = seen
    _SEEN.move_to_end(key)
    while len(_SEEN) > _SEEN_SIZE:
        _SEEN.popitem(last=False)
