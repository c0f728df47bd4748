"""Normalization functions: batch, instance, layer, group, RMS and local-response norms, normalize.

Mirrors the normalization part of `torch.nn.functional`. JAX arrays are immutable, so where torch
updates running statistics in place, the private `_batch_norm_and_stats` / `_instance_norm_and_stats`
return the new statistics for the calling module to store; the public functions return only the
output, as torch's do (the statistics they would have written are dropped).

Statistics of float16/bfloat16 inputs are computed in float32 (torch's "opmath" type) and the
output is cast back to the input dtype, as torch does on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._utils import unwrap

__all__ = [
    "batch_norm",
    "instance_norm",
    "layer_norm",
    "group_norm",
    "rms_norm",
    "local_response_norm",
    "normalize",
]

Array = jax.Array


# ---- shared helpers ----------------------------------------------------------------------------
def _compute_dtype(dtype: Any) -> Any:
    """The dtype statistics are computed in: float32 for 16-bit floats, else the dtype itself."""
    if dtype in (jnp.float16, jnp.bfloat16):
        return jnp.dtype(jnp.float32)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return jnp.dtype(jnp.float32)
    return jnp.dtype(dtype)


def _shape_list(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _size_repr(shape: Sequence[int]) -> str:
    return "torch.Size(" + _shape_list(shape) + ")"


def _channel_view(v: Array, ndim: int) -> Array:
    """A per-channel vector (C,) reshaped to broadcast against an (N, C, *) input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _check_vector(v: Any, name: str, expected: int, count: int = 1) -> None:
    if v is not None and v.size != expected:
        raise RuntimeError(
            f"{name} should contain {expected * count} elements not {v.size * count}"
        )


def _affine(y: Array, weight: Any, bias: Any, view: Any) -> Array:
    if weight is not None:
        y = y * view(weight)
    if bias is not None:
        y = y + view(bias)
    return y


def _mean_var(x: Array, axes: tuple[int, ...]) -> tuple[Array, Array, int]:
    """Mean and the sum of squared deviations over `axes` (two-pass, for accuracy)."""
    n = math.prod(x.shape[a] for a in axes)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    ssd = jnp.sum(jnp.square(x - mean), axis=axes, keepdims=True)
    return mean, ssd, n


def _running_update(running: Array, batch_stat: Array, momentum: Any) -> Array:
    """torch's exponential moving average: (1 - momentum) * running + momentum * batch_stat."""
    batch_stat = lax.stop_gradient(batch_stat)
    new = (1 - momentum) * running.astype(batch_stat.dtype) + momentum * batch_stat
    return new.astype(running.dtype)


def _channel_norm(
    x: Array,
    rm: Array | None,
    rv: Array | None,
    w: Array | None,
    b: Array | None,
    use_input_stats: bool,
    axes: tuple[int, ...],
    batch_stat: Any,
    momentum: Any,
    eps: float,
) -> tuple[Array, Array | None, Array | None]:
    """Normalise `x` per channel (dim 1) and update the running statistics.

    With `use_input_stats`, normalise by the mean and biased variance over `axes`; `batch_stat`
    reduces such a keepdims statistic to `(C,)` for the running update (which uses the unbiased
    variance). Otherwise normalise by `rm` and `rv`. Batch and instance norm share this.
    """
    cdt = _compute_dtype(x.dtype)
    xc = x.astype(cdt)
    view = lambda v: _channel_view(jnp.asarray(v).astype(cdt), x.ndim)  # noqa: E731
    if use_input_stats:
        mean, ssd, n = _mean_var(xc, axes)
        y = (xc - mean) * lax.rsqrt(ssd / n + eps)
        if rm is not None:
            rm = _running_update(rm, batch_stat(mean), momentum)
        if rv is not None:
            rv = _running_update(rv, batch_stat(ssd) / (n - 1), momentum)
    else:
        y = (xc - view(rm)) * lax.rsqrt(view(rv) + eps)
    y = _affine(y, w, b, view)
    return y.astype(x.dtype), rm, rv


def _verify_batch_size(shape: Sequence[int], as_size: bool = True) -> None:
    shape = tuple(shape)
    if math.prod(shape[:1] + shape[2:]) == 1:
        got = _size_repr(shape) if as_size else _shape_list(shape)
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {got}"
        )


def _verify_spatial_size(shape: Sequence[int]) -> None:
    if math.prod(shape[2:]) == 1:
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {_size_repr(shape)}"
        )


