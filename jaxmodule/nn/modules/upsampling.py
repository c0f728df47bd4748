"""Upsampling layers: `Upsample`, `UpsamplingNearest2d`, `UpsamplingBilinear2d`."""

from __future__ import annotations

from typing import Any

import jax

from .. import functional as F
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class Upsample(Module):
    """Resample to `size` or by `scale_factor`. Mirrors `torch.nn.Upsample`.

    Args:
        size: output spatial size. scale_factor: multiplier(s) for the spatial size.
        mode: 'nearest' | 'nearest-exact' | 'linear' | 'bilinear' | 'bicubic' | 'trilinear' | 'area'.
        align_corners, recompute_scale_factor: as `nn.functional.interpolate`.

    >>> import jax.numpy as jnp
    >>> Upsample(scale_factor=2, mode="bilinear")(jnp.ones((1, 1, 2, 2))).shape
    (1, 1, 4, 4)
    """

    def __init__(
        self,
        size: int | list[int] | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        self.scale_factor: float | tuple[float, ...] | None
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Any) -> jax.Array:
        return F.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = "scale_factor=" + repr(self.scale_factor)
        else:
            info = "size=" + repr(self.size)
        return info + ", mode=" + repr(self.mode)

    def __setstate__(self, state: dict) -> None:
        state.setdefault("recompute_scale_factor", True)
        super().__setstate__(state)


class UpsamplingNearest2d(Upsample):
    """2D nearest-neighbour upsampling. Mirrors `torch.nn.UpsamplingNearest2d`."""

    def __init__(
        self,
        size: int | list[int] | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """2D bilinear upsampling with `align_corners=True`. Mirrors `torch.nn.UpsamplingBilinear2d`."""

    def __init__(
        self,
        size: int | list[int] | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
