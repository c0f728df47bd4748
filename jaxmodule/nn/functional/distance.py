"""Distances: `cosine_similarity`, `pairwise_distance`, `pdist`, with torch's formulas and gradients."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._utils import unwrap

__all__ = ["cosine_similarity", "pairwise_distance", "pdist"]


def _float(x: Any) -> jax.Array:
    x = jnp.asarray(unwrap(x))
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)


def _p_norm(x: Any, p: float, axis: int | tuple[int, ...] | None, keepdim: bool) -> jax.Array:
    """torch's `norm(x, p, dim)`, whose gradient is 0 (not NaN) where the norm is 0."""
    if p == math.inf:
        return jnp.max(jnp.abs(x), axis=axis, keepdims=keepdim)
    if p == -math.inf:
        return jnp.min(jnp.abs(x), axis=axis, keepdims=keepdim)
    if p == 0:
        return jnp.sum(x != 0, axis=axis, keepdims=keepdim).astype(x.dtype)
    if p == 1:
        return jnp.sum(jnp.abs(x), axis=axis, keepdims=keepdim)
    a = jnp.abs(x)
    nonzero = a > 0
    safe = jnp.where(nonzero, a, 1)
    powered = jnp.where(nonzero, safe**p, 0)
    total = jnp.sum(powered, axis=axis, keepdims=keepdim)
    pos = total > 0
    return jnp.where(pos, jnp.where(pos, total, 1) ** (1.0 / p), 0)


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> jax.Array:
    """Cosine similarity along `dim`. Mirrors `torch.nn.functional.cosine_similarity`.

    Computes sum((x1 / max(|x1|, eps)) * (x2 / max(|x2|, eps))) over `dim` after broadcasting,
    torch's current formula (each input normalised first, the clamp not differentiated).

    Args:
        x1, x2: arrays broadcastable to a common shape.
        dim: the dimension to reduce.
        eps: lower bound of each norm.

    >>> import jax.numpy as jnp
    >>> float(cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]), dim=0))  # doctest: +ELLIPSIS
    0.7071...
    """
    a, b = _float(x1), _float(x2)
    dtype = jnp.result_type(a, b)
    a, b = jnp.broadcast_arrays(a.astype(dtype), b.astype(dtype))
    if a.ndim == 0:
        raise IndexError("Dimension specified as 1 but tensor has no dimensions")
    if not -a.ndim <= dim < a.ndim:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-a.ndim}, {a.ndim - 1}], but got {dim})"
        )

    def normalised(v: jax.Array) -> jax.Array:
        n = _p_norm(v, 2, dim, True)
        # torch clamps a detached copy in place: the value is clamped, the gradient is the norm's
        clamped = n + jax.lax.stop_gradient(jnp.maximum(n, eps) - n)
        return v / clamped

    return jnp.sum(normalised(a) * normalised(b), axis=dim)


def pairwise_distance(
    x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> jax.Array:
    """p-norm of `x1 - x2 + eps` over the last dimension. Mirrors `torch.nn.functional.pairwise_distance`.

    Args:
        x1, x2: (N, D) or (D,) arrays (broadcastable).
        p: the norm degree (inf, 0 and fractional values allowed).
        eps: added to the difference, avoiding a zero norm.
        keepdim: keep the reduced dimension.
    """
    a, b = _float(x1), _float(x2)
    out_dim = max(a.ndim, b.ndim)
    if out_dim == 0:
        raise IndexError(
            "pairwise_distance: expected at least 1-dimensional inputs, got two scalars"
        )
    return _p_norm(a - b + eps, float(p), out_dim - 1, keepdim)


def pdist(input: Any, p: float = 2.0) -> jax.Array:
    """Distances between all row pairs i < j of an (N, M) input, flattened row by row.

    Mirrors `torch.nn.functional.pdist` (output length N (N - 1) / 2).
    """
    x = _float(input)
    if x.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {x.ndim}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    i, j = np.triu_indices(x.shape[0], k=1)
    return _p_norm(x[i] - x[j], float(p), 1, False)
