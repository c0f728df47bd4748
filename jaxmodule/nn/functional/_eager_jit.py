"""Fast eager mode, the shared switch and the functional half: pure math run as one cached jit.

Eagerly, every `jax.numpy` op is its own dispatch (tens of microseconds), so a functional made of
a dozen small ops (attention's scores, mask, softmax and product; the NLL's gather, weights and
mean) costs far more eagerly than its arithmetic. `jit_when_eager` wraps such a function, the
pure part after the argument checks, so that an eager call (or eager autodiff over eager values)
runs one cached `jax.jit` program instead; under any other trace (`jax.jit`, `jaxmodule.compile`,
`vmap`, `eval_shape`) the function runs inline as before. The module half
(`nn/modules/_eager.py`) caches a whole leaf layer's forward the same way; both obey one switch:
`JAXMODULE_EAGER_JIT=0` in the environment (read at import), `set_eager_jit(False)` at runtime.

>>> import jax.numpy as jnp
>>> from jaxmodule.nn.functional._eager_jit import jit_when_eager
>>> @jit_when_eager(static_argnames=("power",))
... def norm(x, *, power):
...     return (jnp.abs(x) ** power).sum() ** (1 / power)
>>> float(norm(jnp.array([3.0, 4.0]), power=2))
5.0
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
from jax._src import core as _jax_core  # the current trace: eager or not (no public API)
from jax._src.interpreters import ad as _jax_ad

from ..._replay import REPLAY
from ...amp import autocast_mode

__all__ = ["ENABLED", "set_eager_jit", "is_eager_jit_enabled", "eager_trace", "jit_when_eager"]

# One flag read on every eager call: a list so the hot path indexes, never calls.
ENABLED = [os.environ.get("JAXMODULE_EAGER_JIT", "1") != "0"]

_AD_TRACES = (_jax_ad.JVPTrace, _jax_ad.LinearizeTrace)

F = TypeVar("F", bound=Callable[..., Any])


def set_eager_jit(enabled: bool) -> bool:
    """Turn the eager jit cache (layers and functionals) on or off; returns the previous setting.

    >>> from jaxmodule.nn.functional._eager_jit import set_eager_jit
    >>> previous = set_eager_jit(False)
    >>> set_eager_jit(previous)
    False
    """
    previous = ENABLED[0]
    ENABLED[0] = bool(enabled)
    return previous


def is_eager_jit_enabled() -> bool:
    """Whether eager calls of registered layers and wrapped functionals use cached jit programs."""
    return ENABLED[0]


def eager_trace() -> bool:
    """True when ops would run now (no trace), under autodiff directly over eager values, or in
    the loss trace of an eager `jaxmodule.backward` (`_replay.py`)."""
    trace = _jax_core.trace_ctx.trace
    if type(trace) is _jax_core.EvalTrace or trace is REPLAY[0]:
        return True
    return type(trace) in _AD_TRACES and type(trace.parent_trace) is _jax_core.EvalTrace


def all_arrays(tree: Any) -> bool:
    """Every leaf of `tree` is a `jax.Array` (None is no leaf)."""
    return all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(tree))


def jit_when_eager(fn: F | None = None, *, static_argnames: Sequence[str] = ()) -> Any:
    """Decorator: eager calls of `fn` run one cached `jax.jit` program.

    `fn` must be pure: no cell writes, no random draws, no reads of concrete values, no Python
    side effects. Arguments named in `static_argnames` must be passed by keyword, hashable and
    stable (numbers, strings, module-level functions: a lambda made per call would compile per
    call; they key the cache, as do the other arguments' shapes and dtypes and the autocast state);
    every other argument must be a `jax.Array` or None for the cached program to be used (else
    `fn` runs inline). A failure inside the cached program falls back to the inline call, which
    raises the user's error as it always did.
    """
    if fn is None:
        return functools.partial(jit_when_eager, static_argnames=static_argnames)
    statics = tuple(static_argnames)

    def staged(*args: Any, _jm_autocast: Any, **kwargs: Any) -> Any:
        del _jm_autocast  # static: only keys the cache (fn reads the live state)
        return fn(*args, **kwargs)

    jitted = jax.jit(staged, static_argnames=(*statics, "_jm_autocast"))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if (
            ENABLED[0]
            and eager_trace()
            and all_arrays((args, [v for k, v in kwargs.items() if k not in statics]))
        ):
            try:
                return jitted(*args, _jm_autocast=autocast_mode.state(), **kwargs)
            except Exception:  # noqa: S110 - the inline call raises the user's error eagerly
                pass
        return fn(*args, **kwargs)

    return wrapper
