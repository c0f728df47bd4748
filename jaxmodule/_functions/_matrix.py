"""Triangles and diagonals: tril, triu, diag, diagonal, diag_embed, trace, tril_indices, ..."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._common import arr, canon_dtype, long_dtype, wrap_dim

__all__ = [
    "tril",
    "triu",
    "diag",
    "diagonal",
    "diag_embed",
    "diagflat",
    "trace",
    "tril_indices",
    "triu_indices",
]


def _matrix(fn: str, input: Any) -> jax.Array:
    x = arr(input)
    if x.ndim < 2:
        raise RuntimeError(f"{fn}: input tensor must have at least 2 dimensions")
    return x


def tril(input: Any, diagonal: int = 0) -> jax.Array:
    """The lower triangle of the last two dims (below and on `diagonal`). Mirrors `torch.tril`.

    >>> import jax.numpy as jnp
    >>> tril(jnp.ones((2, 3)), diagonal=-1)
    Array([[0., 0., 0.],
           [1., 0., 0.]], dtype=float32)
    """
    return jnp.tril(_matrix("tril", input), diagonal)


def triu(input: Any, diagonal: int = 0) -> jax.Array:
    """The upper triangle of the last two dims (above and on `diagonal`). Mirrors `torch.triu`."""
    return jnp.triu(_matrix("triu", input), diagonal)


def diag(input: Any, diagonal: int = 0) -> jax.Array:
    """A 1-d input becomes a square matrix with it on `diagonal`; a 2-d input gives that diagonal.

    Mirrors `torch.diag`.
    """
    x = arr(input)
    if x.ndim not in (1, 2):
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")
    return jnp.diag(x, diagonal)


def diagonal(input: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> jax.Array:
    """The diagonal of the (dim1, dim2) planes, as the last dim. Mirrors `torch.diagonal`."""
    x = arr(input)
    d1, d2 = wrap_dim(dim1, x.ndim), wrap_dim(dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return jnp.diagonal(x, offset, d1, d2)


def diag_embed(input: Any, offset: int = 0, dim1: int = -2, dim2: int = -1) -> jax.Array:
    """Put the last dim on the `offset` diagonal of new (dim1, dim2) planes. Mirrors `torch.diag_embed`."""
    x = arr(input)
    n = x.shape[-1] + abs(offset)
    out_ndim = x.ndim + 1
    d1, d2 = wrap_dim(dim1, out_ndim), wrap_dim(dim2, out_ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rows = jnp.arange(x.shape[-1]) + max(-offset, 0)
    cols = jnp.arange(x.shape[-1]) + max(offset, 0)
    mats = jnp.zeros(x.shape[:-1] + (n, n), x.dtype).at[..., rows, cols].set(x)
    # mats holds the planes as its last two dims; move them to (d1, d2)
    return jnp.moveaxis(mats, (-2, -1), (d1, d2))


def diagflat(input: Any, offset: int = 0) -> jax.Array:
    """The flattened input on the `offset` diagonal of a square matrix. Mirrors `torch.diagflat`."""
    return jnp.diagflat(arr(input), offset)


def trace(input: Any) -> jax.Array:
    """Sum of the main diagonal of a matrix. Mirrors `torch.trace` (ints sum to int32 here)."""
    x = arr(input)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim}")
    dt = long_dtype() if not jnp.issubdtype(x.dtype, jnp.inexact) else None
    return jnp.trace(x, dtype=dt)


def _tri_indices(fn: Any, row: int, col: int, offset: int, dtype: Any) -> jax.Array:
    r, c = fn(row, offset, col)
    return jnp.stack([r, c]).astype(long_dtype() if dtype is None else canon_dtype(dtype))


def tril_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None
) -> jax.Array:
    """A (2, N) array of the lower-triangle coordinates, row by row. Mirrors `torch.tril_indices`."""
    return _tri_indices(jnp.tril_indices, row, col, offset, dtype)


def triu_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None
) -> jax.Array:
    """A (2, N) array of the upper-triangle coordinates, row by row. Mirrors `torch.triu_indices`."""
    return _tri_indices(jnp.triu_indices, row, col, offset, dtype)
