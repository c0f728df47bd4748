"""`affine_grid` and `grid_sample` (spatial transformers), with torch's coordinate conventions.

A grid holds normalised (x, y[, z]) coordinates in [-1, 1]; x indexes the last (width) dim. They
are unnormalised to pixel coordinates (`align_corners` decides whether -1/1 are the corner pixel
centres or the image edges), folded back by `padding_mode`, and sampled with gathers from the
flattened input, so gradients reach both the input and the grid.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._utils import unwrap

__all__ = ["affine_grid", "grid_sample"]

_ALIGN_WARNING = (
    "Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
    "Please specify align_corners=True if the old behavior is desired. See the documentation of "
    "grid_sample for details."
)


def _base_coords(n: int, align_corners: bool) -> np.ndarray:
    """torch's linspace(-1, 1, n) in float32 (scaled by (n - 1) / n without align_corners)."""
    if n <= 1:
        return np.zeros((max(n, 0),), np.float32)
    i = np.arange(n)
    step = np.float32(2.0) / np.float32(n - 1)
    vals = np.where(
        i < n // 2,
        np.float32(-1) + step * i.astype(np.float32),
        np.float32(1) - step * (n - 1 - i).astype(np.float32),
    ).astype(np.float32)
    if not align_corners:
        vals = (vals * np.float32(n - 1) / np.float32(n)).astype(np.float32)
    return vals


def affine_grid(theta: Any, size: Sequence[int], align_corners: bool | None = None) -> jax.Array:
    """Sampling grid of a batch of affine maps. Mirrors `torch.nn.functional.affine_grid`.

    Args:
        theta: (N, 2, 3) for a 2D `size` (N, C, H, W), or (N, 3, 4) for a 3D `size` (N, C, D, H, W).
        size: the output size.
        align_corners: as `grid_sample` (default False, with torch's warning when omitted).

    Shape:
        output: (N, H, W, 2) or (N, D, H, W, 3).
    """
    th = jnp.asarray(unwrap(theta))
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    if not jnp.issubdtype(th.dtype, jnp.floating):
        raise ValueError(f"Expected theta to have floating point type, but got {th.dtype}")
    size = [int(s) for s in size]
    if len(size) == 4:
        if th.ndim != 3 or th.shape[-2:] != (2, 3):
            raise ValueError(
                f"Expected a batch of 2D affine matrices of shape Nx2x3 for size {size}. "
                f"Got {list(th.shape)}."
            )
    elif len(size) == 5:
        if th.ndim != 3 or th.shape[-2:] != (3, 4):
            raise ValueError(
                f"Expected a batch of 3D affine matrices of shape Nx3x4 for size {size}. "
                f"Got {list(th.shape)}."
            )
    else:
        raise NotImplementedError(
            "affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
            f"respectively. Got size {size}."
        )
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn(
            "Since version 1.3.0, affine_grid behavior has changed for unit-size grids "
            "when align_corners=True. This is not an intended use case of affine_grid. "
            "See the documentation of affine_grid for details.",
            stacklevel=2,
        )
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    # base[..., k]: x (width) first, then y, (z,) then 1
    axes = [_base_coords(n, align_corners) for n in reversed(spatial)]
    mesh = np.meshgrid(*axes[::-1], indexing="ij")[::-1]  # arrays over (D,) H, W
    base = np.stack([*mesh, np.ones(tuple(spatial), np.float32)], axis=-1)
    nd = len(spatial)
    flat = jnp.asarray(base.reshape(-1, nd + 1), th.dtype)
    grid = jnp.einsum("pk,nik->npi", flat, th, precision=lax.Precision.HIGHEST)
    return grid.reshape(th.shape[0], *spatial, nd)


# ---- grid_sample ------------------------------------------------------------------------------


def _unnormalize(coord: Any, size: int, align_corners: bool) -> Any:
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord: Any, twice_low: int, twice_high: int) -> Any:
    if twice_low == twice_high:
        return jnp.zeros_like(coord)
    low = twice_low / 2
    span = (twice_high - twice_low) / 2
    c = jnp.abs(coord - low)
    extra = jnp.fmod(c, span)
    flips = jnp.floor(c / span)
    return jnp.where(jnp.fmod(flips, 2) == 0, extra + low, span - extra + low)


def _pad_coords(coord: Any, size: int, padding_mode: str, align_corners: bool) -> Any:
    if padding_mode == "border":
        return jnp.clip(coord, 0, size - 1)
    if padding_mode == "reflection":
        if align_corners:
            coord = _reflect(coord, 0, 2 * (size - 1))
        else:
            coord = _reflect(coord, -1, 2 * size - 1)
        return jnp.clip(coord, 0, size - 1)
    return coord


def _fold(op: Callable[[Any, Any], Any], terms: Sequence[Any]) -> Any:
    """`op` applied left to right over `terms` (at least one), with no neutral start value."""
    return functools.reduce(op, terms)


