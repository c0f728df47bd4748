"""Reductions and scans with torch's `dim`/`keepdim`, dtypes and `(values, indices)` results.

Differences from torch, all from JAX's 64-bit mode being off: integer sums, products, counts
and indices are int32 where torch gives int64.
"""

from __future__ import annotations

import builtins
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp as _jsp_logsumexp

from . import _return_types as rt
from ._common import (
    arr,
    canon_dtype,
    is_int_or_bool,
    long_dtype,
    to_float,
    wrap_dim,
    wrap_dims,
)
from ._pointwise import maximum, minimum

__all__ = [
    "sum",
    "nansum",
    "mean",
    "nanmean",
    "prod",
    "std",
    "var",
    "std_mean",
    "var_mean",
    "max",
    "min",
    "amax",
    "amin",
    "aminmax",
    "argmax",
    "argmin",
    "all",
    "any",
    "logsumexp",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "count_nonzero",
    "median",
    "nanmedian",
    "mode",
    "kthvalue",
]

Dim = int | tuple[int, ...] | list[int] | None


def _summable(x: Any, dtype: Any) -> jax.Array:
    """The input in torch's result dtype: `dtype` if given (cast before summing, as torch does),
    int64 (int32 here) for integers and bools, else its own."""
    x = arr(x)
    if dtype is not None:
        return x.astype(canon_dtype(dtype))
    return x.astype(long_dtype()) if is_int_or_bool(x.dtype) else x


