"""Joining and splitting: cat, stack, split, chunk, unbind, narrow, tensor_split, ...

Splits return tuples of arrays, as torch returns tuples of views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._common import arr, check_concrete, promote, wrap_dim

__all__ = [
    "cat",
    "concat",
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "row_stack",
    "dstack",
    "column_stack",
    "split",
    "chunk",
    "unbind",
    "narrow",
    "tensor_split",
    "hsplit",
    "vsplit",
    "dsplit",
]

Tensors = Sequence[Any]


def _sequence(fn: str, tensors: Any) -> list[jax.Array]:
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(
            f"{fn}(): argument 'tensors' (position 1) must be tuple of Tensors, "
            f"not {type(tensors).__name__}"
        )
    if not tensors:
        raise ValueError(f"torch.{fn}(): expected a non-empty list of Tensors")
    return promote(*tensors)


def cat(tensors: Tensors, dim: int = 0) -> jax.Array:
    """Join arrays along an existing dim. Mirrors `torch.cat`.

    Dtypes are promoted as torch does; 1-d empty arrays are skipped (torch's legacy rule).

    >>> import jax.numpy as jnp
    >>> cat([jnp.ones((2, 3)), jnp.zeros((1, 3))]).shape
    (3, 3)
    """
    xs = _sequence("cat", tensors)
    for i, x in enumerate(xs):
        if x.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    kept = [x for x in xs if not (x.ndim == 1 and x.shape[0] == 0)] or xs[:1]
    d = wrap_dim(dim, kept[0].ndim)
    ref = kept[0].shape
    for i, x in enumerate(kept):
        if x.ndim != len(ref):
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {len(ref)} and {x.ndim}"
            )
        for k in range(x.ndim):
            if k != d and x.shape[k] != ref[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{ref[k]} but got size {x.shape[k]} for tensor number {i} in the list."
                )
    return jnp.concatenate(kept, axis=d)


concat = cat


def concatenate(tensors: Tensors, axis: int = 0, dim: int | None = None) -> jax.Array:
    """Alias of `cat` with numpy's `axis`. Mirrors `torch.concatenate`."""
    return cat(tensors, axis if dim is None else dim)


def stack(tensors: Tensors, dim: int = 0) -> jax.Array:
    """Join equal-shape arrays along a new dim. Mirrors `torch.stack`."""
    xs = _sequence("stack", tensors)
    for i, x in enumerate(xs[1:], 1):
        if x.shape != xs[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(xs[0].shape)} "
                f"at entry 0 and {list(x.shape)} at entry {i}"
            )
    return jnp.stack(xs, axis=wrap_dim(dim, xs[0].ndim + 1))


def hstack(tensors: Tensors) -> jax.Array:
    """Concatenate column-wise (dim 1, or dim 0 for 1-d inputs). Mirrors `torch.hstack`."""
    xs = [jnp.atleast_1d(x) for x in _sequence("hstack", tensors)]
    return cat(xs, 0 if xs[0].ndim == 1 else 1)


def vstack(tensors: Tensors) -> jax.Array:
    """Concatenate row-wise after making inputs at least 2-d. Mirrors `torch.vstack`."""
    return cat([jnp.atleast_2d(x) for x in _sequence("vstack", tensors)], 0)


row_stack = vstack


def dstack(tensors: Tensors) -> jax.Array:
    """Concatenate along dim 2 after making inputs at least 3-d. Mirrors `torch.dstack`."""
    return cat([jnp.atleast_3d(x) for x in _sequence("dstack", tensors)], 2)


def column_stack(tensors: Tensors) -> jax.Array:
    """Stack 0-d/1-d inputs as columns, others as they are, along dim 1. Mirrors `torch.column_stack`."""
    xs = _sequence("column_stack", tensors)
    return hstack([x.reshape(-1, 1) if x.ndim < 2 else x for x in xs])


# ---- splitting -----------------------------------------------------------------------------
def _split_at(x: jax.Array, d: int, sizes: Sequence[int]) -> tuple[jax.Array, ...]:
    offsets = np.cumsum([0, *sizes])
    return tuple(
        jax.lax.slice_in_dim(x, int(a), int(b), axis=d) for a, b in zip(offsets[:-1], offsets[1:])
    )