def _gather(flat: Any, sizes: Sequence[int], idx: Sequence[Any]) -> tuple[jax.Array, jax.Array]:
    """Values of flat (N, C, P) at integer coords idx (each (N, Q), spatial order) and an in-bounds mask."""
    inside = _fold(operator.and_, [(i >= 0) & (i < n) for n, i in zip(sizes, idx)])
    lin = jnp.clip(idx[0], 0, sizes[0] - 1)
    for n, i in zip(sizes[1:], idx[1:]):
        lin = lin * n + jnp.clip(i, 0, n - 1)
    vals = jnp.take_along_axis(flat, lin[:, None, :], axis=2)
    return vals, inside[:, None, :]


def _cubic_weights(t: Any) -> list:
    a = -0.75

    def near(x: Any) -> Any:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: Any) -> Any:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def grid_sample(
    input: Any,
    grid: Any,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool | None = None,
) -> jax.Array:
    """Sample `input` at the normalised grid locations. Mirrors `torch.nn.functional.grid_sample`.

    Args:
        input: (N, C, H, W) or (N, C, D, H, W).
        grid: (N, H_out, W_out, 2) or (N, D_out, H_out, W_out, 3) holding (x, y[, z]) in [-1, 1].
        mode: 'bilinear' (trilinear for 5D), 'nearest' or 'bicubic' (4D only).
        padding_mode: 'zeros', 'border' or 'reflection' for locations outside the input.
        align_corners: -1 and 1 are the corner pixels' centres (True) or edges (False, default).

    Shape:
        output: (N, C, H_out, W_out) or (N, C, D_out, H_out, W_out).
    """
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(
            "nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or "
            f"'bicubic', but got: '{mode}'"
        )
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(
            "nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', "
            f"or 'reflection', but got: '{padding_mode}'"
        )
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    x, g = jnp.asarray(unwrap(input)), jnp.asarray(unwrap(grid))
    if x.ndim not in (4, 5):
        raise RuntimeError(
            f"grid_sampler(): expected 4D or 5D input and grid with same number of "
            f"dimensions, but got input with sizes {list(x.shape)} and grid with sizes "
            f"{list(g.shape)}"
        )
    nd = x.ndim - 2
    if g.ndim != x.ndim or g.shape[0] != x.shape[0] or g.shape[-1] != nd:
        raise RuntimeError(
            f"grid_sampler(): expected grid of shape (N, *out, {nd}) matching input "
            f"{list(x.shape)}, but got grid with sizes {list(g.shape)}"
        )
    if mode == "bicubic" and nd != 2:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    if x.dtype != g.dtype:
        raise RuntimeError(
            f"grid_sampler(): expected input and grid to have the same dtype, but "
            f"input has {x.dtype} and grid has {g.dtype}"
        )
    n, c = x.shape[:2]
    sizes = x.shape[2:]  # (D,) H, W
    out_shape = g.shape[1:-1]
    flat = x.reshape(n, c, -1)
    # coords[d] is the pixel coordinate along spatial dim d; the grid lists them reversed
    coords = [g[..., nd - 1 - d].reshape(n, -1) for d in range(nd)]
    coords = [_unnormalize(co, s, align_corners) for co, s in zip(coords, sizes)]
    if mode == "bicubic":
        h, w = sizes
        y0, x0 = jnp.floor(coords[0]), jnp.floor(coords[1])
        wy, wx = _cubic_weights(coords[0] - y0), _cubic_weights(coords[1] - x0)
        rows = []
        for i in range(4):
            yi = _pad_coords(y0 - 1 + i, h, padding_mode, align_corners)
            terms = []
            for j in range(4):
                xj = _pad_coords(x0 - 1 + j, w, padding_mode, align_corners)
                vals, ok = _gather(flat, sizes, [yi.astype(jnp.int32), xj.astype(jnp.int32)])
                terms.append(jnp.where(ok, vals, 0) * wx[j][:, None, :])
            rows.append(_fold(operator.add, terms) * wy[i][:, None, :])
        return _fold(operator.add, rows).reshape(n, c, *out_shape)
    coords = [_pad_coords(co, s, padding_mode, align_corners) for co, s in zip(coords, sizes)]
    if mode == "nearest":
        idx = [jnp.round(co).astype(jnp.int32) for co in coords]  # round half to even, as nearbyint
        vals, ok = _gather(flat, sizes, idx)
        return jnp.where(ok, vals, 0).reshape(n, c, *out_shape)
    lows = [jnp.floor(co) for co in coords]
    fracs = [co - lo for co, lo in zip(coords, lows)]
    terms = []
    for corner in np.ndindex(*(2,) * nd):
        idx = [(lo + k).astype(jnp.int32) for lo, k in zip(lows, corner)]
        weight = _fold(operator.mul, [fr if k else 1 - fr for fr, k in zip(fracs, corner)])
        vals, ok = _gather(flat, sizes, idx)
        terms.append(jnp.where(ok, vals, 0) * weight[:, None, :])
    return _fold(operator.add, terms).reshape(n, c, *out_shape)
