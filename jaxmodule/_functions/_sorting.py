"""Sorting and searching: sort, argsort, topk, bucketize, searchsorted, unique.

Sorts are stable (torch's `stable=True` order, also what torch's CPU kernel gives by default):
equal elements keep their order, descending too; NaN sorts as the largest value. `topk` picks,
among equal values, the lowest indices; torch's kernel may pick others (the values agree).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _return_types as rt
from ._common import arr, check_concrete, long_dtype, wrap_dim

__all__ = [
    "sort",
    "argsort",
    "msort",
    "topk",
    "bucketize",
    "searchsorted",
    "unique",
    "unique_consecutive",
]


def _argsort(x: jax.Array, d: int, descending: bool) -> jax.Array:
    return jnp.argsort(x, axis=d, stable=True, descending=descending).astype(long_dtype())


def sort(input: Any, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Any:
    """`(values, indices)` sorted along `dim`. Mirrors `torch.sort` (always stable).

    >>> import jax.numpy as jnp
    >>> sort(jnp.array([3, 1, 2])).indices
    Array([1, 2, 0], dtype=int32)
    """
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return rt.sort(x, jnp.zeros((), long_dtype()))
    idx = _argsort(x, d, descending)
    return rt.sort(jnp.take_along_axis(x, idx, axis=d), idx)


def argsort(
    input: Any, dim: int = -1, descending: bool = False, *, stable: bool = False
) -> jax.Array:
    """Indices that sort `input` along `dim`. Mirrors `torch.argsort` (always stable)."""
    return sort(input, dim, descending).indices


def msort(input: Any) -> jax.Array:
    """Values sorted along dim 0. Mirrors `torch.msort`."""
    return sort(input, 0).values


def topk(input: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
    """`(values, indices)` of the k largest (or smallest) elements along `dim`. Mirrors `torch.topk`.

    Results are always sorted; among equal values the lowest indices are taken.
    """
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range: k={k}, size along dim {d} is {n}")
    if x.ndim == 0:
        return rt.topk(x, jnp.zeros((), long_dtype()))
    idx = jax.lax.slice_in_dim(_argsort(x, d, largest), 0, k, axis=d)
    return rt.topk(jnp.take_along_axis(x, idx, axis=d), idx)


def _index_dtype(out_int32: bool) -> Any:
    return jnp.int32 if out_int32 else long_dtype()


def bucketize(
    input: Any, boundaries: Any, *, out_int32: bool = False, right: bool = False
) -> jax.Array:
    """Bucket index of each value in sorted 1-d `boundaries`. Mirrors `torch.bucketize`.

    right=False: boundaries[i-1] < x <= boundaries[i]; right=True: boundaries[i-1] <= x < boundaries[i].
    """
    b = arr(boundaries)
    if b.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({b.ndim})")
    return jnp.searchsorted(b, arr(input), side="right" if right else "left").astype(
        _index_dtype(out_int32)
    )


def searchsorted(
    sorted_sequence: Any,
    input: Any,
    *,
    out_int32: bool = False,
    right: bool = False,
    side: str | None = None,
    sorter: Any = None,
) -> jax.Array:
    """Insertion indices of `input` into `sorted_sequence` along its last dim (leading dims batch).

    Mirrors `torch.searchsorted`.
    """
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError(
                "side and right can't be set to opposites, got side of left while right was True"
            )
        right = side == "right"
    seq = arr(sorted_sequence)
    if sorter is not None:
        seq = jnp.take_along_axis(seq, arr(sorter), axis=-1)
    v = arr(input)
    how = "right" if right else "left"
    if seq.ndim <= 1:
        return jnp.searchsorted(seq, v, side=how).astype(_index_dtype(out_int32))
    if seq.shape[:-1] != v.shape[:-1]:
        raise RuntimeError(
            f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
            f"dimensions of boundaries tensor and input value tensor must match, but we got "
            f"boundaries tensor {list(seq.shape)} and input value tensor {list(v.shape)}"
        )
    lead = seq.shape[:-1]
    flat = jax.vmap(lambda s, x: jnp.searchsorted(s, x, side=how))(
        seq.reshape(-1, seq.shape[-1]), v.reshape(-1, v.shape[-1])
    )
    return flat.reshape(lead + v.shape[-1:]).astype(_index_dtype(out_int32))


def _with_extras(
    values: Any, inverse: Any, counts: Any, return_inverse: bool, return_counts: bool
) -> Any:
    out = [jnp.asarray(values)]
    if return_inverse:
        out.append(jnp.asarray(inverse, long_dtype()))
    if return_counts:
        out.append(jnp.asarray(counts, long_dtype()))
    return out[0] if len(out) == 1 else tuple(out)


def unique(
    input: Any,
    sorted: bool = True,
    return_inverse: bool = False,  # noqa: A002
    return_counts: bool = False,
    dim: int | None = None,
) -> Any:
    """The distinct elements (or slices along `dim`), sorted; optionally inverse indices and counts.

    Mirrors `torch.unique`. Eager only (the length depends on the values); always sorted.
    """
    x = arr(input)
    check_concrete("unique", x)
    a = np.asarray(x)
    axis = None if dim is None else wrap_dim(dim, a.ndim)
    values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(a.shape if axis is None else (a.shape[axis],))
    return _with_extras(values, inverse, counts, return_inverse, return_counts)


def unique_consecutive(
    input: Any, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None
) -> Any:
    """Collapse runs of equal consecutive elements (or slices along `dim`). Mirrors `torch.unique_consecutive`.

    Eager only.
    """
    x = arr(input)
    check_concrete("unique_consecutive", x)
    a = np.asarray(x)
    if dim is None:
        flat = a.reshape(-1)
        change = np.concatenate([[True], flat[1:] != flat[:-1]]) if flat.size else np.zeros(0, bool)
        values = flat[change]
        inverse = (np.cumsum(change) - 1).reshape(a.shape)
    else:
        d = wrap_dim(dim, a.ndim)
        m = np.moveaxis(a, d, 0)
        diff = (m[1:] != m[:-1]).reshape(max(m.shape[0] - 1, 0), -1).any(axis=1)
        change = np.concatenate([[True], diff]) if m.shape[0] else np.zeros(0, bool)
        values = np.moveaxis(m[change], 0, d)
        inverse = np.cumsum(change) - 1
    counts = np.diff(np.append(np.flatnonzero(change), change.size))
    return _with_extras(values, inverse, counts, return_inverse, return_counts)