# ---- batch norm --------------------------------------------------------------------------------
def _batch_norm_and_stats(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: Any = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]:
    """`batch_norm` that also returns the updated running statistics.

    Returns `(output, new_running_mean, new_running_var)`. The statistics are those torch would
    write in place: updated when `training` and they are given, else returned unchanged (or None
    when not given). `momentum` may be a traced scalar (BatchNorm's cumulative average uses
    `1 / num_batches_tracked`). The running variance is updated with the unbiased batch variance;
    the output is normalised with the biased one, as in torch.
    """
    x = unwrap(input)
    rm, rv, w, b = unwrap(running_mean), unwrap(running_var), unwrap(weight), unwrap(bias)
    if x.ndim < 2:
        raise IndexError(
            "Dimension out of range (expected to be in range of [-1, 0], but got 1)"
            if x.ndim == 1
            else "batch_norm: expected an input with at least 2 dimensions, got 0"
        )
    if training:
        _verify_batch_size(x.shape)
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    c = x.shape[1]
    if not training:
        if rm is None:
            raise RuntimeError("running_mean must be defined in evaluation mode")
        if rv is None:
            raise RuntimeError("running_var must be defined in evaluation mode")
    for v, name in ((rm, "running_mean"), (rv, "running_var"), (w, "weight"), (b, "bias")):
        _check_vector(v, name, c)

    # n > 1 in training: verified above.
    return _channel_norm(
        x,
        rm,
        rv,
        w,
        b,
        training,
        (0,) + tuple(range(2, x.ndim)),
        lambda s: s.reshape(c),
        momentum,
        eps,
    )


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array:
    """Batch normalization over the channel dimension (dim 1). Mirrors `F.batch_norm`.

    Args:
        input: `(N, C, *)`.
        running_mean, running_var: `(C,)` statistics used when `training` is False.
        weight, bias: optional `(C,)` affine parameters.
        training: normalise with batch statistics.
        momentum: factor of the running-statistics update.
        eps: added to the variance.

    Difference from torch: JAX arrays are immutable, so the running statistics passed in are not
    updated; `jaxmodule.nn.BatchNorm*d` stores the updated statistics itself.

    >>> import jax.numpy as jnp
    >>> batch_norm(jnp.array([[1.0], [3.0]]), None, None, training=True).round(3).tolist()
    [[-1.0], [1.0]]
    """
    return _batch_norm_and_stats(
        input, running_mean, running_var, weight, bias, training, momentum, eps
    )[0]


# ---- instance norm -----------------------------------------------------------------------------
def _instance_norm_and_stats(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: Any = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]:
    """`instance_norm` that also returns the updated running statistics (see `_batch_norm_and_stats`).

    As in torch, the running statistics are updated with the per-instance statistics averaged
    over the batch.
    """
    x = unwrap(input)
    rm, rv, w, b = unwrap(running_mean), unwrap(running_var), unwrap(weight), unwrap(bias)
    if use_input_stats:
        _verify_spatial_size(x.shape)
    n_, c = x.shape[0], x.shape[1]
    if not use_input_stats and (rm is None or rv is None):
        raise RuntimeError(
            "Expected running_mean and running_var to be defined when use_input_stats is false"
        )
    for v, name in ((rm, "running_mean"), (rv, "running_var"), (w, "weight"), (b, "bias")):
        if v is not None and v.size != c:
            raise RuntimeError(f"{name} should contain {n_ * c} elements not {v.size * n_}")

    return _channel_norm(
        x,
        rm,
        rv,
        w,
        b,
        use_input_stats,
        tuple(range(2, x.ndim)),
        lambda s: jnp.mean(s.reshape(n_, c), axis=0),
        momentum,
        eps,
    )