def split(
    tensor: Any, split_size_or_sections: int | Sequence[int], dim: int = 0
) -> tuple[jax.Array, ...]:
    """Split into chunks of `split_size` (the last may be smaller) or of the listed sizes.

    Mirrors `torch.split`.

    >>> import jax.numpy as jnp
    >>> [p.shape for p in split(jnp.zeros((5, 2)), 2)]
    [(2, 2), (2, 2), (1, 2)]
    """
    x = arr(tensor)
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        s = int(split_size_or_sections)
        if s < 0 or (s == 0 and n != 0):
            raise RuntimeError(
                f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
            )
        if n == 0:
            return (x,)
        return _split_at(x, d, [s] * (n // s) + ([n % s] if n % s else []))
    sizes = [int(s) for s in split_size_or_sections]
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise RuntimeError(
            f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
            f"dimension {d}), but got split_sizes={sizes}"
        )
    return _split_at(x, d, sizes)


def chunk(input: Any, chunks: int, dim: int = 0) -> tuple[jax.Array, ...]:
    """Split into at most `chunks` pieces of size ceil(n / chunks). Mirrors `torch.chunk`."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    x = arr(input)
    n = x.shape[wrap_dim(dim, x.ndim)]
    size = -(-n // chunks)
    if size == 0:
        return _split_at(x, wrap_dim(dim, x.ndim), [0] * chunks)
    return split(x, size, dim)


def unbind(input: Any, dim: int = 0) -> tuple[jax.Array, ...]:
    """All slices along `dim`, without that dim. Mirrors `torch.unbind`."""
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    return tuple(jax.lax.index_in_dim(x, i, axis=d, keepdims=False) for i in range(x.shape[d]))


def narrow(input: Any, dim: int, start: Any, length: int) -> jax.Array:
    """`length` elements from `start` along `dim` (start may be negative or a 0-d array).

    Mirrors `torch.narrow`; a traced `start` uses a dynamic slice (clamped into range, where
    torch would raise).
    """
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d]
    if not isinstance(start, (int, np.integer)):
        s_arr = arr(start)
        if isinstance(s_arr, jax.core.Tracer):
            return jax.lax.dynamic_slice_in_dim(
                x, jnp.where(s_arr < 0, s_arr + n, s_arr), int(length), axis=d
            )
        start = int(s_arr)
    s = int(start)
    if not -n <= s <= n:
        raise IndexError(
            f"start out of range (expected to be in range of [{-n}, {n}], but got {s})"
        )
    s = s + n if s < 0 else s
    if length < 0 or s + length > n:
        raise RuntimeError(f"start ({s}) + length ({length}) exceeds dimension size ({n}).")
    return jax.lax.slice_in_dim(x, s, s + int(length), axis=d)


def tensor_split(input: Any, indices_or_sections: Any, dim: int = 0) -> tuple[jax.Array, ...]:
    """Split into `sections` near-equal parts (the first n % sections one longer) or at indices.

    Mirrors `torch.tensor_split`; a 0-d integer array counts as sections, a 1-d one as indices.
    """
    x = arr(input)
    d = wrap_dim(dim, x.ndim)
    n = x.shape[d]
    spec = indices_or_sections
    if not isinstance(spec, (int, np.integer, list, tuple)):
        check_concrete("tensor_split", arr(spec), hint=" (pass indices_or_sections as ints)")
        a = np.asarray(arr(spec))
        spec = int(a) if a.ndim == 0 else [int(i) for i in a]
    if isinstance(spec, (int, np.integer)):
        k = int(spec)
        if k <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {k}")
        q, r = divmod(n, k)
        return _split_at(x, d, [q + 1] * r + [q] * (k - r))
    bounds = [0] + [min(max(i + n if i < 0 else i, 0), n) for i in spec] + [n]
    return tuple(
        jax.lax.slice_in_dim(x, a, max(a, b), axis=d) for a, b in zip(bounds[:-1], bounds[1:])
    )


def _even_split(fn: str, x: Any, spec: Any, d: int, need: int) -> tuple[jax.Array, ...]:
    a = arr(x)
    if a.ndim < need:
        raise RuntimeError(
            f"torch.{fn} requires a tensor with at least {need} dimension, but got a tensor "
            f"with {a.ndim} dimensions!"
        )
    if isinstance(spec, (int, np.integer)) and a.shape[d] % int(spec):
        raise RuntimeError(
            f"torch.{fn} attempted to split along dimension {d}, but the size of the dimension "
            f"{a.shape[d]} is not divisible by the split_size {spec}!"
        )
    return tensor_split(a, spec, d)


def hsplit(input: Any, indices_or_sections: Any) -> tuple[jax.Array, ...]:
    """tensor_split along dim 1 (dim 0 for 1-d), sections dividing evenly. Mirrors `torch.hsplit`."""
    a = arr(input)
    return _even_split("hsplit", a, indices_or_sections, 1 if a.ndim > 1 else 0, 1)


def vsplit(input: Any, indices_or_sections: Any) -> tuple[jax.Array, ...]:
    """tensor_split along dim 0, sections dividing evenly. Mirrors `torch.vsplit`."""
    return _even_split("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Any, indices_or_sections: Any) -> tuple[jax.Array, ...]:
    """tensor_split along dim 2, sections dividing evenly. Mirrors `torch.dsplit`."""
    return _even_split("dsplit", input, indices_or_sections, 2, 3)
