"""Indexing: gather, scatter, index_select, masked_fill, where, nonzero, take_along_dim, ...

Differences from torch: out-of-range indices are not detected inside `jax.jit` (JAX clamps
gathers and drops scatters; torch raises), a negative index counts from the end where torch
raises, and scatters to one position from several sources keep one of them (torch does not
specify which either). `nonzero`, `masked_select` and `where(condition)` have value-dependent
shapes: eager only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._common import arr, check_concrete, is_int_or_bool, long_dtype, promote, wrap_dim

__all__ = [
    "gather",
    "scatter",
    "scatter_add",
    "scatter_reduce",
    "index_select",
    "index_add",
    "index_copy",
    "index_fill",
    "masked_fill",
    "masked_select",
    "where",
    "nonzero",
    "argwhere",
    "take_along_dim",
    "take",
]


def _index(fn: str, index: Any) -> jax.Array:
    i = arr(index)
    if not jnp.issubdtype(i.dtype, jnp.integer):
        raise RuntimeError(f"{fn}(): Expected dtype int64 for index, got {i.dtype}")
    return i


def _check_index_shape(
    fn: str, x: jax.Array, idx: jax.Array, d: int, other: jax.Array | None = None
) -> None:
    if idx.ndim != x.ndim and not (idx.ndim <= 1 and x.ndim <= 1):
        raise RuntimeError(
            f"{fn}(): Index tensor must have the same number of dimensions as input tensor"
        )
    for k in range(idx.ndim):
        if k != d and idx.shape[k] > x.shape[k]:
            raise RuntimeError(
                f"{fn}(): Size does not match at dimension {k} expected index {list(idx.shape)} "
                f"to be no larger than self {list(x.shape)} apart from dimension {d}"
            )
        if other is not None and idx.shape[k] > other.shape[k]:
            raise RuntimeError(
                f"{fn}(): Expected index {list(idx.shape)} to be no larger than src "
                f"{list(other.shape)} apart from dimension {d}"
            )


def _lead(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The leading block of `x` with `shape` (torch's gather/scatter index smaller than its tensor)."""
    return x if x.shape == shape else x[tuple(slice(0, s) for s in shape)]


def gather(input: Any, dim: int, index: Any, *, sparse_grad: bool = False) -> jax.Array:
    """out[i][j] = input[index[i][j]][j] (for dim 0), index no larger than input off `dim`.

    Mirrors `torch.gather`.

    >>> import jax.numpy as jnp
    >>> gather(jnp.array([[1, 2], [3, 4]]), 1, jnp.array([[0, 0], [1, 0]]))
    Array([[1, 1],
           [4, 3]], dtype=int32)
    """
    x, idx = arr(input), _index("gather", index)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return x.reshape(idx.shape)
    _check_index_shape("gather", x, idx, d)
    shape = tuple(idx.shape[k] if k != d else x.shape[d] for k in range(x.ndim))
    return jnp.take_along_axis(_lead(x, shape), idx, axis=d, mode="clip")


def _scatter_coords(x: jax.Array, d: int, idx: jax.Array) -> tuple[jax.Array, ...]:
    grids = jnp.indices(idx.shape, sparse=True)
    return tuple(idx if k == d else grids[k] for k in range(x.ndim))


def _scatter(fn: str, input: Any, dim: int, index: Any, src: Any, how: str) -> jax.Array:
    x, idx = arr(input), _index(fn, index)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        x1 = _scatter(
            fn,
            x.reshape(1),
            0,
            idx.reshape(-1),
            src if np.ndim(src) == 0 else arr(src).reshape(-1),
            how,
        )
        return x1.reshape(())
    if isinstance(src, (int, float, bool, np.number)):
        values = jnp.full(idx.shape, src, x.dtype)
        _check_index_shape(fn, x, idx, d)
    else:
        s = arr(src)
        _check_index_shape(fn, x, idx, d, s)
        values = _lead(s, idx.shape).astype(x.dtype)
    at = x.at[_scatter_coords(x, d, idx)]
    return getattr(at, how)(values, mode="drop")