def instance_norm(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array:
    """Normalize each channel of each sample over its spatial dims. Mirrors `F.instance_norm`.

    Args:
        input: `(N, C, *)`.
        running_mean, running_var: optional `(C,)` statistics; used when `use_input_stats` is False.
        weight, bias: optional `(C,)` affine parameters.
        use_input_stats: normalise with the statistics of each instance.
        momentum: factor of the running-statistics update.
        eps: added to the variance.

    Difference from torch: the running statistics passed in are not updated (arrays are
    immutable); `jaxmodule.nn.InstanceNorm*d` stores the updated statistics itself.
    """
    return _instance_norm_and_stats(
        input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps
    )[0]


# ---- layer / rms / group norm ------------------------------------------------------------------
def _normalized_dims(
    x: Array, normalized_shape: Any, fn: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = (
        (int(normalized_shape),)
        if isinstance(normalized_shape, int)
        else tuple(int(s) for s in normalized_shape)
    )
    if len(shape) == 0:
        raise RuntimeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at least "
            "one element, but got normalized_shape = []"
        )
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != shape:
        inner = ", ".join(str(s) for s in shape)
        star = f"[*, {inner}]" if fn == "layer_norm" else f"[*{inner}]"
        raise RuntimeError(
            f"Given normalized_shape={_shape_list(shape)}, expected input with shape {star}, "
            f"but got input of size{_shape_list(x.shape)}"
        )
    return shape, tuple(range(x.ndim - k, x.ndim))


def _check_param_shape(v: Any, name: str, shape: tuple[int, ...]) -> None:
    if v is not None and tuple(v.shape) != shape:
        raise RuntimeError(
            f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
            f"{_shape_list(v.shape)} and normalized_shape = {_shape_list(shape)}"
        )


def layer_norm(
    input: Any,
    normalized_shape: Sequence[int] | int,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Array:
    """Normalize over the trailing `normalized_shape` dims. Mirrors `F.layer_norm`.

    Args:
        input: `(*, *normalized_shape)`.
        normalized_shape: the trailing shape to normalize over.
        weight, bias: optional arrays of shape `normalized_shape`.
        eps: added to the variance.

    >>> import jax.numpy as jnp
    >>> layer_norm(jnp.array([[1.0, 3.0]]), [2]).round(3).tolist()
    [[-1.0, 1.0]]
    """
    x, w, b = unwrap(input), unwrap(weight), unwrap(bias)
    shape, axes = _normalized_dims(x, normalized_shape, "layer_norm")
    _check_param_shape(w, "weight", shape)
    _check_param_shape(b, "bias", shape)
    cdt = _compute_dtype(x.dtype)
    xc = x.astype(cdt)
    mean, ssd, n = _mean_var(xc, axes)
    y = (xc - mean) * lax.rsqrt(ssd / n + eps)
    y = _affine(y, w, b, lambda v: v.astype(cdt))
    return y.astype(x.dtype)


def rms_norm(
    input: Any,
    normalized_shape: Sequence[int] | int,
    weight: Any = None,
    eps: float | None = None,
) -> Array:
    """Root-mean-square normalization over the trailing dims. Mirrors `F.rms_norm`.

    Args:
        input: `(*, *normalized_shape)`.
        normalized_shape: the trailing shape to normalize over.
        weight: optional array of shape `normalized_shape`.
        eps: added to the mean square; None means the machine epsilon of the compute dtype
            (float32's for float16/bfloat16 inputs, which torch computes in float32).
    """
    x, w = unwrap(input), unwrap(weight)
    shape, axes = _normalized_dims(x, normalized_shape, "rms_norm")
    _check_param_shape(w, "weight", shape)
    cdt = _compute_dtype(x.dtype)
    if eps is None:
        eps = float(jnp.finfo(cdt).eps)
    xc = x.astype(cdt)
    y = (xc * lax.rsqrt(jnp.mean(jnp.square(xc), axis=axes, keepdims=True) + eps)).astype(x.dtype)
    if w is not None:
        y = y * w
    return y


def group_norm(
    input: Any,
    num_groups: int,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Array:
    """Normalize over groups of channels. Mirrors `F.group_norm`.

    Args:
        input: `(N, C, *)` with `C` divisible by `num_groups`.
        num_groups: number of channel groups.
        weight, bias: optional `(C,)` affine parameters.
        eps: added to the variance.
    """
    x, w, b = unwrap(input), unwrap(weight), unwrap(bias)
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    n_, c = x.shape[0], x.shape[1]
    _verify_batch_size((n_ * c // num_groups, num_groups) + tuple(x.shape[2:]), as_size=False)
    if c % num_groups != 0:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input "
            f"of shape {_shape_list(x.shape)} and num_groups={num_groups}"
        )
    for v, name in ((w, "weight"), (b, "bias")):
        if v is not None and (v.ndim != 1 or v.shape[0] != c):
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {_shape_list(v.shape)} and input of shape "
                f"{_shape_list(x.shape)}"
            )
    cdt = _compute_dtype(x.dtype)
    xg = x.astype(cdt).reshape(n_, num_groups, -1)
    mean, ssd, n = _mean_var(xg, (2,))
    y = ((xg - mean) * lax.rsqrt(ssd / n + eps)).reshape(x.shape)
    y = _affine(y, w, b, lambda v: _channel_view(v.astype(cdt), x.ndim))
    return y.astype(x.dtype)


# ---- local response norm -----------------------------------------------------------------------
def local_response_norm(
    input: Any,
    size: int,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
) -> Array:
    """Normalize each channel by the energy of its `size` neighbouring channels.

    Mirrors `F.local_response_norm`: `x / (k + alpha / size * sum_window(x^2)) ** beta`, the
    window running over dim 1, zero-padded by `size // 2` before and `(size - 1) // 2` after.

    Args:
        input: `(N, C, *)`, at least 3-D.
        size: number of neighbouring channels in the window.
        alpha, beta, k: the formula's constants.
    """
    x = unwrap(input)
    if x.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {x.ndim} dimensions)")
    if x.size == 0:
        return x
    sq = jnp.square(x)
    pad = [(0, 0)] * x.ndim
    pad[1] = (size // 2, (size - 1) // 2)
    window = (1, size) + (1,) * (x.ndim - 2)
    summed = lax.reduce_window(
        jnp.pad(sq, pad), np.zeros((), sq.dtype), lax.add, window, (1,) * x.ndim, "VALID"
    )
    div = (summed / size * alpha + k) ** beta
    return x / div


# ---- normalize ---------------------------------------------------------------------------------
def _safe_sqrt(s: Array) -> Array:
    """sqrt with a zero (not NaN/inf) gradient at 0, as torch's norm backward masks it."""
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1)), 0)


