"""Padding, resampling and channel/pixel rearrangement: `pad`, `interpolate`, `pixel_shuffle`, ...

Resampling reproduces torch's CPU kernels: source indices and interpolation weights are computed
once per output position, in float32 with torch's formulas (including its special cases for
unchanged and doubled sizes), then applied one spatial dimension at a time with gathers.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._grid import affine_grid, grid_sample
from ._utils import unwrap
from .pooling import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d

__all__ = [
    "pad",
    "interpolate",
    "upsample",
    "upsample_nearest",
    "upsample_bilinear",
    "pixel_shuffle",
    "pixel_unshuffle",
    "channel_shuffle",
    "native_channel_shuffle",
    "affine_grid",
    "grid_sample",
]


# ---- pad --------------------------------------------------------------------------------------

_NON_CONSTANT_HELP = (
    "Supported combinations for non-constant padding:\n"
    "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
    "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
    "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
)


def _source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each output position along a padded dim, the input position it copies."""
    j = np.arange(-lo, n + hi)
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j >= n, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    return np.mod(j, n)  # circular


def pad(
    input: Any, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> jax.Array:
    """Pad the trailing dimensions. Mirrors `torch.nn.functional.pad`.

    Args:
        input: any array.
        pad: (left, right) pairs starting from the LAST dimension, as in torch: (1, 1, 2, 0) pads
            the last dim by 1 on both sides and the second-to-last by 2 at the start. Negative
            values crop.
        mode: 'constant', 'reflect', 'replicate' or 'circular'.
        value: fill value for 'constant' (default 0).

    >>> import jax.numpy as jnp
    >>> pad(jnp.ones((1, 2, 2)), (1, 0), value=5.0)[0].tolist()
    [[5.0, 1.0, 1.0], [5.0, 1.0, 1.0]]
    """
    x = jnp.asarray(unwrap(input))
    pad = [int(p) for p in pad]
    if len(pad) % 2 != 0:
        raise RuntimeError("Padding length must be divisible by 2")
    npairs = len(pad) // 2
    if npairs > x.ndim:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but got "
            f"padding length {len(pad)} and input of dimension {x.ndim}"
        )
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(npairs)]  # pairs[i] pads dim -1 - i
    if mode == "constant":
        fill = 0 if value is None else value
        config = [(0, 0, 0)] * (x.ndim - npairs) + [(lo, hi, 0) for lo, hi in reversed(pairs)]
        for (lo, hi, _), n in zip(config, x.shape):
            if n + lo + hi < 0:
                raise RuntimeError(
                    f"constant padding ({lo}, {hi}) gives a negative size for a dimension of size {n}"
                )
        return lax.pad(x, jnp.array(fill, x.dtype), config)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    if npairs not in (1, 2, 3) or x.ndim not in (npairs + 1, npairs + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {x.ndim}D input tensor.\n{_NON_CONSTANT_HELP}"
        )
    for i, (lo, hi) in enumerate(pairs):
        axis = x.ndim - 1 - i
        n = x.shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                f"Argument #4: Padding size should be less than the corresponding input dimension, "
                f"but got: padding ({lo}, {hi}) at dimension {axis} of input {list(x.shape)}"
            )
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if n + lo + hi < 0 or (mode == "replicate" and n + lo + hi <= 0):
            raise RuntimeError(
                f"padding ({lo}, {hi}) at dimension {axis} of input {list(x.shape)} gives an "
                "empty or negative size"
            )
        # negative sides crop first; positive sides then pad relative to the cropped array
        start, stop = max(-lo, 0), n - max(-hi, 0)
        x = lax.slice_in_dim(x, start, stop, axis=axis)
        lo, hi = max(lo, 0), max(hi, 0)
        if lo or hi:
            x = jnp.take(x, jnp.asarray(_source_index(stop - start, lo, hi, mode)), axis=axis)
    return x


# ---- interpolate ------------------------------------------------------------------------------

_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")
_NEEDS = {"linear": 3, "bilinear": 4, "trilinear": 5, "bicubic": 4}


