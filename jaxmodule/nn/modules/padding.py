"""Padding layers: Zero/Constant/Reflection/Replication/Circular Pad 1d/2d/3d over `F.pad`.

`padding` is an int (same on every side) or a tuple in torch's order: (left, right[, top,
bottom[, front, back]]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from .. import functional as F
from .module import Module

__all__ = [
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
]

_Pad = int | Sequence[int]


def _expand(padding: _Pad, n: int) -> tuple:
    """torch's _ntuple(n): sequences pass through as tuples, an int repeats n times."""
    return tuple(padding) if isinstance(padding, (list, tuple)) else (padding,) * n


class _PadNd(Module):
    """A padding layer of one mode over the last `_nd` dimensions."""

    _mode: str = "constant"
    _nd: int = 0

    def __init__(self, padding: _Pad) -> None:
        super().__init__()
        self.padding = _expand(padding, 2 * self._nd)

    def forward(self, input: Any) -> jax.Array:
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _CircularPadNd(_PadNd):
    _mode = "circular"

    def forward(self, input: Any) -> jax.Array:
        ndim = len(input.shape)
        if ndim not in (self._nd + 1, self._nd + 2):
            raise ValueError(
                f"expected {self._nd + 1}D or {self._nd + 2}D input (got {ndim}D input)"
            )
        return F.pad(input, self.padding, "circular")


class CircularPad1d(_CircularPadNd):
    """Pad the last dim by wrapping around. Mirrors `torch.nn.CircularPad1d`.

    Shape: (C, W) or (N, C, W).
    """

    _nd = 1


class CircularPad2d(_CircularPadNd):
    """Pad the last 2 dims by wrapping around. Mirrors `torch.nn.CircularPad2d`.

    Shape: (C, H, W) or (N, C, H, W).
    """

    _nd = 2


class CircularPad3d(_CircularPadNd):
    """Pad the last 3 dims by wrapping around. Mirrors `torch.nn.CircularPad3d`."""

    _nd = 3


class _ReflectionPadNd(_PadNd):
    _mode = "reflect"


class ReflectionPad1d(_ReflectionPadNd):
    """Pad the last dim with its reflection (edge not repeated). Mirrors `torch.nn.ReflectionPad1d`."""

    _nd = 1


class ReflectionPad2d(_ReflectionPadNd):
    """Pad the last 2 dims with their reflection. Mirrors `torch.nn.ReflectionPad2d`.

    >>> import jax.numpy as jnp
    >>> ReflectionPad2d((1, 1, 2, 0))(jnp.ones((1, 1, 3, 3))).shape
    (1, 1, 5, 5)
    """

    _nd = 2


class ReflectionPad3d(_ReflectionPadNd):
    """Pad the last 3 dims with their reflection. Mirrors `torch.nn.ReflectionPad3d`."""

    _nd = 3


class _ReplicationPadNd(_PadNd):
    _mode = "replicate"


class ReplicationPad1d(_ReplicationPadNd):
    """Pad the last dim by repeating the edge value. Mirrors `torch.nn.ReplicationPad1d`."""

    _nd = 1


class ReplicationPad2d(_ReplicationPadNd):
    """Pad the last 2 dims by repeating edge values. Mirrors `torch.nn.ReplicationPad2d`."""

    _nd = 2


class ReplicationPad3d(_ReplicationPadNd):
    """Pad the last 3 dims by repeating edge values. Mirrors `torch.nn.ReplicationPad3d`."""

    _nd = 3


class _ConstantPadNd(Module):
    """A constant-value padding layer over the last `_nd` dimensions."""

    _nd: int = 0

    def __init__(self, padding: _Pad, value: float) -> None:
        super().__init__()
        self.value = value
        self.padding = _expand(padding, 2 * self._nd)

    def forward(self, input: Any) -> jax.Array:
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with `value`. Mirrors `torch.nn.ConstantPad1d`."""

    _nd = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last 2 dims with `value`. Mirrors `torch.nn.ConstantPad2d`.

    >>> import jax.numpy as jnp
    >>> ConstantPad2d(1, 3.5)(jnp.zeros((1, 2, 2)))[0, 0].tolist()
    [3.5, 3.5, 3.5, 3.5]
    """

    _nd = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last 3 dims with `value`. Mirrors `torch.nn.ConstantPad3d`."""

    _nd = 3


class ZeroPad1d(ConstantPad1d):
    """Pad the last dim with zeros. Mirrors `torch.nn.ZeroPad1d`."""

    def __init__(self, padding: _Pad) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pad the last 2 dims with zeros. Mirrors `torch.nn.ZeroPad2d`."""

    def __init__(self, padding: _Pad) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad3d(ConstantPad3d):
    """Pad the last 3 dims with zeros. Mirrors `torch.nn.ZeroPad3d`."""

    def __init__(self, padding: _Pad) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"