def scatter(
    input: Any,
    dim: int,
    index: Any,
    src: Any = None,
    value: Any = None,
    *,
    reduce: str | None = None,
) -> jax.Array:
    """out = input with out[index[i][j]][j] = src[i][j] (for dim 0). Mirrors `torch.scatter`.

    `src` may be an array or a number (`value=` too); `reduce='add'|'multiply'` combine instead.
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing the `src` (or `value`) argument")
    how = {None: "set", "add": "add", "multiply": "multiply"}.get(reduce)
    if how is None:
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
    return _scatter("scatter", input, dim, index, src, how)


def scatter_add(input: Any, dim: int, index: Any, src: Any) -> jax.Array:
    """out = input with src added at `index` along `dim` (duplicates accumulate). Mirrors `torch.scatter_add`."""
    return _scatter("scatter_add", input, dim, index, src, "add")


_REDUCE_AT = {"sum": "add", "prod": "multiply", "amax": "max", "amin": "min", "mean": "add"}


def _identity(reduce: str, dtype: Any) -> jax.Array:
    """The neutral element of `reduce` in `dtype` (where include_self=False starts from)."""
    if reduce in ("sum", "mean", "prod"):
        return jnp.asarray(int(reduce == "prod"), dtype)
    if is_int_or_bool(dtype):
        info = jnp.iinfo(dtype)
        return jnp.asarray(info.min if reduce == "amax" else info.max, dtype)
    return jnp.asarray(-jnp.inf if reduce == "amax" else jnp.inf, dtype)


def scatter_reduce(
    input: Any, dim: int, index: Any, src: Any, reduce: str, *, include_self: bool = True
) -> jax.Array:
    """Reduce `src` into `input` at `index` with 'sum', 'prod', 'mean', 'amax' or 'amin'.

    Mirrors `torch.scatter_reduce` (with `include_self=False` the original values at scattered
    positions are left out). Integer 'mean' rounds toward negative infinity, as torch does.
    """
    if reduce not in _REDUCE_AT:
        raise RuntimeError(
            f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}"
        )
    x, idx, s = arr(input), _index("scatter_reduce", index), arr(src)
    d = wrap_dim(dim, x.ndim)
    _check_index_shape("scatter_reduce", x, idx, d, s)
    coords = _scatter_coords(x, d, idx)
    values = _lead(s, idx.shape).astype(x.dtype)
    base = x
    if not include_self:
        base = x.at[coords].set(_identity(reduce, x.dtype), mode="drop")
    out = getattr(base.at[coords], _REDUCE_AT[reduce])(values, mode="drop")
    if reduce != "mean":
        return out
    count = jnp.zeros(x.shape, long_dtype()).at[coords].add(1, mode="drop") + int(include_self)
    count = jnp.maximum(count, 1)
    return out // count if is_int_or_bool(x.dtype) else out / count.astype(x.dtype)


def _along(fn: str, x: jax.Array, dim: int, index: Any) -> tuple[int, jax.Array]:
    d = wrap_dim(dim, x.ndim)
    i = _index(fn, index)
    if i.ndim > 1:
        raise IndexError(f"{fn}(): Index is supposed to be a vector, got a {i.ndim}-d index")
    return d, i.reshape(-1)


def index_select(input: Any, dim: int, index: Any) -> jax.Array:
    """The entries at `index` (1-d) along `dim`. Mirrors `torch.index_select`."""
    x = arr(input)
    d, i = _along("index_select", x, dim, index)
    if x.ndim == 0:
        return x.reshape(1)[i].reshape(i.shape if np.ndim(arr(index)) else ())
    return jnp.take(x, i, axis=d, mode="clip")


def _index_update(fn: str, how: str, input: Any, dim: int, index: Any, values: Any) -> jax.Array:
    x = arr(input)
    d, i = _along(fn, x, dim, index)
    sl = (slice(None),) * d + (i,)
    return getattr(x.at[sl], how)(values, mode="drop")


def index_add(input: Any, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> jax.Array:
    """out = input with alpha * source added at `index` along `dim`. Mirrors `torch.index_add`."""
    x = arr(input)
    src = arr(source).astype(x.dtype)
    return _index_update("index_add", "add", x, dim, index, src if alpha == 1 else src * alpha)


def index_copy(input: Any, dim: int, index: Any, source: Any) -> jax.Array:
    """out = input with `source` written at `index` along `dim`. Mirrors `torch.index_copy`."""
    x = arr(input)
    return _index_update("index_copy", "set", x, dim, index, arr(source).astype(x.dtype))


def index_fill(input: Any, dim: int, index: Any, value: Any) -> jax.Array:
    """out = input with `value` at `index` along `dim`. Mirrors `torch.index_fill`."""
    x = arr(input)
    return _index_update("index_fill", "set", x, dim, index, jnp.asarray(arr(value), x.dtype))


def _mask(fn: str, mask: Any) -> jax.Array:
    m = arr(mask)
    if m.dtype != jnp.bool_:
        raise RuntimeError(f"{fn} only supports boolean masks, but got mask with dtype {m.dtype}")
    return m


def masked_fill(input: Any, mask: Any, value: Any) -> jax.Array:
    """`input` with `value` where `mask` is True (shapes broadcast). Mirrors `torch.masked_fill`.

    >>> import jax.numpy as jnp
    >>> masked_fill(jnp.zeros((2, 2)), jnp.array([True, False]), -1.0)
    Array([[-1.,  0.],
           [-1.,  0.]], dtype=float32)
    """
    x, m = arr(input), _mask("masked_fill_", mask)
    if not isinstance(value, (int, float, bool, complex, np.number)):
        v = arr(value)
        if v.ndim:
            raise RuntimeError(
                f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor "
                f"with {v.ndim} dimension(s)."
            )
        value = v
    return jnp.where(m, jnp.asarray(value).astype(x.dtype), x)


def masked_select(input: Any, mask: Any) -> jax.Array:
    """The elements where `mask` is True (shapes broadcast), as a 1-d array. Mirrors `torch.masked_select`.

    Eager only: the length depends on the mask's values.
    """
    x, m = arr(input), _mask("masked_select", mask)
    check_concrete("masked_select", m)
    x, m = jnp.broadcast_arrays(x, m)
    return x[m]


def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """`input` where `condition` else `other`, promoted as torch does; `where(condition)` is
    `nonzero(condition, as_tuple=True)`. Mirrors `torch.where`."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    c = arr(condition)
    if c.dtype != jnp.bool_:
        raise RuntimeError(
            f"where expected condition to be a boolean tensor, but got a tensor with dtype {c.dtype}"
        )
    a, b = promote(input, other)
    return jnp.where(c, a, b)


