"""`Fold` and `Unfold`: sliding-block (col2im / im2col) layers over `nn.functional.fold/unfold`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from .. import functional as F
from .module import Module

__all__ = ["Fold", "Unfold"]

_Size = int | Sequence[int]


class Fold(Module):
    """Sum sliding local blocks into a containing array. Mirrors `torch.nn.Fold`.

    Args:
        output_size: spatial size (H, W) of the output.
        kernel_size, dilation, padding, stride: int or pair.

    Shape:
        (N, C * kH * kW, L) or (C * kH * kW, L) -> (N, C, H, W) or (C, H, W).
    """

    def __init__(
        self,
        output_size: _Size,
        kernel_size: _Size,
        dilation: _Size = 1,
        padding: _Size = 0,
        stride: _Size = 1,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input: Any) -> jax.Array:
        return F.fold(
            input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}"
        )


class Unfold(Module):
    """Extract sliding local blocks (im2col). Mirrors `torch.nn.Unfold`.

    Args:
        kernel_size, dilation, padding, stride: int or pair.

    Shape:
        (N, C, H, W) or (C, H, W) -> (N, C * kH * kW, L) or (C * kH * kW, L).

    >>> import jax.numpy as jnp
    >>> Unfold(kernel_size=(2, 3))(jnp.ones((2, 5, 3, 4))).shape
    (2, 30, 4)
    """

    def __init__(
        self, kernel_size: _Size, dilation: _Size = 1, padding: _Size = 0, stride: _Size = 1
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.stride = stride

    def forward(self, input: Any) -> jax.Array:
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding},"
            f" stride={self.stride}"
        )