def _pnorm(x: Array, p: float, axis: Any, keepdims: bool) -> Array:
    """torch's vector p-norm (`Tensor.norm(p, dim)`) with torch's zero-norm gradient convention."""
    a = jnp.abs(x)
    if p == 2:
        return _safe_sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims))
    if p == math.inf:
        return jnp.max(a, axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return jnp.min(a, axis=axis, keepdims=keepdims)
    if p == 0:
        return jnp.sum((x != 0).astype(x.dtype), axis=axis, keepdims=keepdims)
    if p == 1:
        return jnp.sum(a, axis=axis, keepdims=keepdims)
    s = jnp.sum(a**p, axis=axis, keepdims=keepdims)
    pos = s > 0
    return jnp.where(pos, jnp.where(pos, s, 1) ** (1.0 / p), 0)


def normalize(
    input: Any,
    p: float = 2.0,
    dim: int | Sequence[int] = 1,
    eps: float = 1e-12,
    out: Any = None,
) -> Array:
    """Divide by the `p`-norm along `dim`, clamped below at `eps`. Mirrors `F.normalize`.

    Args:
        input: any shape.
        p: the norm's exponent.
        dim: dimension (or dimensions) to reduce.
        eps: lower bound of the divisor.
        out: not supported (arrays are immutable); passing it raises NotImplementedError.
    """
    if out is not None:
        raise NotImplementedError(
            "normalize: `out` is not supported (JAX arrays are immutable); use the returned array"
        )
    x = unwrap(input)
    axes = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    for a in axes:
        if not -max(x.ndim, 1) <= a < max(x.ndim, 1):
            lo, hi = -max(x.ndim, 1), max(x.ndim, 1) - 1
            raise IndexError(
                f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {a})"
            )
    denom = jnp.maximum(_pnorm(x, float(p), axes, keepdims=True), eps)
    return x / denom


# ---- CrossMapLRN2d (legacy Lua-torch LRN; used only by nn.CrossMapLRN2d) -------------------------
def _cross_map_masks(size: int, channels: int) -> tuple[Any, Any]:
    """The channel windows of torch's CrossMapLRN2d forward and backward, as (C, C) 0/1 matrices.

    torch's forward slides a running sum whose first channel is never subtracted (it tests
    `c > pre_pad`, not `>=`), and its backward uses a different, symmetric window; both are
    reproduced exactly here.
    """
    c = np.arange(channels)[:, None]
    j = np.arange(channels)[None, :]
    pre_pad = int((size - 1) / 2 + 1)
    fwd = (j <= c + pre_pad - 1) & ~((j >= 1) & (j <= c - pre_pad))
    inv = int(size - (size - 1) / 2)
    bwd = (j >= c - inv) & (j <= c + size - 1 - inv)
    return fwd.astype(np.float32), bwd.astype(np.float32)


def _cross_map_lrn2d(
    input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Array:
    """torch's `CrossMapLRN2d` function: forward and its hand-written backward."""
    x = unwrap(input)
    if x.ndim != 4:
        raise ValueError(f"CrossMapLRN2d: Expected input to be 4D, got {x.ndim}D instead.")
    fwd_np, bwd_np = _cross_map_masks(size, x.shape[1])

    def scale_of(v: Array) -> Array:
        s = jnp.einsum("cj,njhw->nchw", jnp.asarray(fwd_np, v.dtype), jnp.square(v))
        return s * (alpha / size) + k

    @jax.custom_vjp
    def f(v: Array) -> Array:
        return v * scale_of(v) ** -beta

    def f_fwd(v: Array) -> tuple[Array, tuple[Array, Array, Array]]:
        scale = scale_of(v)
        out = v * scale**-beta
        return out, (v, out, scale)

    def f_bwd(res: tuple[Array, Array, Array], g: Array) -> tuple[Array]:
        v, out, scale = res
        ratio = g * out / scale
        accum = jnp.einsum("cj,njhw->nchw", jnp.asarray(bwd_np, v.dtype), ratio)
        return (scale**-beta * g - (2 * alpha * beta / size) * v * accum,)

    f.defvjp(f_fwd, f_bwd)
    return f(x)
