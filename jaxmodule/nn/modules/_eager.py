"""Fast eager mode: a leaf layer's uncompiled call runs one cached `jax.jit` program.

Eagerly, every `jax.numpy` op in a forward is a separate dispatch (tens of microseconds each), and
under eager autodiff (`jaxmodule.backward`, `jaxmodule.grad`) some ops (`lax.scan` in the RNNs)
are even lowered again on every call. A layer whose forward is a pure function of its arrays, its
inputs and its plain attributes declares so next to its class with `register_pure_forward`; then
`Module.__call__` (no hooks registered) runs that forward through one module-level `jax.jit`,
passing the module as a pytree. jit's own cache is keyed by the module's treedef (class, plain
attributes such as `training` or `eps`, parameter flags: `_pytree.ModuleTreeDef`), the input
shapes and dtypes, and the autocast state (a static argument). The module itself is never stored:
the cache keeps no module alive.

The cached program is used only when all of these hold, else the plain forward runs:

- the switch is on: `JAXMODULE_EAGER_JIT=0` in the environment (read at import) turns it off,
  `set_eager_jit(False)` at runtime;
- the exact class registered (a subclass that overrides `forward` is not trusted) and its `when`
  test passes (Dropout only when it draws nothing, BatchNorm only when it updates no statistics);
- `forward` is not replaced on the instance;
- the call is eager, or eager autodiff over eager values (`jax.grad` of a function calling the
  layer): under `jax.jit`, `jaxmodule.compile`, `vmap` or `eval_shape` the outer trace takes the
  layer as it always did;
- every array leaf of the arguments is a `jax.Array` (Python numbers, numpy arrays and other
  objects keep their eager meaning) and every cell holds a real array (not the meta device).

A trace failure falls back to the plain forward (which raises a user error as it always did); a
class whose forward reads concrete values (a JAX tracer error) is not tried again.

>>> import jax.numpy as jnp
>>> from jaxmodule import nn
>>> from jaxmodule.nn.modules import _eager
>>> layer = nn.Linear(3, 2)
>>> fast = layer(jnp.ones((1, 3)))
>>> previous = _eager.set_eager_jit(False)
>>> bool(jnp.allclose(fast, layer(jnp.ones((1, 3)))))
True
>>> _eager.set_eager_jit(previous)
False
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
from jax._src import core as _jax_core  # the current trace: eager or not (no public API)
from jax._src.interpreters import ad as _jax_ad

from ...amp import autocast_mode
from . import _pytree

__all__ = ["ENABLED", "RULES", "SKIP", "register_pure_forward", "set_eager_jit", "is_eager_jit_enabled", "call"]

# One flag read by `Module._call_impl` per call: a list so the hot path indexes, never calls.
ENABLED = [os.environ.get("JAXMODULE_EAGER_JIT", "1") != "0"]

# What `call` returns when the plain forward must run.
SKIP = object()

# Exact class -> its `when` test, or None (always). Exact, so that a subclass with its own forward
# (which may print, append, write state) is never cached.
RULES: dict[type, Callable[[Any], bool] | None] = {}

_AD_TRACES = (_jax_ad.JVPTrace, _jax_ad.LinearizeTrace)


def register_pure_forward(*classes: type, when: Callable[[Any], bool] | None = None) -> None:
    """Declare each class's `forward` (its own or inherited) a pure function of the module's
    arrays, its inputs and its plain attributes: it writes no cell, draws no random numbers and
    reads no concrete values; optionally only while `when(module)` is true. Subclasses are not
    covered: each class registers itself.

    >>> from jaxmodule.nn.modules import _eager
    >>> from jaxmodule import nn
    >>> class Scale(nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x
    >>> _eager.register_pure_forward(Scale)
    >>> Scale in _eager.RULES
    True
    """
    for cls in classes:
        if not isinstance(cls, type) or not callable(getattr(cls, "forward", None)):
            raise TypeError(f"register_pure_forward: expected Module classes with a forward, got {cls!r}")
    for cls in classes:
        RULES[cls] = when


def set_eager_jit(enabled: bool) -> bool:
    """Turn the eager jit cache on or off for every layer; returns the previous setting.

    >>> from jaxmodule.nn.modules import _eager
    >>> previous = _eager.set_eager_jit(False)
    >>> _eager.set_eager_jit(previous)
    False
    """
    previous = ENABLED[0]
    ENABLED[0] = bool(enabled)
    return previous


def is_eager_jit_enabled() -> bool:
    """Whether uncompiled calls of registered layers use the eager jit cache."""
    return ENABLED[0]


def _apply(module: Any, args: tuple, kwargs: dict, autocast_state: tuple) -> Any:
    del autocast_state  # static: only keys the cache (the forward reads the live state)
    return module.forward(*args, **kwargs)


_JITTED = jax.jit(_apply, static_argnums=(3,))


def _eager_trace() -> bool:
    """True when ops would run now (no trace), or under autodiff directly over eager values."""
    trace = _jax_core.trace_ctx.trace
    if type(trace) is _jax_core.EvalTrace:
        return True
    return type(trace) in _AD_TRACES and type(trace.parent_trace) is _jax_core.EvalTrace


def _jittable_leaves(tree: Any) -> bool:
    return all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(tree))


def call(module: Any, args: tuple, kwargs: dict) -> Any:
    """The output of the cached jit program for `module(*args, **kwargs)`, or `SKIP` when the
    conditions in the module docstring do not hold; then (and after a failed trace) the caller
    runs the plain forward, which raises a user error as it would eagerly. `Module._call_impl`
    calls this only for a registered class with no hooks registered."""
    cls = type(module)
    when = RULES.get(cls)
    if (cls not in RULES or (when is not None and not when(module))
            or "forward" in module.__dict__ or not _eager_trace()
            or not _jittable_leaves((args, kwargs))
            or not all(isinstance(c._value, jax.Array) for c in _pytree.module_cells(module)[0])):
        return SKIP
    try:
        return _JITTED(module, args, kwargs, autocast_mode.state())
    except jax.errors.JAXTypeError:  # the forward reads concrete values: never try this class again
        RULES.pop(type(module), None)
    except Exception:  # noqa: S110 - the plain forward raises the user's error with its eager traceback
        pass
    return SKIP
