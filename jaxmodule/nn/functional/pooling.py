"""Pooling: max, average, power-average, adaptive and unpooling, with torch's window geometry.

Windows follow torch exactly: output length floor((L + 2p - d (k - 1) - 1) / s) + 1 (ceil with
`ceil_mode`, dropping a last window that would start in the right padding). Plain max and average
pooling lower to `jax.lax.reduce_window`; the variants that return argmax indices gather the
windows explicitly so each output knows which input it came from (torch's flat per-plane index).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..._dtype import x64_enabled
from ._fractional import (
    fractional_max_pool2d,
    fractional_max_pool2d_with_indices,
    fractional_max_pool3d,
    fractional_max_pool3d_with_indices,
    torch_argmax,
)
from ._utils import unwrap

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool1d_with_indices",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d_with_indices",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "fractional_max_pool2d_with_indices",
    "fractional_max_pool3d_with_indices",
]

_IntOrSeq = int | Sequence[int]


# ---- argument handling ------------------------------------------------------------------------


def _tuple(name: str, value: Any, nd: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (int(value[0]),) * nd
        if len(value) != nd:
            raise RuntimeError(
                f"{name} must either be a single int, or a tuple of {nd} ints, got {list(value)}"
            )
        return tuple(int(v) for v in value)
    return (int(value),) * nd


def _input(fn: str, input: Any, nd: int) -> jax.Array:
    x = jnp.asarray(unwrap(input))
    if x.ndim not in (nd + 1, nd + 2) or any(n == 0 for n in x.shape[-nd - 1 :]):
        raise RuntimeError(
            f"{fn}: non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input, got "
            f"input of size {list(x.shape)}"
        )
    return x


def _out_len(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(
    fn: str,
    x: Any,
    nd: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> tuple:
    """Validate pooling arguments; return (k, s, p, d, out_sizes)."""
    k = _tuple("kernel_size", kernel_size, nd)
    s = (
        k
        if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
        else _tuple("stride", stride, nd)
    )
    p, d = _tuple("padding", padding, nd), _tuple("dilation", dilation, nd)
    if any(v <= 0 for v in k):
        raise RuntimeError(f"{fn}: kernel_size must be greater than zero, but got {list(k)}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"{fn}: stride should be greater than zero, but got {list(s)}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"{fn}: dilation should be greater than zero, but got {list(d)}")
    for pp, kk, dd in zip(p, k, d):
        if pp < 0 or pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(
                f"pad should be at most half of effective kernel size, but got pad={pp}, "
                f"kernel_size={kk} and dilation={dd}"
            )
    size = x.shape[-nd:]
    out = [_out_len(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in zip(size, k, s, p, d)]
    if any(o < 1 for o in out):
        planes = x.shape[-nd - 1]
        raise RuntimeError(
            f"Given input size: ({'x'.join(map(str, (planes, *size)))}). Calculated output size: "
            f"({'x'.join(map(str, (planes, *out)))}). Output size is too small"
        )
    return k, s, p, d, out


def _window_pads(
    size: Sequence[int], k: tuple, s: tuple, p: tuple, d: tuple, out: Sequence[int]
) -> list[tuple[int, int]]:
    """(left, right) padding so that reduce_window produces exactly `out` windows per dim."""
    pads = []
    for n, kk, ss, pp, dd, o in zip(size, k, s, p, d, out):
        need = (o - 1) * ss + dd * (kk - 1) + 1  # extent covered by the windows
        pads.append((pp, max(need - n - pp, 0)))
    return pads


def _lowest(dtype: Any) -> Any:
    return -jnp.inf if jnp.issubdtype(dtype, jnp.floating) else jnp.iinfo(dtype).min


def _index_dtype() -> Any:
    return np.int64 if x64_enabled() else np.int32


def _lead(x: Any, nd: int) -> int:
    return x.ndim - nd


# ---- gathered windows (for argmax indices) ----------------------------------------------------


def _gather(x: Any, positions: Sequence[np.ndarray]) -> jax.Array:
    """x[..., windows] -> (..., o_1..o_nd, K): positions[i] is (o_i, k_i) indices into dim -nd+i."""
    nd = len(positions)
    idx = []
    for i, pos in enumerate(positions):
        shape = [1] * (2 * nd)
        shape[i], shape[nd + i] = pos.shape
        idx.append(pos.reshape(shape))
    g = x[(Ellipsis, *idx)]
    return g.reshape(g.shape[: g.ndim - nd] + (-1,))


def _flat_table(positions: Sequence[np.ndarray], size: Sequence[int]) -> np.ndarray:
    """Flat per-plane index of every window element: (o_1..o_nd, K)."""
    nd = len(positions)
    flat = np.zeros([p.shape[0] for p in positions] + [p.shape[1] for p in positions], np.int64)
    mult = 1
    for i in reversed(range(nd)):
        shape = [1] * (2 * nd)
        shape[i], shape[nd + i] = positions[i].shape
        flat = flat + positions[i].reshape(shape) * mult
        mult *= size[i]
    return flat.reshape(flat.shape[:nd] + (-1,))


def _argmax_pool(g: Any, table: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """Max over the last axis of gathered windows, and the flat input index it came from."""
    am = torch_argmax(g)
    val = jnp.take_along_axis(g, am[..., None], axis=-1)[..., 0]
    tab = jnp.broadcast_to(jnp.asarray(table.astype(_index_dtype())), g.shape)
    idx = jnp.take_along_axis(tab, am[..., None], axis=-1)[..., 0]
    return val, idx


# ---- max pooling ------------------------------------------------------------------------------


def _max_pool(
    nd: int,
    fn: str,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    return_indices: bool,
) -> Any:
    x = _input(fn, input, nd)
    k, s, p, d, out = _geometry(fn, x, nd, kernel_size, stride, padding, dilation, ceil_mode)
    size = x.shape[-nd:]
    lead = _lead(x, nd)
    pads = _window_pads(size, k, s, p, d, out)
    low = _lowest(x.dtype)
    if not return_indices and all(v == 1 for v in d):
        return lax.reduce_window(
            x,
            np.array(low, x.dtype),
            lax.max,
            (1,) * lead + k,
            (1,) * lead + s,
            [(0, 0)] * lead + pads,
            window_dilation=(1,) * lead + d,
        )
    xp = jnp.pad(x, [(0, 0)] * lead + pads, constant_values=low)
    # window element j of output o sits at padded position o*s + j*d
    positions = [
        np.arange(o)[:, None] * ss + np.arange(kk)[None, :] * dd
        for o, ss, kk, dd in zip(out, s, k, d)
    ]
    g = _gather(xp, positions)
    orig = [np.clip(pos - pl, 0, n - 1) for pos, (pl, _), n in zip(positions, pads, size)]
    val, idx = _argmax_pool(g, _flat_table(orig, size))
    # JAX has no VJP for dilated reduce_window max, so dilated pooling also takes this path
    return (val, idx) if return_indices else val


def max_pool1d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """1D max pooling over (N, C, L) or (C, L). Mirrors `torch.nn.functional.max_pool1d`.

    Args:
        input: (N, C, L) or (C, L).
        kernel_size: window size; `stride` defaults to it.
        padding: implicit -inf padding on both sides, at most half the effective kernel.
        dilation: spacing between window elements.
        ceil_mode: use ceil instead of floor for the output length.
        return_indices: also return the flat argmax index within each (C) plane.

    Differences from torch: indices are int32 unless JAX's x64 mode is on.
    """
    return _max_pool(
        1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def max_pool2d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2D max pooling over (N, C, H, W) or (C, H, W). Mirrors `torch.nn.functional.max_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size: window size; `stride` defaults to it.
        padding: implicit -inf padding on both sides, at most half the effective kernel.
        dilation: spacing between window elements.
        ceil_mode: use ceil instead of floor for the output shape.
        return_indices: also return the flat argmax index (h * W + w) within each plane.

    Differences from torch: indices are int32 unless JAX's x64 mode is on.

    >>> import jax.numpy as jnp
    >>> max_pool2d(jnp.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """
    return _max_pool(
        2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def max_pool3d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """3D max pooling over (N, C, D, H, W) or (C, D, H, W). Mirrors `torch.nn.functional.max_pool3d`.

    Args: as `max_pool2d`, with triples.
    """
    return _max_pool(
        3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def max_pool1d_with_indices(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """`max_pool1d` returning (values, indices). Mirrors torch's."""
    return _max_pool(
        1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, True
    )


def max_pool2d_with_indices(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """`max_pool2d` returning (values, indices). Mirrors torch's."""
    return _max_pool(
        2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, True
    )


def max_pool3d_with_indices(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    dilation: _IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """`max_pool3d` returning (values, indices). Mirrors torch's."""
    return _max_pool(
        3, "max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, True
    )


# ---- average pooling --------------------------------------------------------------------------


def _acc_dtype(dtype: Any) -> Any:
    """Half types accumulate in float32, as torch's CPU/GPU kernels do."""
    return jnp.float32 if dtype in (jnp.float16, jnp.bfloat16) else dtype


def _avg_pool(
    nd: int,
    fn: str,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> jax.Array:
    x = _input(fn, input, nd)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise NotImplementedError(
            f"{fn}: integer `input` ({x.dtype}) is not supported; pass a floating array"
        )
    if divisor_override is not None and int(divisor_override) == 0:
        raise RuntimeError("divisor must be not zero")
    k, s, p, d, out = _geometry(fn, x, nd, kernel_size, stride, padding, 1, ceil_mode)
    size = x.shape[-nd:]
    lead = _lead(x, nd)
    pads = _window_pads(size, k, s, p, d, out)
    acc = _acc_dtype(x.dtype)
    total = lax.reduce_window(
        x.astype(acc),
        np.array(0, acc),
        lax.add,
        (1,) * lead + k,
        (1,) * lead + s,
        [(0, 0)] * lead + pads,
    )
    if divisor_override is not None:
        return (total / int(divisor_override)).astype(x.dtype)
    divisor = np.ones((), np.int64)
    for n, kk, ss, pp, o in zip(size, k, s, p, out):
        start = np.arange(o) * ss - pp
        end = np.minimum(start + kk, n + pp)
        if count_include_pad:
            cnt = end - start
        else:
            cnt = np.minimum(end, n) - np.maximum(start, 0)
        divisor = np.multiply.outer(divisor, cnt)
    return (total / jnp.asarray(divisor, acc)).astype(x.dtype)


def avg_pool1d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> jax.Array:
    """1D average pooling. Mirrors `torch.nn.functional.avg_pool1d`.

    Args:
        input: (N, C, L) or (C, L).
        kernel_size: window size; `stride` defaults to it.
        padding: implicit zero padding on both sides, at most half the kernel.
        ceil_mode: use ceil instead of floor for the output length.
        count_include_pad: count the zero padding in the divisor.
    """
    return _avg_pool(
        1, "avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )


def avg_pool2d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> jax.Array:
    """2D average pooling. Mirrors `torch.nn.functional.avg_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size: window size; `stride` defaults to it.
        padding: implicit zero padding on both sides, at most half the kernel.
        ceil_mode: use ceil instead of floor for the output shape.
        count_include_pad: count the zero padding in the divisor.
        divisor_override: divide every window sum by this instead.
    """
    return _avg_pool(
        2,
        "avg_pool2d",
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


def avg_pool3d(
    input: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> jax.Array:
    """3D average pooling. Mirrors `torch.nn.functional.avg_pool3d`.

    Args: as `avg_pool2d`, with triples.
    """
    return _avg_pool(
        3,
        "avg_pool3d",
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


# ---- power-average pooling --------------------------------------------------------------------


def _lp_pool(
    nd: int, input: Any, norm_type: float, kernel_size: Any, stride: Any, ceil_mode: bool
) -> jax.Array:
    x = jnp.asarray(unwrap(input))
    maxp = (max_pool1d, max_pool2d, max_pool3d)[nd - 1]
    avgp = (avg_pool1d, avg_pool2d, avg_pool3d)[nd - 1]
    if norm_type == math.inf:
        return maxp(jnp.abs(x), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -maxp(-jnp.abs(x), kernel_size, stride, 0, 1, ceil_mode)
    out = avgp(x**norm_type, kernel_size, stride, 0, ceil_mode)
    k = _tuple("kernel_size", kernel_size, nd)
    return (jnp.sign(out) * jax.nn.relu(jnp.abs(out)) * math.prod(k)) ** (1.0 / norm_type)


def lp_pool1d(
    input: Any,
    norm_type: float,
    kernel_size: int,
    stride: _IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
    """1D power-average pooling, (sum x^p)^(1/p) per window. Mirrors `torch.nn.functional.lp_pool1d`."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: Any,
    norm_type: float,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
    """2D power-average pooling. Mirrors `torch.nn.functional.lp_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        norm_type: the power p (inf gives max pooling of |x|).
        kernel_size, stride, ceil_mode: as `avg_pool2d` (no padding).
    """
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(
    input: Any,
    norm_type: float,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> jax.Array:
    """3D power-average pooling. Mirrors `torch.nn.functional.lp_pool3d`."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# ---- adaptive pooling -------------------------------------------------------------------------


def _adaptive_sizes(fn: str, x: Any, nd: int, output_size: Any) -> list[int]:
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != nd:
            raise RuntimeError(f"{fn}: output_size must be {nd}")
        sizes = list(output_size)
    else:
        sizes = [output_size] * nd
    sizes = [x.shape[-nd + i] if v is None else int(v) for i, v in enumerate(sizes)]
    if any(v < 0 for v in sizes):
        raise RuntimeError(
            f"{fn}: elements of output_size must be greater than or equal to 0 but received {sizes}"
        )
    return sizes


def _adaptive_input(fn: str, input: Any, nd: int) -> jax.Array:
    x = jnp.asarray(unwrap(input))
    if x.ndim not in (nd + 1, nd + 2) or any(n == 0 for n in x.shape[-nd:]):
        raise RuntimeError(
            f"{fn}(): Expected {nd + 1}D or {nd + 2}D tensor, but got {list(x.shape)}"
        )
    return x


def _bins(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive bins: [floor(i n / o), ceil((i + 1) n / o))."""
    i = np.arange(o)
    return (i * n) // o, ((i + 1) * n + o - 1) // o


def _adaptive_avg(nd: int, fn: str, input: Any, output_size: Any) -> jax.Array:
    x = _adaptive_input(fn, input, nd)
    sizes = _adaptive_sizes(fn, x, nd, output_size)
    acc = _acc_dtype(x.dtype)
    y = x.astype(acc)
    for i, o in enumerate(sizes):
        n = x.shape[-nd + i]
        start, end = _bins(n, o)
        cols = np.arange(n)
        inside = (cols[None, :] >= start[:, None]) & (cols[None, :] < end[:, None])
        mat = inside / (end - start)[:, None]
        axis = y.ndim - nd + i
        y = jnp.moveaxis(
            jnp.tensordot(
                y, jnp.asarray(mat.T, acc), axes=([axis], [0]), precision=lax.Precision.HIGHEST
            ),
            -1,
            axis,
        )
    return y.astype(x.dtype)


def adaptive_avg_pool1d(input: Any, output_size: int | Sequence[int]) -> jax.Array:
    """Adaptive 1D average pooling to a fixed length. Mirrors `torch.nn.functional.adaptive_avg_pool1d`."""
    return _adaptive_avg(1, "adaptive_avg_pool1d", input, output_size)


def adaptive_avg_pool2d(input: Any, output_size: int | Sequence[int | None]) -> jax.Array:
    """Adaptive 2D average pooling. Mirrors `torch.nn.functional.adaptive_avg_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        output_size: int or (H_out, W_out); None keeps that input size.
    """
    return _adaptive_avg(2, "adaptive_avg_pool2d", input, output_size)


def adaptive_avg_pool3d(input: Any, output_size: int | Sequence[int | None]) -> jax.Array:
    """Adaptive 3D average pooling. Mirrors `torch.nn.functional.adaptive_avg_pool3d`."""
    return _adaptive_avg(3, "adaptive_avg_pool3d", input, output_size)


def _adaptive_max(nd: int, fn: str, input: Any, output_size: Any, return_indices: bool) -> Any:
    x = _adaptive_input(fn, input, nd)
    sizes = _adaptive_sizes(fn, x, nd, output_size)
    size = x.shape[-nd:]
    positions = []
    for n, o in zip(size, sizes):
        start, end = _bins(n, o)
        kmax = int((end - start).max()) if o else 1
        # repeat a bin's last element to fill it to kmax: the max and the first argmax are unchanged
        positions.append(np.minimum(start[:, None] + np.arange(kmax)[None, :], end[:, None] - 1))
    val, idx = _argmax_pool(_gather(x, positions), _flat_table(positions, size))
    return (val, idx) if return_indices else val


def adaptive_max_pool1d(
    input: Any, output_size: int | Sequence[int], return_indices: bool = False
) -> Any:
    """Adaptive 1D max pooling. Mirrors `torch.nn.functional.adaptive_max_pool1d`."""
    return _adaptive_max(1, "adaptive_max_pool1d", input, output_size, return_indices)


def adaptive_max_pool2d(
    input: Any, output_size: int | Sequence[int | None], return_indices: bool = False
) -> Any:
    """Adaptive 2D max pooling. Mirrors `torch.nn.functional.adaptive_max_pool2d`.

    Args:
        input: (N, C, H, W) or (C, H, W).
        output_size: int or (H_out, W_out); None keeps that input size.
        return_indices: also return flat per-plane argmax indices.
    """
    return _adaptive_max(2, "adaptive_max_pool2d", input, output_size, return_indices)


def adaptive_max_pool3d(
    input: Any, output_size: int | Sequence[int | None], return_indices: bool = False
) -> Any:
    """Adaptive 3D max pooling. Mirrors `torch.nn.functional.adaptive_max_pool3d`."""
    return _adaptive_max(3, "adaptive_max_pool3d", input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(
    input: Any, output_size: Any, return_indices: bool = False
) -> Any:
    """`adaptive_max_pool1d` returning (values, indices)."""
    return _adaptive_max(1, "adaptive_max_pool1d", input, output_size, True)


def adaptive_max_pool2d_with_indices(
    input: Any, output_size: Any, return_indices: bool = False
) -> Any:
    """`adaptive_max_pool2d` returning (values, indices)."""
    return _adaptive_max(2, "adaptive_max_pool2d", input, output_size, True)


def adaptive_max_pool3d_with_indices(
    input: Any, output_size: Any, return_indices: bool = False
) -> Any:
    """`adaptive_max_pool3d` returning (values, indices)."""
    return _adaptive_max(3, "adaptive_max_pool3d", input, output_size, True)


# ---- unpooling --------------------------------------------------------------------------------


def _unpool_size(x: Any, nd: int, k: tuple, s: tuple, p: tuple, output_size: Any) -> list[int]:
    default = [(x.shape[-nd + i] - 1) * s[i] + k[i] - 2 * p[i] for i in range(nd)]
    if output_size is None:
        return default
    output_size = (
        list(output_size) if isinstance(output_size, (list, tuple)) else [output_size] * nd
    )
    if len(output_size) == nd + 2:
        output_size = output_size[2:]
    if len(output_size) != nd:
        raise ValueError(
            f"output_size should be a sequence containing {nd} or {nd + 2} elements, but it has a "
            f"length of '{len(output_size)}'"
        )
    for i in range(nd):
        lo, hi = default[i] - s[i], default[i] + s[i]
        if not lo < output_size[i] < hi:
            raise ValueError(
                f'invalid output_size "{output_size}" (dim {i} must be between {lo} and {hi})'
            )
    return [int(v) for v in output_size]


def _max_unpool(
    nd: int,
    fn: str,
    input: Any,
    indices: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    output_size: Any,
) -> jax.Array:
    x, idx = jnp.asarray(unwrap(input)), jnp.asarray(unwrap(indices))
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"{fn}: expected {nd + 1}D or {nd + 2}D input, got input of size {list(x.shape)}"
        )
    if idx.shape != x.shape:
        raise RuntimeError(
            f"Expected shape of indices to be same as that of the input tensor ({list(x.shape)}) but "
            f"got indices tensor with shape: {list(idx.shape)}"
        )
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise RuntimeError(f"elements in indices should be type int64 but got: {idx.dtype}")
    k = _tuple("kernel_size", kernel_size, nd)
    s = k if stride is None else _tuple("stride", stride, nd)
    p = _tuple("padding", padding, nd)
    out = _unpool_size(x, nd, k, s, p, output_size)
    plane = math.prod(out)
    if not isinstance(idx, jax.core.Tracer):
        bad = np.asarray(idx)
        bad = bad[(bad < 0) | (bad >= plane)]
        if bad.size:
            raise RuntimeError(
                f"Found an invalid max index: {int(bad.flat[0])} (output volumes are of size "
                f"{'x'.join(map(str, out))})"
            )
    lead = x.shape[: x.ndim - nd]
    rows = math.prod(lead)
    flat_x, flat_i = x.reshape(rows, -1), idx.reshape(rows, -1)
    return _scatter_rows(flat_x, flat_i, plane).reshape(*lead, *out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _scatter_rows(values: Any, index: Any, plane: int) -> jax.Array:
    """Row r of the result is zeros(plane) with values[r] written at index[r]."""
    rows = values.shape[0]
    return (
        jnp.zeros((rows, plane), values.dtype)
        .at[jnp.arange(rows)[:, None], index]
        .set(values, mode="drop")
    )


def _scatter_fwd(values: Any, index: Any, plane: int) -> tuple:
    return _scatter_rows(values, index, plane), index


def _scatter_bwd(plane: int, index: Any, g: Any) -> tuple:
    # torch's backward gathers the output gradient at each index, so an index that several
    # overlapping windows share hands the full gradient to each of them
    gi = jnp.take_along_axis(g, jnp.clip(index, 0, plane - 1), axis=1)
    return gi, np.zeros(index.shape, jax.dtypes.float0)


_scatter_rows.defvjp(_scatter_fwd, _scatter_bwd)


def max_unpool1d(
    input: Any,
    indices: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> jax.Array:
    """Partial inverse of `max_pool1d`. Mirrors `torch.nn.functional.max_unpool1d`.

    Differences from torch: under `jax.jit` invalid indices cannot be checked and are dropped.
    """
    return _max_unpool(1, "max_unpool1d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(
    input: Any,
    indices: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> jax.Array:
    """Partial inverse of `max_pool2d`: scatter values to their indices, zeros elsewhere.

    Mirrors `torch.nn.functional.max_unpool2d`.

    Args:
        input: pooled values (N, C, H, W) or (C, H, W).
        indices: the indices returned by `max_pool2d(..., return_indices=True)`.
        kernel_size, stride, padding: those of the pooling; `output_size` resolves ambiguity.

    Differences from torch: under `jax.jit` invalid indices cannot be checked and are dropped.
    """
    return _max_unpool(2, "max_unpool2d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(
    input: Any,
    indices: Any,
    kernel_size: _IntOrSeq,
    stride: _IntOrSeq | None = None,
    padding: _IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> jax.Array:
    """Partial inverse of `max_pool3d`. Mirrors `torch.nn.functional.max_unpool3d`.

    Differences from torch: under `jax.jit` invalid indices cannot be checked and are dropped.
    """
    return _max_unpool(3, "max_unpool3d", input, indices, kernel_size, stride, padding, output_size)