def _scale_f32(n: int, o: int, align_corners: bool, scale: float | None) -> np.float32:
    """torch's area_pixel_compute_scale in float32."""
    if align_corners:
        return np.float32(n - 1) / np.float32(o - 1) if o > 1 else np.float32(0)
    if scale is not None and scale > 0:
        return np.float32(1.0 / scale)
    return np.float32(n) / np.float32(o)


def _nearest_taps(n: int, o: int, scale: float | None, exact: bool, shortcut: bool) -> tuple:
    """Nearest source index; `shortcut`: torch's 2D CPU kernel copies for o == n and halves for
    o == 2n, whatever the scale factor (its 1D and 3D kernels always use the formula)."""
    i = np.arange(o)
    s = (
        np.float32(1.0 / scale)
        if scale is not None and scale > 0
        else np.float32(n) / np.float32(o)
    )
    if exact:
        src = np.floor(((i + 0.5) * np.float64(s)).astype(np.float32)).astype(np.int64)
    elif shortcut and o == n:
        src = i
    elif shortcut and o == 2 * n:
        src = i >> 1
    else:
        src = np.floor(i.astype(np.float32) * s).astype(np.int64)
    return np.minimum(src, n - 1)[:, None], None


def _linear_taps(n: int, o: int, scale: float | None, align_corners: bool) -> tuple:
    i = np.arange(o)
    if o == n:
        return np.stack([i, i], 1), np.stack([np.ones(o, np.float32), np.zeros(o, np.float32)], 1)
    ratio = _scale_f32(n, o, align_corners, scale)
    if align_corners:
        real = ratio * i.astype(np.float32)
    else:
        real = ratio * (i.astype(np.float32) + np.float32(0.5)) - np.float32(0.5)
        real = np.maximum(real, np.float32(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), n - 1)
    lam1 = np.clip(real - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    i1 = i0 + (i0 < n - 1)
    return np.stack([i0, i1], 1), np.stack([np.float32(1) - lam1, lam1], 1)


def _cubic_taps(n: int, o: int, scale: float | None, align_corners: bool) -> tuple:
    a = np.float32(-0.75)
    i = np.arange(o)
    ratio = _scale_f32(n, o, align_corners, scale)
    if align_corners:
        real = ratio * i.astype(np.float32)
    else:
        real = ratio * (i.astype(np.float32) + np.float32(0.5)) - np.float32(0.5)
    i0 = np.minimum(np.floor(real).astype(np.int64), n - 1)
    t = np.clip(real - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one = np.float32(1)
    weights = np.stack([far(t + one), near(t), near(one - t), far(2 * one - t)], 1).astype(
        np.float32
    )
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)  # borders are clamped
    return idx, weights


def _antialias_taps(n: int, o: int, scale: float | None, align_corners: bool, mode: str) -> tuple:
    """torch's antialiased (PIL-style) weights: when downsampling, the bilinear/bicubic filter is
    stretched by the scale so every input pixel contributes; weights are normalised per output."""
    f32 = np.float32
    ratio = _scale_f32(n, o, align_corners, scale)
    size = 2 if mode == "bilinear" else 4
    support = f32(size * 0.5) * ratio if ratio >= 1 else f32(size * 0.5)
    invscale = f32(1) / ratio if ratio >= 1 else f32(1)
    a = f32(-0.5)  # the antialiased bicubic filter uses a = -0.5 (PIL), not -0.75

    def filt(v: np.ndarray) -> np.ndarray:
        v = np.abs(v)
        if mode == "bilinear":
            return np.where(v < 1, 1 - v, 0).astype(f32)
        return np.where(
            v < 1,
            ((a + 2) * v - (a + 3)) * v * v + 1,
            np.where(v < 2, (((v - 5) * v + 8) * v - 4) * a, 0),
        ).astype(f32)

    rows = []
    for i in range(o):
        center = ratio * f32(i + 0.5)
        lo = max(int(center - support + f32(0.5)), 0)
        count = min(int(center + support + f32(0.5)), n) - lo
        w = filt((np.arange(count, dtype=f32) + f32(lo) - center + f32(0.5)) * invscale)
        total = w.sum(dtype=f32)
        rows.append((lo, (w / total).astype(f32) if total != 0 else w))
    taps = max(len(w) for _, w in rows)
    idx = np.zeros((o, taps), np.int64)
    weights = np.zeros((o, taps), np.float32)
    for i, (lo, w) in enumerate(rows):
        idx[i] = np.minimum(lo + np.arange(taps), n - 1)
        weights[i, : len(w)] = w
    return idx, weights


def _resample(x: Any, axis: int, idx: np.ndarray, weights: np.ndarray | None) -> jax.Array:
    if weights is None:
        return jnp.take(x, jnp.asarray(idx[:, 0]), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = idx.shape[0]
    terms = [
        jnp.take(x, jnp.asarray(idx[:, t]), axis=axis)
        * jnp.asarray(weights[:, t], x.dtype).reshape(shape)
        for t in range(idx.shape[1])
    ]
    return functools.reduce(operator.add, terms)  # t = 0, 1, ... summed left to right


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def interpolate(
    input: Any,
    size: int | list[int] | tuple[int, ...] | None = None,
    scale_factor: float | list[float] | tuple[float, ...] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> jax.Array:
    """Resample the spatial dims to `size` or by `scale_factor`. Mirrors `torch.nn.functional.interpolate`.

    Args:
        input: (N, C, L), (N, C, H, W) or (N, C, D, H, W).
        size: output spatial size (int or one per spatial dim).
        scale_factor: multiplier(s) for the spatial size (output = floor(size * scale)).
        mode: 'nearest' | 'nearest-exact' | 'linear' | 'bilinear' | 'bicubic' | 'trilinear' | 'area'.
        align_corners: for the interpolating modes, align the corner pixel centres (default False).
        recompute_scale_factor: compute the sampling scale from the output size instead of
            using the given `scale_factor`.
        antialias: for 'bilinear' and 'bicubic' on 4D input, widen the filter when downsampling
            (torch's PIL-style antialiasing).

    >>> import jax.numpy as jnp
    >>> interpolate(jnp.arange(4.0).reshape(1, 1, 2, 2), scale_factor=2).shape
    (1, 1, 4, 4)
    """
    x = jnp.asarray(unwrap(input))
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    aligned = bool(align_corners)  # None (the default) is False
    nd = x.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != nd:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got input "
                    f"with spatial dimensions of {list(x.shape[2:])} and output size of {size}. Please "
                    "provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                    "(o1, o2, ...,oK) format."
                )
            if not all(_is_int(v) for v in size):
                raise TypeError(
                    "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                    f"Tuple[int, int, int], but got size with types {[type(v) for v in size]}"
                )
            out_size = [int(v) for v in size]
        else:
            out_size = [int(size)] * nd
        scales: Sequence[float | None] = [None] * nd
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != nd:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {list(x.shape[2:])} and scale_factor of shape "
                    f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                    "scale_factor in (s1, s2, ...,sK) format."
                )
            factors = [float(s) for s in scale_factor]
        else:
            factors = [float(scale_factor)] * nd
        out_size = [int(n * s) for n, s in zip(x.shape[2:], factors)]
        scales = factors
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" or recompute_scale_factor:
        scales = [None] * nd
    if antialias and not (mode in ("bilinear", "bicubic") and x.ndim == 4):
        if mode == "lanczos" and x.ndim == 4:
            raise NotImplementedError(
                "interpolate: `mode='lanczos'` is not implemented in jaxmodule"
            )
        raise ValueError(
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes "
            "and requires a 4-D tensor as input"
        )
    if mode == "lanczos":
        raise NotImplementedError("interpolate: `mode='lanczos'` is not implemented in jaxmodule")
    if mode not in _MODES or x.ndim not in (3, 4, 5):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: "
            f"nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact (got {mode})"
        )
    if mode in _NEEDS and x.ndim != _NEEDS[mode]:
        raise NotImplementedError(
            f"Got {x.ndim}D input, but {mode} mode needs {_NEEDS[mode]}D input"
        )
    if mode == "area":
        return (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d)[nd - 1](x, out_size)
    if any(o <= 0 for o in out_size):
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input (spatial) size "
            f"{list(x.shape[2:])} and output size {out_size}"
        )
    dtype = x.dtype
    if not jnp.issubdtype(dtype, jnp.floating) and mode not in ("nearest", "nearest-exact"):
        raise NotImplementedError(
            f"interpolate: mode '{mode}' needs a floating `input`, got {dtype}"
        )
    if dtype in (jnp.float16, jnp.bfloat16) and mode not in ("nearest", "nearest-exact"):
        x = x.astype(jnp.float32)  # torch interpolates half types in float32
    for i in reversed(range(nd)):  # last dim first, as torch's separable kernels do
        n, o, s = x.shape[2 + i], out_size[i], scales[i]
        if antialias:
            idx, w = _antialias_taps(n, o, s, aligned, mode)
        elif mode in ("nearest", "nearest-exact"):
            idx, w = _nearest_taps(n, o, s, mode == "nearest-exact", nd == 2)
        elif mode == "bicubic":
            idx, w = _cubic_taps(n, o, s, aligned)
        else:
            idx, w = _linear_taps(n, o, s, aligned)
        x = _resample(x, 2 + i, idx, w)
    return x.astype(dtype)