def sum(input: Any, dim: Dim = None, keepdim: bool = False, *, dtype: Any = None) -> jax.Array:  # noqa: A001
    """Sum over `dim` (all dims when None). Mirrors `torch.sum`.

    >>> import jax.numpy as jnp
    >>> sum(jnp.array([[1, 2], [3, 4]]), dim=-1)
    Array([3, 7], dtype=int32)
    """
    x = _summable(input, dtype)
    return jnp.sum(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


def nansum(input: Any, dim: Dim = None, keepdim: bool = False, *, dtype: Any = None) -> jax.Array:
    """Sum treating NaN as zero. Mirrors `torch.nansum`."""
    x = _summable(input, dtype)
    return jnp.nansum(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


def prod(
    input: Any, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None
) -> jax.Array:
    """Product over `dim` (one dim, or all when None). Mirrors `torch.prod`."""
    x = _summable(input, dtype)
    axis = None if dim is None else wrap_dims(dim, x.ndim)
    return jnp.prod(x, axis=axis, keepdims=keepdim)


def _mean_input(fn: str, input: Any, dtype: Any) -> jax.Array:
    x = arr(input)
    if dtype is not None:
        return x.astype(canon_dtype(dtype))
    if is_int_or_bool(x.dtype):
        raise RuntimeError(
            f"{fn}(): could not infer output dtype. Input dtype must be either a "
            f"floating point or complex dtype. Got: {x.dtype}"
        )
    return x


def mean(input: Any, dim: Dim = None, keepdim: bool = False, *, dtype: Any = None) -> jax.Array:
    """Mean over `dim`. Mirrors `torch.mean` (integer inputs need `dtype=`, as in torch)."""
    x = _mean_input("mean", input, dtype)
    return jnp.mean(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


def nanmean(input: Any, dim: Dim = None, keepdim: bool = False, *, dtype: Any = None) -> jax.Array:
    """Mean of the non-NaN elements. Mirrors `torch.nanmean`."""
    x = _mean_input("nanmean", input, dtype)
    return jnp.nanmean(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


# ---- variance ------------------------------------------------------------------------------
def _correction(fn: str, dim: Any, unbiased: Any, correction: Any) -> tuple[Any, float]:
    if isinstance(dim, builtins.bool):  # torch's legacy overload std(input, unbiased)
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{fn}: cannot specify both `unbiased` and `correction`")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, builtins.float(correction)


def _var_mean(
    fn: str, input: Any, dim: Any, unbiased: Any, keepdim: bool, correction: Any
) -> tuple[jax.Array, jax.Array]:
    x = arr(input)
    if is_int_or_bool(x.dtype):
        raise RuntimeError(
            f"{fn}(): std and var only support floating point and complex dtypes, got {x.dtype}"
        )
    dim, c = _correction(fn, dim, unbiased, correction)
    axes = wrap_dims(dim, x.ndim)
    m = jnp.mean(x, axis=axes, keepdims=True)
    d = x - m
    sq = (d * jnp.conj(d)).real if jnp.iscomplexobj(d) else d * d
    n = x.size if axes is None else math.prod(x.shape[a] for a in axes)
    var_ = jnp.sum(sq, axis=axes, keepdims=keepdim) / builtins.max(n - c, 0)
    return var_, (m if keepdim else jnp.squeeze(m, axes))


def var(
    input: Any,
    dim: Dim = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> jax.Array:
    """Variance with Bessel's correction by default (`correction=1`). Mirrors `torch.var`.

    `var(x, unbiased)` and `var(x, dim, unbiased, keepdim)` are accepted, as in torch.

    >>> import jax.numpy as jnp
    >>> var(jnp.array([1.0, 2.0, 3.0, 4.0]))
    Array(1.6666666, dtype=float32)
    """
    return _var_mean("var", input, dim, unbiased, keepdim, correction)[0]


def std(
    input: Any,
    dim: Dim = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> jax.Array:
    """Standard deviation with Bessel's correction by default. Mirrors `torch.std`."""
    return jnp.sqrt(_var_mean("std", input, dim, unbiased, keepdim, correction)[0])


def var_mean(
    input: Any,
    dim: Dim = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(var, mean) in one pass. Mirrors `torch.var_mean`."""
    return _var_mean("var_mean", input, dim, unbiased, keepdim, correction)


def std_mean(
    input: Any,
    dim: Dim = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(std, mean) in one pass. Mirrors `torch.std_mean`."""
    v, m = _var_mean("std_mean", input, dim, unbiased, keepdim, correction)
    return jnp.sqrt(v), m


# ---- max / min -----------------------------------------------------------------------------
def _arg_reduce(fn: Any, x: jax.Array, dim: int, keepdim: bool) -> jax.Array:
    if x.ndim == 0:
        return jnp.zeros((), long_dtype())
    d = wrap_dim(dim, x.ndim)
    return fn(x, axis=d, keepdims=keepdim).astype(long_dtype())


def _extreme(
    name: str, reduce: Any, arg: Any, pairwise: Any, input: Any, dim: Any, keepdim: bool
) -> Any:
    x = arr(input)
    if dim is None:
        if x.size == 0:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument."
            )
        return reduce(x)
    if not isinstance(dim, (builtins.int, np.integer)) or isinstance(
        dim, builtins.bool
    ):  # max(x, other)
        return pairwise(x, dim)
    wrap_dim(dim, x.ndim)
    dim = builtins.int(dim)
    idx = _arg_reduce(arg, x, dim, keepdim)
    if x.ndim == 0:
        return getattr(rt, name)(x, idx)
    values = jnp.take_along_axis(x, idx if keepdim else jnp.expand_dims(idx, dim), axis=dim)
    return getattr(rt, name)(values if keepdim else jnp.squeeze(values, dim), idx)


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """The maximum; with `dim`, a `(values, indices)` named tuple; with a tensor, `maximum`.

    Mirrors `torch.max`: `max(x)`, `max(x, dim, keepdim=False)`, `max(x, other)`. Among equal
    maxima the first index is returned; NaN counts as the maximum, as in torch.
    """
    return _extreme("max", jnp.max, jnp.argmax, maximum, input, dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """The minimum; with `dim`, a `(values, indices)` named tuple. Mirrors `torch.min`."""
    return _extreme("min", jnp.min, jnp.argmin, minimum, input, dim, keepdim)


def amax(input: Any, dim: Dim = (), keepdim: bool = False) -> jax.Array:
    """Maximum over one or several dims (all by default), values only. Mirrors `torch.amax`."""
    x = arr(input)
    return jnp.max(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


def amin(input: Any, dim: Dim = (), keepdim: bool = False) -> jax.Array:
    """Minimum over one or several dims (all by default), values only. Mirrors `torch.amin`."""
    x = arr(input)
    return jnp.min(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


def aminmax(input: Any, *, dim: int | None = None, keepdim: bool = False) -> Any:
    """`(min, max)` named tuple over `dim` (or all). Mirrors `torch.aminmax`."""
    x = arr(input)
    axis = None if dim is None else wrap_dims(dim, x.ndim)
    return rt.aminmax(
        jnp.min(x, axis=axis, keepdims=keepdim), jnp.max(x, axis=axis, keepdims=keepdim)
    )


def _flat_arg(fn: Any, input: Any, dim: int | None, keepdim: bool) -> jax.Array:
    x = arr(input)
    if dim is None:
        out = fn(x.reshape(-1)).astype(long_dtype())
        return out.reshape((1,) * x.ndim) if keepdim else out
    return _arg_reduce(fn, x, dim, keepdim)


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> jax.Array:
    """Index of the (first) maximum, flattened when `dim` is None. Mirrors `torch.argmax`."""
    return _flat_arg(jnp.argmax, input, dim, keepdim)


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> jax.Array:
    """Index of the (first) minimum, flattened when `dim` is None. Mirrors `torch.argmin`."""
    return _flat_arg(jnp.argmin, input, dim, keepdim)


# ---- logical -------------------------------------------------------------------------------
def _logical(fn: Any, input: Any, dim: Any, keepdim: bool) -> jax.Array:
    x = arr(input)
    out = fn(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)
    return out.astype(jnp.uint8) if x.dtype == jnp.uint8 else out  # torch keeps uint8


def all(input: Any, dim: Dim = None, keepdim: bool = False) -> jax.Array:  # noqa: A001
    """True where every element (over `dim`) is non-zero. Mirrors `torch.all` (uint8 stays uint8)."""
    return _logical(jnp.all, input, dim, keepdim)


def any(input: Any, dim: Dim = None, keepdim: bool = False) -> jax.Array:  # noqa: A001
    """True where some element (over `dim`) is non-zero. Mirrors `torch.any` (uint8 stays uint8)."""
    return _logical(jnp.any, input, dim, keepdim)


def count_nonzero(input: Any, dim: Dim = None) -> jax.Array:
    """Number of non-zero elements over `dim`. Mirrors `torch.count_nonzero`."""
    x = arr(input)
    return jnp.sum(x != 0, axis=wrap_dims(dim, x.ndim), dtype=long_dtype())


def logsumexp(input: Any, dim: Dim, keepdim: bool = False) -> jax.Array:
    """log(sum(exp(x))) over `dim`, computed stably. Mirrors `torch.logsumexp` (ints -> float)."""
    x = to_float(input)
    return _jsp_logsumexp(x, axis=wrap_dims(dim, x.ndim), keepdims=keepdim)


# ---- scans ---------------------------------------------------------------------------------
def _scan(fn: Any, input: Any, dim: int, dtype: Any) -> jax.Array:
    x = _summable(input, dtype)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return x
    if x.dtype in (jnp.float16, jnp.bfloat16):  # torch accumulates half precision in float32
        return fn(x.astype(jnp.float32), axis=d).astype(x.dtype)
    return fn(x, axis=d)


def cumsum(input: Any, dim: int, *, dtype: Any = None) -> jax.Array:
    """Cumulative sum along `dim`. Mirrors `torch.cumsum` (ints and bools accumulate in int32)."""
    return _scan(jnp.cumsum, input, dim, dtype)


def cumprod(input: Any, dim: int, *, dtype: Any = None) -> jax.Array:
    """Cumulative product along `dim`. Mirrors `torch.cumprod`."""
    return _scan(jnp.cumprod, input, dim, dtype)


@functools.partial(jax.jit, static_argnames=("d", "is_max"))
def _cum_scan(x: jax.Array, d: int, is_max: bool) -> tuple[jax.Array, jax.Array]:
    """Running max/min with the index of the last element that reached it (torch's `>=`/`<=`);
    a NaN wins and stays, and a later NaN takes the index, as in torch's kernel. Jitted: eagerly
    the scan would dispatch dozens of small ops."""
    better = jnp.greater_equal if is_max else jnp.less_equal
    idx = jax.lax.broadcasted_iota(long_dtype(), x.shape, d)

    def combine(a: tuple, b: tuple) -> tuple:
        (va, ia), (vb, ib) = a, b
        take_b = better(vb, va)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            take_b = jnp.isnan(vb) | (~jnp.isnan(va) & take_b)
        return jnp.where(take_b, vb, va), jnp.where(take_b, ib, ia)

    return jax.lax.associative_scan(combine, (x, idx), axis=d)


def _cum_extreme(name: str, input: Any, dim: int) -> Any:
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return getattr(rt, name)(x, jnp.zeros((), long_dtype()))
    return getattr(rt, name)(*_cum_scan(x, d, name == "cummax"))


def cummax(input: Any, dim: int) -> Any:
    """`(values, indices)` of the running maximum along `dim`. Mirrors `torch.cummax`."""
    return _cum_extreme("cummax", input, dim)


def cummin(input: Any, dim: int) -> Any:
    """`(values, indices)` of the running minimum along `dim`. Mirrors `torch.cummin`."""
    return _cum_extreme("cummin", input, dim)


# ---- order statistics ----------------------------------------------------------------------
def _keep(values: jax.Array, indices: jax.Array, d: int, keepdim: bool, cls: Any) -> Any:
    if keepdim:
        return cls(jnp.expand_dims(values, d), jnp.expand_dims(indices, d))
    return cls(values, indices)


def _pick_sorted(name: str, x: jax.Array, dim: int, keepdim: bool, pos: Any) -> Any:
    """Value and original index at sorted position `pos` (an int or an array per row) along dim."""
    cls = getattr(rt, name)
    if x.ndim == 0:
        return cls(x, jnp.zeros((), long_dtype()))
    d = wrap_dim(dim, x.ndim)
    order = jnp.argsort(x, axis=d, stable=True)
    if isinstance(pos, builtins.int):
        i = jax.lax.index_in_dim(order, pos, axis=d, keepdims=False)
    else:
        i = jnp.squeeze(jnp.take_along_axis(order, jnp.expand_dims(pos, d), axis=d), d)
    v = jnp.squeeze(jnp.take_along_axis(x, jnp.expand_dims(i, d), axis=d), d)
    return _keep(v, i.astype(long_dtype()), d, keepdim, cls)


def _nan_first(x: jax.Array, d: int, res: Any, keepdim: bool) -> Any:
    """torch's median with dim: a row holding NaN gives NaN and the index of its first NaN."""
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return res
    nan = jnp.isnan(x)
    has = jnp.any(nan, axis=d, keepdims=keepdim)
    first = jnp.argmax(nan, axis=d, keepdims=keepdim).astype(long_dtype())
    return type(res)(jnp.where(has, jnp.nan, res.values), jnp.where(has, first, res.indices))


def median(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (no averaging); with `dim`, `(values, indices)`. Mirrors `torch.median`.

    Among equal values the index follows a stable sort; torch does not specify which it returns.
    """
    x = arr(input)
    if dim is None:
        flat = x.reshape(-1)
        v = jnp.sort(flat)[(flat.size - 1) // 2]
        return (
            jnp.where(jnp.any(jnp.isnan(flat)), jnp.nan, v)
            if jnp.issubdtype(x.dtype, jnp.inexact)
            else v
        )
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    res = _pick_sorted("median", x, d, keepdim, (n - 1) // 2)
    return res if x.ndim == 0 else _nan_first(x, d, res, keepdim)


def nanmedian(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median of the non-NaN elements. Mirrors `torch.nanmedian`."""
    x = arr(input)
    if dim is None:
        flat = x.reshape(-1)
        count = jnp.sum(~jnp.isnan(flat)) if jnp.issubdtype(x.dtype, jnp.inexact) else flat.size
        return jnp.sort(flat)[jnp.maximum((count - 1) // 2, 0)]
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return rt.nanmedian(x, jnp.zeros((), long_dtype()))
    count = jnp.sum(~jnp.isnan(x), axis=d) if jnp.issubdtype(x.dtype, jnp.inexact) else x.shape[d]
    pos = jnp.maximum((jnp.asarray(count) - 1) // 2, 0)
    return _pick_sorted(
        "nanmedian", x, d, keepdim, jnp.broadcast_to(pos, x.shape[:d] + x.shape[d + 1 :])
    )


def kthvalue(input: Any, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """`(values, indices)` of the k-th smallest element along `dim`. Mirrors `torch.kthvalue`."""
    x = arr(input)
    n = x.shape[wrap_dim(dim, x.ndim)] if x.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(
            f"kthvalue(): selected number k out of range for dimension {dim}: k={k}, size={n}"
        )
    return _pick_sorted("kthvalue", x, dim, keepdim, builtins.int(k) - 1)


def mode(input: Any, dim: int = -1, keepdim: bool = False) -> Any:
    """`(values, indices)`: the most frequent value along `dim` (the smallest among ties) and the
    index of its last occurrence. Mirrors `torch.mode`.

    Counts by comparing all pairs along `dim` (memory grows with the square of its size).
    """
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return rt.mode(x, jnp.zeros((), long_dtype()))
    s = jnp.moveaxis(jnp.sort(x, axis=d), d, -1)
    counts = jnp.sum(s[..., :, None] == s[..., None, :], axis=-1)
    first_best = jnp.argmax(counts == jnp.max(counts, axis=-1, keepdims=True), axis=-1)
    value = jnp.take_along_axis(s, first_best[..., None], axis=-1)[..., 0]
    hits = jnp.moveaxis(x, d, -1) == value[..., None]
    n = x.shape[d]
    last = (n - 1 - jnp.argmax(hits[..., ::-1], axis=-1)).astype(long_dtype())
    return _keep(value, last, d, keepdim, rt.mode)
