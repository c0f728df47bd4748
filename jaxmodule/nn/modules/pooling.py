"""Pooling layers: max, average, power-average, adaptive and unpooling. Thin shells over
`nn.functional`; attributes, defaults and repr text are torch's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from .. import functional as F
from ._eager import register_pure_forward
from .module import Module

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
]

_Size = int | Sequence[int]
_OptSize = int | None | Sequence[int | None]


def _ntuple(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


# ---- max pooling ------------------------------------------------------------------------------


class _MaxPoolNd(Module):
    """Shared arguments and repr of the max-pooling layers."""

    _fn: Any = None

    def __init__(
        self,
        kernel_size: _Size,
        stride: _Size | None = None,
        padding: _Size = 0,
        dilation: _Size = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> Any:
        return type(self)._fn(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """1D max pooling. Mirrors `torch.nn.MaxPool1d`.

    Args:
        kernel_size: window size. stride: defaults to `kernel_size`.
        padding: implicit -inf padding (at most half the effective kernel).
        dilation: spacing of window elements.
        return_indices: also return flat argmax indices (for `MaxUnpool1d`).
        ceil_mode: ceil instead of floor for the output length.

    Shape:
        (N, C, L) or (C, L) -> (N, C, L_out).
    """

    _fn = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """2D max pooling. Mirrors `torch.nn.MaxPool2d`.

    Args:
        kernel_size: window size. stride: defaults to `kernel_size`.
        padding: implicit -inf padding (at most half the effective kernel).
        dilation: spacing of window elements.
        return_indices: also return flat argmax indices (for `MaxUnpool2d`).
        ceil_mode: ceil instead of floor for the output shape.

    Shape:
        (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out).

    >>> import jax.numpy as jnp
    >>> MaxPool2d(3, stride=2)(jnp.ones((1, 1, 7, 7))).shape
    (1, 1, 3, 3)
    """

    _fn = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """3D max pooling. Mirrors `torch.nn.MaxPool3d` (arguments as `MaxPool2d`, with triples)."""

    _fn = staticmethod(F.max_pool3d)


class _MaxUnpoolNd(Module):
    """Shared forward and repr of the unpooling layers."""

    _fn: Any = None
    _nd: int = 0

    def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0) -> None:
        super().__init__()
        nd = self._nd
        self.kernel_size = _ntuple(kernel_size, nd)
        self.stride = _ntuple(stride if stride is not None else kernel_size, nd)
        self.padding = _ntuple(padding, nd)

    def forward(
        self, input: Any, indices: Any, output_size: Sequence[int] | None = None
    ) -> jax.Array:
        return type(self)._fn(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of `MaxPool1d`. Mirrors `torch.nn.MaxUnpool1d`.

    `forward(input, indices, output_size=None)`; see `nn.functional.max_unpool1d`.
    """

    _fn = staticmethod(F.max_unpool1d)
    _nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of `MaxPool2d`: values go back to their argmax positions, zeros elsewhere.

    Mirrors `torch.nn.MaxUnpool2d`. `forward(input, indices, output_size=None)`.
    """

    _fn = staticmethod(F.max_unpool2d)
    _nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """Partial inverse of `MaxPool3d`. Mirrors `torch.nn.MaxUnpool3d`."""

    _fn = staticmethod(F.max_unpool3d)
    _nd = 3


# ---- average pooling --------------------------------------------------------------------------


class _AvgPoolNd(Module):
    """Shared repr of the average-pooling layers."""

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1D average pooling. Mirrors `torch.nn.AvgPool1d`.

    Args:
        kernel_size: window size. stride: defaults to `kernel_size`.
        padding: implicit zero padding (at most half the kernel).
        ceil_mode: ceil instead of floor for the output length.
        count_include_pad: count the zero padding in the divisor.
    """

    def __init__(
        self,
        kernel_size: _Size,
        stride: _Size | None = None,
        padding: _Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = _ntuple(kernel_size, 1)
        self.stride = _ntuple(stride if stride is not None else kernel_size, 1)
        self.padding = _ntuple(padding, 1)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Any) -> jax.Array:
        return F.avg_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class _AvgPool23(_AvgPoolNd):
    _fn: Any = None

    def __init__(
        self,
        kernel_size: _Size,
        stride: _Size | None = None,
        padding: _Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any) -> jax.Array:
        return type(self)._fn(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AvgPool2d(_AvgPool23):
    """2D average pooling. Mirrors `torch.nn.AvgPool2d`.

    Args:
        kernel_size: window size. stride: defaults to `kernel_size`.
        padding: implicit zero padding (at most half the kernel).
        ceil_mode: ceil instead of floor for the output shape.
        count_include_pad: count the zero padding in the divisor.
        divisor_override: divide window sums by this instead.

    Shape:
        (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out).
    """

    _fn = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPool23):
    """3D average pooling. Mirrors `torch.nn.AvgPool3d` (arguments as `AvgPool2d`)."""

    _fn = staticmethod(F.avg_pool3d)


