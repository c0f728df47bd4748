"""Normalization layers without running statistics: `LayerNorm`, `GroupNorm`, `RMSNorm`,
`LocalResponseNorm`, `CrossMapLRN2d`. Mirrors `torch.nn.modules.normalization`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from .. import functional as F
from .. import init
from ..functional.normalization import _cross_map_lrn2d
from ..parameter import Parameter
from ._backward_hooks import input_and_params_rule, register_last_operation
from ._eager import register_pure_forward
from .module import Module

__all__ = ["LocalResponseNorm", "CrossMapLRN2d", "LayerNorm", "GroupNorm", "RMSNorm"]


def _as_shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, numbers.Integral)):  # numbers.Integral: numpy ints
        return (int(normalized_shape),)
    return tuple(normalized_shape)


def _init_affine(
    module: Module, affine: bool, shape: tuple[int, ...], bias: bool, dtype: Any
) -> None:
    """Register `weight` and `bias` of `shape` (uninitialised), or None where absent."""
    if affine:
        module.weight = Parameter(jnp.empty(shape, to_dtype(dtype)))
        if bias:
            module.bias = Parameter(jnp.empty(shape, to_dtype(dtype)))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module: Module, affine: bool) -> None:
    """Weight to ones, bias (if any) to zeros."""
    if affine:
        init.ones_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)


class LocalResponseNorm(Module):
    """Normalize each channel by the energy of its `size` neighbouring channels.

    Mirrors `torch.nn.LocalResponseNorm`; the math is `F.local_response_norm`.

    Args:
        size: number of neighbouring channels in the window.
        alpha, beta, k: the formula's constants.

    Shape:
        - Input: `(N, C, *)`, at least 3-D; output: same shape.

    >>> import jax.numpy as jnp
    >>> LocalResponseNorm(2)(jnp.ones((1, 4, 3))).shape
    (1, 4, 3)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Any) -> jax.Array:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class CrossMapLRN2d(Module):
    """Lua-torch's cross-channel LRN on 4-D inputs. Mirrors `torch.nn.CrossMapLRN2d`.

    Reproduces torch's forward and its hand-written backward exactly, including their
    differing channel windows (torch's forward never drops the first channel from its sliding
    sum, and its gradient is not the exact derivative of its forward).

    Args:
        size: number of neighbouring channels in the window.
        alpha, beta, k: the formula's constants.

    Shape:
        - Input: `(N, C, H, W)`; output: same shape.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Any) -> jax.Array:
        return _cross_map_lrn2d(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LayerNorm(Module):
    """Normalize over the trailing `normalized_shape` dims. Mirrors `torch.nn.LayerNorm`.

    Args:
        normalized_shape: an int or the trailing shape to normalize over.
        eps: added to the variance.
        elementwise_affine: learn a weight (ones) and bias (zeros) of shape `normalized_shape`.
        bias: learn the bias (with `elementwise_affine`).

    Shape:
        - Input: `(*, *normalized_shape)`; output: same shape.

    >>> import jax.numpy as jnp
    >>> LayerNorm(4)(jnp.ones((2, 4))).shape
    (2, 4)
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _init_affine(self, elementwise_affine, self.normalized_shape, bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to ones, bias to zeros."""
        _reset_affine(self, self.elementwise_affine)

    def forward(self, input: Any) -> jax.Array:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


# legacy backward hooks: torch's last operation of LayerNorm.forward (see _backward_hooks.py)
register_last_operation(LayerNorm, input_and_params_rule(("weight", "bias")))


class GroupNorm(Module):
    """Normalize over groups of channels. Mirrors `torch.nn.GroupNorm`.

    Args:
        num_groups: number of groups; must divide `num_channels`.
        num_channels: `C`.
        eps: added to the variance.
        affine: learn a per-channel weight (ones) and bias (zeros).
        bias: learn the bias (keyword-only, with `affine`).

    Shape:
        - Input: `(N, C, *)`; output: same shape.

    >>> import jax.numpy as jnp
    >>> GroupNorm(2, 4)(jnp.arange(16.0).reshape(2, 4, 2)).shape
    (2, 4, 2)
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _init_affine(self, affine, (num_channels,), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to ones, bias to zeros."""
        _reset_affine(self, self.affine)

    def forward(self, input: Any) -> jax.Array:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


# legacy backward hooks: torch's last operation of GroupNorm.forward (see _backward_hooks.py)
register_last_operation(
    GroupNorm, input_and_params_rule(("weight", "bias"), go_extra=2)
)  # + mean, rstd


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing dims. Mirrors `torch.nn.RMSNorm`.

    Args:
        normalized_shape: an int or the trailing shape to normalize over.
        eps: added to the mean square; None means the machine epsilon of the compute dtype
            (float32's for float16/bfloat16 inputs, as torch).
        elementwise_affine: learn a weight (ones) of shape `normalized_shape`.

    Shape:
        - Input: `(*, *normalized_shape)`; output: same shape.

    >>> import jax.numpy as jnp
    >>> RMSNorm([2, 3])(jnp.ones((4, 2, 3))).shape
    (4, 2, 3)
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if self.elementwise_affine:
            self.weight = Parameter(jnp.empty(self.normalized_shape, to_dtype(dtype)))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to ones."""
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x: Any) -> jax.Array:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


# eager calls of these run one cached jit program (see _eager.py)
register_pure_forward(LocalResponseNorm, LayerNorm, GroupNorm, RMSNorm)