def upsample(
    input: Any,
    size: int | list[int] | tuple[int, ...] | None = None,
    scale_factor: float | list[float] | tuple[float, ...] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> jax.Array:
    """Deprecated alias of `interpolate` (warns, as torch does). Mirrors `torch.nn.functional.upsample`."""
    warnings.warn(
        "`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(
    input: Any,
    size: int | list[int] | tuple[int, ...] | None = None,
    scale_factor: float | None = None,
) -> jax.Array:
    """Deprecated: `interpolate(..., mode='nearest')`. Mirrors torch."""
    warnings.warn(
        "`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(
    input: Any,
    size: int | list[int] | tuple[int, ...] | None = None,
    scale_factor: float | list[float] | tuple[float, ...] | None = None,
) -> jax.Array:
    """Deprecated: `interpolate(..., mode='bilinear', align_corners=True)`. Mirrors torch."""
    warnings.warn(
        "`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ---- pixel / channel rearrangement ------------------------------------------------------------


def pixel_shuffle(input: Any, upscale_factor: int) -> jax.Array:
    """(*, C r^2, H, W) -> (*, C, H r, W r). Mirrors `torch.nn.functional.pixel_shuffle`."""
    x = jnp.asarray(unwrap(input))
    r = int(upscale_factor)
    if x.ndim < 3:
        raise RuntimeError(
            f"pixel_shuffle expects input to have at least 3 dimensions, but got input with {x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if c % (r * r) != 0:
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
            f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    n = len(lead)
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    y = y.transpose(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Any, downscale_factor: int) -> jax.Array:
    """(*, C, H r, W r) -> (*, C r^2, H, W). Mirrors `torch.nn.functional.pixel_unshuffle`."""
    x = jnp.asarray(unwrap(input))
    r = int(downscale_factor)
    if x.ndim < 3:
        raise RuntimeError(
            f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with {x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if h % r != 0:
        raise RuntimeError(
            f"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)={h} "
            f"is not divisible by {r}"
        )
    if w % r != 0:
        raise RuntimeError(
            f"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)={w} "
            f"is not divisible by {r}"
        )
    n = len(lead)
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    y = y.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input: Any, groups: int) -> jax.Array:
    """(N, g * k, *) -> channels reordered as (k, g). Mirrors `torch.nn.functional.channel_shuffle`."""
    x = jnp.asarray(unwrap(input))
    g = int(groups)
    if x.ndim <= 2:
        raise RuntimeError(
            f"channel_shuffle expects input with > 2 dims, but got input with sizes {list(x.shape)}"
        )
    if g <= 0:
        raise RuntimeError(
            f"Number of groups to divide channels in must be positive. Value of groups:{g}"
        )
    n, c, *rest = x.shape
    if c % g != 0:
        raise RuntimeError(
            f"Number of channels must be divisible by groups. Got {c} channels and {g} groups."
        )
    return x.reshape(n, g, c // g, *rest).swapaxes(1, 2).reshape(x.shape)


def native_channel_shuffle(input: Any, groups: int) -> jax.Array:
    """Same as `channel_shuffle` (torch's native kernel entry point)."""
    return channel_shuffle(input, groups)