# ---- power-average pooling --------------------------------------------------------------------


class _LPPoolNd(Module):
    """Shared arguments and repr of the power-average pooling layers."""

    _fn: Any = None

    def __init__(
        self,
        norm_type: float,
        kernel_size: _Size,
        stride: _Size | None = None,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> jax.Array:
        return type(self)._fn(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )

    def extra_repr(self) -> str:
        return (
            f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"ceil_mode={self.ceil_mode}"
        )


class LPPool1d(_LPPoolNd):
    """1D power-average pooling (sum x^p)^(1/p). Mirrors `torch.nn.LPPool1d`."""

    _fn = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """2D power-average pooling. Mirrors `torch.nn.LPPool2d`.

    Args:
        norm_type: the power p. kernel_size, stride, ceil_mode: as `AvgPool2d` (no padding).
    """

    _fn = staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    """3D power-average pooling. Mirrors `torch.nn.LPPool3d`."""

    _fn = staticmethod(F.lp_pool3d)


# ---- adaptive pooling -------------------------------------------------------------------------


class _AdaptiveMaxPoolNd(Module):
    """Shared arguments and repr of the adaptive max-pooling layers."""

    _fn: Any = None

    def __init__(self, output_size: _OptSize, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input: Any) -> Any:
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Adaptive 1D max pooling to `output_size`. Mirrors `torch.nn.AdaptiveMaxPool1d`."""

    _fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Adaptive 2D max pooling. Mirrors `torch.nn.AdaptiveMaxPool2d`.

    Args:
        output_size: int or (H, W); None keeps that input size.
        return_indices: also return flat argmax indices.
    """

    _fn = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Adaptive 3D max pooling. Mirrors `torch.nn.AdaptiveMaxPool3d`."""

    _fn = staticmethod(F.adaptive_max_pool3d)


class _AdaptiveAvgPoolNd(Module):
    """Shared arguments and repr of the adaptive average-pooling layers."""

    _fn: Any = None

    def __init__(self, output_size: _OptSize) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Any) -> jax.Array:
        return type(self)._fn(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Adaptive 1D average pooling. Mirrors `torch.nn.AdaptiveAvgPool1d`."""

    _fn = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Adaptive 2D average pooling to `output_size`. Mirrors `torch.nn.AdaptiveAvgPool2d`.

    Args:
        output_size: int or (H, W); None keeps that input size.

    >>> import jax.numpy as jnp
    >>> AdaptiveAvgPool2d((5, None))(jnp.ones((1, 64, 8, 9))).shape
    (1, 64, 5, 9)
    """

    _fn = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Adaptive 3D average pooling. Mirrors `torch.nn.AdaptiveAvgPool3d`."""

    _fn = staticmethod(F.adaptive_avg_pool3d)


# ---- fractional max pooling -------------------------------------------------------------------


class _FractionalMaxPoolNd(Module):
    """Shared arguments of the fractional max-pooling layers (torch defines no extra_repr)."""

    _fn: Any = None
    _nd: int = 0

    def __init__(
        self,
        kernel_size: _Size,
        output_size: _Size | None = None,
        output_ratio: float | Sequence[float] | None = None,
        return_indices: bool = False,
        _random_samples: Any = None,
    ) -> None:
        super().__init__()
        nd, name = self._nd, type(self).__name__
        if nd == 3 and any(k <= 0 for k in _ntuple(kernel_size, nd)):
            raise ValueError(f"kernel_size must be greater than 0, but got {kernel_size}")
        self.kernel_size = _ntuple(kernel_size, nd)
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        self.output_size = _ntuple(output_size, nd) if output_size is not None else None
        self.output_ratio = _ntuple(output_ratio, nd) if output_ratio is not None else None
        if output_size is None and output_ratio is None:
            raise ValueError(
                f"{name} requires specifying either an output size, or a pooling ratio"
            )
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        if self.output_ratio is not None and not all(0 < r < 1 for r in self.output_ratio):
            raise ValueError(f"output_ratio must be between 0 and 1 (got {output_ratio})")

    def forward(self, input: Any) -> Any:
        return type(self)._fn(
            input,
            self.kernel_size,
            self.output_size,
            self.output_ratio,
            self.return_indices,
            _random_samples=self._random_samples,
        )


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """2D fractional max pooling. Mirrors `torch.nn.FractionalMaxPool2d`.

    Args:
        kernel_size: window size.
        output_size / output_ratio: the output size, or its ratio (in (0, 1)) to the input size.
        return_indices: also return flat argmax indices.
        _random_samples: fixed (N, C, 2) uniforms; new ones are drawn from the global generator
            on every call when None.
    """

    _fn = staticmethod(F.fractional_max_pool2d)
    _nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """3D fractional max pooling. Mirrors `torch.nn.FractionalMaxPool3d`."""

    _fn = staticmethod(F.fractional_max_pool3d)
    _nd = 3


# eager calls of these run one cached jit program (see _eager.py)
register_pure_forward(
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
)
