"""Fractional max pooling (Graham, 2014) with torch's pseudo-random window placement.

Each (batch, channel) plane draws one uniform sample u per spatial dim; window i then starts at
int((i + u) * alpha) - int(u * alpha) with alpha = (in - k) / (out - 1), and the last window ends
at the input's end (torch's `generate_intervals`, computed in the input's float type). The samples
are an array, so placement happens inside the traced computation and works under `jax.jit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import x64_enabled
from ..._random import next_key
from ._utils import unwrap

__all__ = [
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "fractional_max_pool2d_with_indices",
    "fractional_max_pool3d_with_indices",
]


def torch_argmax(g: Any) -> jax.Array:
    """Argmax over the last axis as torch's pooling loops pick it: the first maximum, except
    that a NaN wins and a later NaN replaces an earlier one (`val > max || isnan(val)`).
    Shared with `pooling.py`."""
    am = jnp.argmax(g, axis=-1)
    if not jnp.issubdtype(g.dtype, jnp.floating):
        return am
    isnan = jnp.isnan(g)
    last_nan = g.shape[-1] - 1 - jnp.argmax(isnan[..., ::-1], axis=-1)
    return jnp.where(isnan.any(axis=-1), last_nan, am)


def _tuple(name: str, value: Any, nd: int) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (value[0],) * nd
        if len(value) != nd:
            raise ValueError(
                f"{name} must be a single value or a tuple of {nd} values, got {list(value)}"
            )
        return tuple(value)
    return (value,) * nd


def _starts(u: Any, n: int, o: int, k: int) -> jax.Array:
    """Window starts for samples u (...,) -> (..., o), in u's float type as torch computes them."""
    i = jnp.arange(o - 1, dtype=u.dtype)
    if o > 1:
        alpha = jnp.asarray(n - k, u.dtype) / jnp.asarray(o - 1, u.dtype)
        head = ((i + u[..., None]) * alpha).astype(jnp.int32) - (u * alpha).astype(jnp.int32)[
            ..., None
        ]
    else:
        head = jnp.zeros(u.shape + (0,), jnp.int32)
    last = jnp.full(u.shape + (1,), n - k, jnp.int32)
    return jnp.concatenate([head, last], axis=-1)[..., :o]


def _fractional(
    nd: int,
    fn: str,
    input: Any,
    kernel_size: Any,
    output_size: Any,
    output_ratio: Any,
    samples: Any,
) -> tuple[jax.Array, jax.Array]:
    x = jnp.asarray(unwrap(input))
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"{fn}(): Expected {nd + 1}D or {nd + 2}D tensor, but got: {list(x.shape)}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise NotImplementedError(f"{fn}: integer `input` ({x.dtype}) is not supported")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    size = x.shape[2:]
    k = tuple(int(v) for v in _tuple("kernel_size", kernel_size, nd))
    if output_size is None and output_ratio is None:
        raise ValueError(f"{fn} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        ratio = _tuple("output_ratio", output_ratio, nd)
        out = [int(n * r) for n, r in zip(size, ratio)]
    else:
        out = [int(v) for v in _tuple("output_size", output_size, nd)]
    for n, o, kk in zip(size, out, k):
        if o + kk - 1 > n:
            raise RuntimeError(
                f"{fn}(): pool size {kk} too large relative to input size {n} and output size {o}"
            )
    batch, planes = x.shape[:2]
    if samples is None:
        samples = jax.random.uniform(next_key(), (batch, planes, nd), x.dtype)
    u = jnp.asarray(unwrap(samples)).astype(x.dtype)
    if u.shape != (batch, planes, nd):
        raise RuntimeError(
            f"{fn}(): expect _random_samples to be of shape {[batch, planes, nd]}, "
            f"got {list(u.shape)}"
        )
    # torch's sample order: 2D uses [0] for width and [1] for height; 3D uses (T, H, W)
    order = (1, 0) if nd == 2 else (0, 1, 2)
    positions = []
    for d in range(nd):
        st = _starts(u[..., order[d]], size[d], out[d], k[d])  # (N, C, o_d)
        pos = st[..., :, None] + jnp.arange(k[d])  # (N, C, o_d, k_d)
        shape = [batch, planes] + [1] * (2 * nd)
        shape[2 + d], shape[2 + nd + d] = out[d], k[d]
        positions.append(pos.reshape(shape))
    lin = positions[0]
    for d in range(1, nd):
        lin = lin * size[d] + positions[d]
    lin = jnp.broadcast_to(lin, (batch, planes, *out, *k)).reshape(batch, planes, -1)
    vals = jnp.take_along_axis(x.reshape(batch, planes, -1), lin, axis=2)
    vals = vals.reshape(batch, planes, *out, -1)
    lin = lin.reshape(batch, planes, *out, -1)
    am = torch_argmax(vals)[..., None]
    val = jnp.take_along_axis(vals, am, axis=-1)[..., 0]
    idx = jnp.take_along_axis(lin, am, axis=-1)[..., 0]
    if x64_enabled():
        idx = idx.astype(jnp.int64)
    if unbatched:
        val, idx = val[0], idx[0]
    return val, idx


def fractional_max_pool2d(
    input: Any,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int] | None = None,
    output_ratio: float | Sequence[float] | None = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> Any:
    """2D fractional max pooling. Mirrors `torch.nn.functional.fractional_max_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size: window size.
        output_size / output_ratio: the output size, or its ratio to the input size.
        return_indices: also return flat per-plane argmax indices.
        _random_samples: (N, C, 2) uniforms fixing the window placement; drawn from the global
            generator when None.

    Differences from torch: indices are int32 unless JAX's x64 mode is on.
    """
    val, idx = _fractional(
        2, "fractional_max_pool2d", input, kernel_size, output_size, output_ratio, _random_samples
    )
    return (val, idx) if return_indices else val


def fractional_max_pool3d(
    input: Any,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int] | None = None,
    output_ratio: float | Sequence[float] | None = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> Any:
    """3D fractional max pooling. Mirrors `torch.nn.functional.fractional_max_pool3d`.

    Args: as `fractional_max_pool2d`, with triples and (N, C, 3) samples.
    """
    val, idx = _fractional(
        3, "fractional_max_pool3d", input, kernel_size, output_size, output_ratio, _random_samples
    )
    return (val, idx) if return_indices else val


def fractional_max_pool2d_with_indices(
    input: Any,
    kernel_size: Any,
    output_size: Any = None,
    output_ratio: Any = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """`fractional_max_pool2d` returning (values, indices)."""
    return _fractional(
        2, "fractional_max_pool2d", input, kernel_size, output_size, output_ratio, _random_samples
    )


def fractional_max_pool3d_with_indices(
    input: Any,
    kernel_size: Any,
    output_size: Any = None,
    output_ratio: Any = None,
    return_indices: bool = False,
    _random_samples: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """`fractional_max_pool3d` returning (values, indices)."""
    return _fractional(
        3, "fractional_max_pool3d", input, kernel_size, output_size, output_ratio, _random_samples
    )