def nonzero(input: Any, *, as_tuple: bool = False) -> Any:
    """Indices of the non-zero elements: an (n, ndim) array, or a tuple of ndim 1-d arrays.

    Mirrors `torch.nonzero`. Eager only: n depends on the values (`jnp.nonzero(x, size=...)`
    is the static-shape alternative under jit).
    """
    x = arr(input)
    check_concrete("nonzero", x, hint=" (or use jnp.nonzero(x, size=...) under jit)")
    idx = jnp.nonzero(x.reshape(1) if x.ndim == 0 else x)
    idx = tuple(i.astype(long_dtype()) for i in idx)
    if as_tuple:
        return idx
    if x.ndim == 0:
        return jnp.zeros((idx[0].shape[0], 0), long_dtype())
    return jnp.stack(idx, axis=1)


def argwhere(input: Any) -> jax.Array:
    """`nonzero(input)`. Mirrors `torch.argwhere`."""
    return nonzero(input)


def take_along_dim(input: Any, indices: Any, dim: int | None = None) -> jax.Array:
    """Values at `indices` along `dim` (the flattened input when None), other dims broadcast.

    Mirrors `torch.take_along_dim`.
    """
    x, idx = arr(input), _index("take_along_dim", indices)
    if dim is None:
        return jnp.take_along_axis(x.reshape(-1), idx.reshape(-1), axis=0, mode="clip")
    d = wrap_dim(dim, x.ndim)
    if idx.ndim != x.ndim:
        raise RuntimeError(
            f"torch.take_along_dim(): input and indices should have the same number of "
            f"dimensions, but got {x.ndim} dimensions for input, and {idx.ndim} dimensions for indices"
        )
    ones = lambda s: s[:d] + (1,) + s[d + 1 :]  # noqa: E731
    shape = jnp.broadcast_shapes(ones(x.shape), ones(idx.shape))
    x = jnp.broadcast_to(x, shape[:d] + (x.shape[d],) + shape[d + 1 :])
    idx = jnp.broadcast_to(idx, shape[:d] + (idx.shape[d],) + shape[d + 1 :])
    return jnp.take_along_axis(x, idx, axis=d, mode="clip")


def take(input: Any, index: Any) -> jax.Array:
    """Elements of the flattened input at `index` (negative counts from the end), shaped like
    `index`. Mirrors `torch.take`."""
    x, idx = arr(input), _index("take", index)
    return jnp.take(x.reshape(-1), jnp.where(idx < 0, idx + x.size, idx), mode="clip")
