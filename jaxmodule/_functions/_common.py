"""Helpers shared by torch's tensor functions: unwrapping, dims, torch's type promotion.

Everything here runs at trace time only (dtypes, shapes and Python numbers are static), so a
jitted program pays nothing for it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._dtype import get_default_dtype, to_dtype
from .._tensor import as_array
from ..nn.parameter import _TensorCell

__all__ = [
    "arr",
    "canon_dtype",
    "long_dtype",
    "wrap_dim",
    "wrap_dims",
    "int_list",
    "is_number",
    "result_type",
    "promote",
    "to_float",
    "float_dtype",
    "is_int_or_bool",
    "check_floating",
    "check_concrete",
    "same_dtype",
]

_PY_NUMBERS = (builtins.bool, builtins.int, builtins.float, builtins.complex)


def arr(x: Any) -> jax.Array:
    """A jax array for `x`: arrays and tracers pass through, cells give their array, data converts."""
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, _TensorCell):
        return x._value
    return as_array(x)


def canon_dtype(dtype: Any) -> np.dtype:
    """Any dtype spelling, as JAX can hold it: int64 -> int32 and float64 -> float32 without x64."""
    return jax.dtypes.canonicalize_dtype(to_dtype(dtype))


def long_dtype() -> np.dtype:
    """torch.long as JAX holds it (int32 while x64 is off)."""
    return jax.dtypes.canonicalize_dtype(jnp.int64)


def wrap_dim(dim: Any, ndim: int) -> int:
    """torch's dim wrapping: -1 is the last dim; a 0-d tensor accepts dims -1 and 0."""
    if not isinstance(dim, (builtins.int, np.integer)) or isinstance(dim, builtins.bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return builtins.int(dim) % n if ndim else 0


def wrap_dims(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """An int, a sequence of ints or None (all dims) as a tuple of wrapped dims (None for all).

    An empty sequence means all dims, as in torch's reductions; a 0-d tensor reduces over ().
    """
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        return () if ndim == 0 else None
    dims = (dim,) if not isinstance(dim, (tuple, list)) else dim
    out = tuple(wrap_dim(d, ndim) for d in dims)
    seen = set()
    for d in out:
        if d in seen:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        seen.add(d)
    return () if ndim == 0 else out


def int_list(args: Sequence[Any], name: str = "size") -> tuple[int, ...]:
    """torch's int-list arguments: `f(2, 3)`, `f((2, 3))`, `f([2, 3])` all give (2, 3)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    try:
        return tuple(builtins.int(a) for a in args)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {args!r}") from None


def is_number(x: Any) -> bool:
    return isinstance(x, (*_PY_NUMBERS, np.number, np.bool_))


def _category(dtype: np.dtype) -> int:
    if dtype == jnp.bool_:
        return 0
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return 3
    return 2 if jnp.issubdtype(dtype, jnp.floating) else 1


def _scalar_dtype(x: Any) -> np.dtype:
    if isinstance(x, (builtins.bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(x, (builtins.int, np.integer)):
        return long_dtype()
    if isinstance(x, (builtins.float, np.floating)):
        return get_default_dtype()
    return canon_dtype(jnp.complex64 if get_default_dtype() != jnp.float64 else jnp.complex128)


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """c10's combine_categories: a higher-priority group wins unless the lower one is a higher kind."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    hc, lc = _category(higher), _category(lower)
    if hc == 3:
        return higher
    if lc == 3:
        return jnp.promote_types(higher, jnp.complex64) if hc == 2 else lower
    if hc == 2:
        return higher
    if hc == 0 or lc == 2:
        return jnp.promote_types(higher, lower)
    return higher


def result_type(*operands: Any) -> np.dtype:
    """torch.result_type over arrays and Python numbers.

    Tensors with dimensions outrank 0-d tensors, which outrank Python numbers; a lower group only
    matters when it is a higher kind (bool < integer < floating < complex). So `int8 + int32(0-d)`
    stays int8 and `int32 + 2.5` is float32, as in torch (numpy/JAX would give int32 and float32).
    """
    groups: list[np.dtype | None] = [None, None, None]  # dimensioned, 0-d, Python numbers
    for x in operands:
        if x is None:
            continue
        if is_number(x):
            g, dt = 2, _scalar_dtype(x)
        else:
            a = arr(x)
            g, dt = (0 if a.ndim else 1), a.dtype
        prev = groups[g]
        groups[g] = dt if prev is None else jnp.promote_types(prev, dt)
    out = _combine(groups[0], _combine(groups[1], groups[2]))
    return jax.dtypes.canonicalize_dtype(out)


def promote(*operands: Any) -> list[Any]:
    """Cast every operand (array or Python number) to their torch result type."""
    dt = result_type(*operands)
    return [None if x is None else _cast(x, dt) for x in operands]


def _cast(x: Any, dt: np.dtype) -> jax.Array:
    a = (
        arr(x) if not is_number(x) else jnp.asarray(np.asarray(x).astype(dt))
    )  # ints wrap, as in torch
    return a if a.dtype == dt else a.astype(dt)


def is_int_or_bool(dtype: Any) -> bool:
    return _category(np.dtype(dtype)) < 2


def float_dtype(dtype: Any) -> np.dtype:
    """The dtype a floating-point op computes in: integers and bools use the default float."""
    return get_default_dtype() if is_int_or_bool(dtype) else np.dtype(dtype)


def to_float(x: Any) -> jax.Array:
    """`x` as an array, integers and bools cast to the default float (torch's unary float ops)."""
    a = arr(x)
    dt = float_dtype(a.dtype)
    return a if a.dtype == dt else a.astype(dt)


def check_floating(fn: str, x: jax.Array, what: str = "input") -> None:
    if is_int_or_bool(x.dtype):
        raise RuntimeError(
            f"{fn}(): expected a floating point or complex {what}, got dtype {x.dtype}"
        )


def same_dtype(fn: str, a: jax.Array, b: jax.Array) -> None:
    """torch's matmul-family check: no promotion between the two operands."""
    if a.dtype != b.dtype:
        raise RuntimeError(
            f"{fn}: expected both operands to have the same dtype, but got {a.dtype} != {b.dtype}"
        )


def check_concrete(fn: str, *xs: Any, hint: str = "") -> None:
    """Raise a clear error when a function whose output shape depends on values is traced."""
    for x in xs:
        if isinstance(x, jax.core.Tracer):
            raise RuntimeError(
                f"jaxmodule.{fn}: the output shape depends on the values, which are not known "
                f"inside jax.jit/jaxmodule.compile; call it outside the compiled function{hint}"
            )
