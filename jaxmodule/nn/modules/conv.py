"""Convolution layers: `Conv1d/2d/3d`, `ConvTranspose1d/2d/3d` and their lazy variants.

As in torch, one private base `_ConvNd` holds the arguments, parameters, default initialisation
and repr; the 1d/2d/3d classes only normalise their arguments and call `nn.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp

from ... import _structure
from ..._dtype import to_dtype
from .. import functional as F
from ..functional._utils import unwrap
from ..parameter import Parameter, UninitializedParameter
from ._backward_hooks import gate, gate_view, is_array, register_last_operation, swap_gated
from ._eager import register_pure_forward
from .linear import reset_weight_and_bias
from .module import Module

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "LazyConv1d",
    "LazyConv2d",
    "LazyConv3d",
    "LazyConvTranspose1d",
    "LazyConvTranspose2d",
    "LazyConvTranspose3d",
]

_PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_Size = int | Sequence[int]


def _ntuple(value: Any, n: int) -> tuple:
    """torch's _single/_pair/_triple: sequences pass through as tuples, scalars repeat."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * n


class _ConvNd(Module):
    """Shared state of the convolution layers. Mirrors torch's private `_ConvNd`."""

    _num_spatial: int = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
        padding: str | tuple[int, ...],
        dilation: tuple[int, ...],
        transposed: bool,
        output_padding: tuple[int, ...],
        groups: int,
        bias: bool,
        padding_mode: _PaddingMode,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
                )
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(
                "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, but got "
                f"padding_mode='{padding_mode}'"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = output_padding
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's (last-dim-first) padding for the non-zero padding modes
        nd = len(kernel_size)
        rev = [0, 0] * nd
        if padding == "same":
            for i, (d, k) in enumerate(zip(dilation, kernel_size)):
                total = d * (k - 1)
                j = nd - 1 - i
                rev[2 * j], rev[2 * j + 1] = total // 2, total - total // 2
        elif not isinstance(padding, str):
            for i, p in enumerate(padding):
                j = nd - 1 - i
                rev[2 * j] = rev[2 * j + 1] = p
        self._reversed_padding_repeated_twice = rev
        dt = to_dtype(dtype)
        shape = (
            (in_channels, out_channels // groups)
            if transposed
            else (out_channels, in_channels // groups)
        ) + tuple(kernel_size)
        self.weight = Parameter(jnp.empty(shape, dt))
        if bias:
            self.bias = Parameter(jnp.empty((out_channels,), dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """kaiming_uniform_(a=sqrt(5)) weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias, as torch."""
        reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if not hasattr(self, "padding_mode"):
            self.padding_mode = "zeros"


class _ConvForward(_ConvNd):
    """Forward of the (non-transposed) convolutions, with the padding modes."""

    _conv: Any = None

    def _conv_forward(self, input: Any, weight: Any, bias: Any) -> jax.Array:
        conv = type(self)._conv
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input: Any) -> jax.Array:
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_ConvForward):
    """1D convolution over (N, C_in, L). Mirrors `torch.nn.Conv1d`.

    Args:
        in_channels, out_channels: channel counts (both divisible by `groups`).
        kernel_size, stride, padding, dilation, groups: as `nn.functional.conv1d`; `padding`
            may be 'valid' or 'same'.
        bias: learn an additive bias (default True).
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    Shape:
        input (N, C_in, L) or (C_in, L) -> output (N, C_out, L_out). weight: (C_out, C_in / groups, k).
    """

    _conv = staticmethod(F.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: str | _Size = 0,
        dilation: _Size = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 1),
            _ntuple(stride, 1),
            padding if isinstance(padding, str) else _ntuple(padding, 1),
            _ntuple(dilation, 1),
            False,
            _ntuple(0, 1),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class Conv2d(_ConvForward):
    """2D convolution over (N, C_in, H, W). Mirrors `torch.nn.Conv2d`.

    Args:
        in_channels, out_channels: channel counts (both divisible by `groups`).
        kernel_size, stride, padding, dilation: int or pair; `padding` may be 'valid' or 'same'.
        groups: number of blocked connections from input to output channels.
        bias: learn an additive bias (default True).
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out).
        weight: (C_out, C_in / groups, kH, kW); bias: (C_out,).

    >>> import jax.numpy as jnp
    >>> m = Conv2d(16, 33, 3, stride=2)
    >>> m(jnp.ones((20, 16, 50, 100))).shape
    (20, 33, 24, 49)
    """

    _conv = staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: str | _Size = 0,
        dilation: _Size = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 2),
            _ntuple(stride, 2),
            padding if isinstance(padding, str) else _ntuple(padding, 2),
            _ntuple(dilation, 2),
            False,
            _ntuple(0, 2),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class Conv3d(_ConvForward):
    """3D convolution over (N, C_in, D, H, W). Mirrors `torch.nn.Conv3d`.

    Args: as `Conv2d`, with triples. weight: (C_out, C_in / groups, kD, kH, kW).
    """

    _conv = staticmethod(F.conv3d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: str | _Size = 0,
        dilation: _Size = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 3),
            _ntuple(stride, 3),
            padding if isinstance(padding, str) else _ntuple(padding, 3),
            _ntuple(dilation, 3),
            False,
            _ntuple(0, 3),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class _ConvTransposeNd(_ConvNd):
    """Shared forward of the transposed convolutions, with torch's `output_size` argument."""

    _conv: Any = None
    padding: tuple[int, ...]  # no padding string here (as torch); annotation only

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple,
        stride: tuple,
        padding: tuple,
        dilation: tuple,
        transposed: bool,
        output_padding: tuple,
        groups: int,
        bias: bool,
        padding_mode: _PaddingMode,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            transposed,
            output_padding,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def _output_padding(
        self,
        input: Any,
        output_size: Sequence[int] | None,
        stride: Sequence[int],
        padding: Sequence[int],
        kernel_size: Sequence[int],
        num_spatial_dims: int,
        dilation: Sequence[int] | None = None,
    ) -> list[int]:
        """The output_padding that yields `output_size` (torch's rule and errors)."""
        if output_size is None:
            return list(_ntuple(self.output_padding, 1))
        batched = input.ndim == num_spatial_dims + 2
        lead = 2 if batched else 1
        output_size = list(output_size)
        if len(output_size) == lead + num_spatial_dims:
            output_size = output_size[lead:]
        if len(output_size) != num_spatial_dims:
            raise ValueError(
                f"ConvTranspose{num_spatial_dims}D: for {input.ndim}D input, output_size must have "
                f"{num_spatial_dims} or {lead + num_spatial_dims} elements (got {len(output_size)})"
            )
        mins, maxs = [], []
        for d in range(num_spatial_dims):
            dil = dilation[d] if dilation is not None else 1
            size = (
                (input.shape[d + lead] - 1) * stride[d]
                - 2 * padding[d]
                + dil * (kernel_size[d] - 1)
                + 1
            )
            mins.append(size)
            maxs.append(size + stride[d] - 1)
        for size, lo, hi in zip(output_size, mins, maxs):
            if size < lo or size > hi:
                raise ValueError(
                    f"requested an output size of {output_size}, but valid sizes range from {mins} to "
                    f"{maxs} (for an input of {list(input.shape[lead:])})"
                )
        return [o - m for o, m in zip(output_size, mins)]

    def forward(self, input: Any, output_size: Sequence[int] | None = None) -> jax.Array:
        nd = self._num_spatial
        output_padding = self._output_padding(
            jnp.asarray(input),
            output_size,
            self.stride,
            self.padding,
            self.kernel_size,
            nd,
            self.dilation,
        )
        return type(self)._conv(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


# legacy backward hooks: torch's last operation of the conv and conv-transpose forwards (see _backward_hooks.py)
def _conv_rule(m: Any, args: tuple, kwargs: dict, sessions: list) -> Any:
    if not args or not is_array(args[0]):
        return NotImplemented
    x, nd = args[0], len(m.kernel_size)
    if jnp.ndim(x) == nd + 1:  # unbatched: convolution on input[None], then a squeeze
        y = m.forward(*args, **kwargs)
        return gate_view(sessions, y, (1, *jnp.shape(y))), True
    if not isinstance(m, _ConvTransposeNd) and m.padding_mode != "zeros":  # convolution(pad(input))
        padded = F.pad(x, m._reversed_padding_repeated_twice, mode=m.padding_mode)
        pg, wg, bg = gate(sessions, (padded, m.weight, m.bias))
        return type(m)._conv(pg, wg, bg, m.stride, 0, m.dilation, m.groups), True
    if m.padding == "same":
        totals = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
        if any(t % 2 for t in totals):  # torch pads the odd extra on the right, then convolves
            extra = [(0, 0), (0, 0)] + [(0, t % 2) for t in totals]
            pg, wg, bg = gate(sessions, (jnp.pad(unwrap(x), extra), m.weight, m.bias))
            return type(m)._conv(
                pg, wg, bg, m.stride, tuple(t // 2 for t in totals), m.dilation, m.groups
            ), True
    xg, wg, bg = gate(sessions, (x, m.weight, m.bias))
    with swap_gated(((m.weight, wg), (m.bias, bg))):
        return m.forward(xg, *args[1:], **kwargs), True


register_last_operation(_ConvForward, _conv_rule)
register_last_operation(_ConvTransposeNd, _conv_rule)


class ConvTranspose1d(_ConvTransposeNd):
    """1D transposed convolution. Mirrors `torch.nn.ConvTranspose1d`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as `Conv1d`.
        output_padding: extra size added to one side of the output.
        groups, bias, dilation: as `Conv1d` (note torch's argument order).
        padding_mode: only 'zeros'.

    Shape:
        weight: (C_in, C_out / groups, k). `forward(input, output_size=None)`.
    """

    _num_spatial = 1
    _conv = staticmethod(F.conv_transpose1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        output_padding: _Size = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _Size = 1,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 1),
            _ntuple(stride, 1),
            _ntuple(padding, 1),
            _ntuple(dilation, 1),
            True,
            _ntuple(output_padding, 1),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class ConvTranspose2d(_ConvTransposeNd):
    """2D transposed convolution. Mirrors `torch.nn.ConvTranspose2d`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as `Conv2d` (no string padding).
        output_padding: extra size added to one side of each output dimension.
        groups, bias, dilation: as `Conv2d` (note torch's argument order).
        padding_mode: only 'zeros'.

    Shape:
        weight: (C_in, C_out / groups, kH, kW). `forward(input, output_size=None)` picks the
        output_padding that gives `output_size`.

    >>> import jax.numpy as jnp
    >>> m = ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    >>> m(jnp.ones((1, 4, 5, 5)), output_size=(10, 10)).shape
    (1, 2, 10, 10)
    """

    _num_spatial = 2
    _conv = staticmethod(F.conv_transpose2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        output_padding: _Size = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _Size = 1,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 2),
            _ntuple(stride, 2),
            _ntuple(padding, 2),
            _ntuple(dilation, 2),
            True,
            _ntuple(output_padding, 2),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class ConvTranspose3d(_ConvTransposeNd):
    """3D transposed convolution. Mirrors `torch.nn.ConvTranspose3d`.

    Args: as `ConvTranspose2d`, with triples.
    """

    _num_spatial = 3
    _conv = staticmethod(F.conv_transpose3d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        output_padding: _Size = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _Size = 1,
        padding_mode: _PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            _ntuple(kernel_size, 3),
            _ntuple(stride, 3),
            _ntuple(padding, 3),
            _ntuple(dilation, 3),
            True,
            _ntuple(output_padding, 3),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


# ---- lazy variants ----------------------------------------------------------------------------

if TYPE_CHECKING:  # the mixin is only ever combined with a _ConvNd subclass (see _lazy)
    _LazyConvBase = _ConvNd
else:
    _LazyConvBase = object


class _LazyConvMixin(_LazyConvBase):
    """`in_channels` is inferred from the first input; then the module becomes `cls_to_become`."""

    cls_to_become: type[Module] = Module
    _lazy_nd: int = 0

    def _lazy_setup(self, out_channels: int, bias: bool, dtype: Any) -> None:
        self.weight = UninitializedParameter(dtype=dtype)
        self.out_channels = out_channels
        if bias:
            self.bias = UninitializedParameter(dtype=dtype)

    def reset_parameters(self) -> None:
        if self.in_channels != 0 and not isinstance(self.weight, UninitializedParameter):
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        nd = self._lazy_nd
        x = jnp.asarray(input)
        if x.ndim not in (nd + 1, nd + 2):
            raise RuntimeError(
                f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                f"{type(self).__name__}, but got input of size: {list(x.shape)}"
            )
        self.in_channels = x.shape[1] if x.ndim == nd + 2 else x.shape[0]
        if self.in_channels % self.groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight.materialize(shape)
        if self.bias is not None:
            self.bias.materialize((self.out_channels,))
        _structure.bump()
        self.reset_parameters()

    def forward(self, input: Any, *args: Any, **kwargs: Any) -> jax.Array:
        become = self.cls_to_become
        if isinstance(self.weight, UninitializedParameter):
            self.initialize_parameters(input)
            self.__class__ = become  # type: ignore[assignment]  # a lazy module becomes its eager class, as in torch
        return become.forward(self, input, *args, **kwargs)


def _lazy(base: type[Any], nd: int, transposed: bool) -> type:
    if transposed:

        def __init__(
            self: Any,
            out_channels: int,
            kernel_size: _Size,
            stride: _Size = 1,
            padding: _Size = 0,
            output_padding: _Size = 0,
            groups: int = 1,
            bias: bool = True,
            dilation: _Size = 1,
            padding_mode: _PaddingMode = "zeros",
            device: Any = None,
            dtype: Any = None,
        ) -> None:
            base.__init__(
                self,
                0,
                0,
                kernel_size,
                stride,
                padding,
                output_padding,
                groups,
                False,
                dilation,
                padding_mode,
                device,
                dtype,
            )
            self._lazy_setup(out_channels, bias, dtype)
    else:  # torch's two signatures: ConvTranspose takes output_padding, Conv a padding string

        def __init__(  # type: ignore[misc]
            self: Any,
            out_channels: int,
            kernel_size: _Size,
            stride: _Size = 1,
            padding: str | _Size = 0,
            dilation: _Size = 1,
            groups: int = 1,
            bias: bool = True,
            padding_mode: _PaddingMode = "zeros",
            device: Any = None,
            dtype: Any = None,
        ) -> None:
            base.__init__(
                self,
                0,
                0,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                False,
                padding_mode,
                device,
                dtype,
            )
            self._lazy_setup(out_channels, bias, dtype)

    name = f"Lazy{base.__name__}"
    doc = (
        f"A `{base.__name__}` whose `in_channels` is inferred from the first input. Mirrors "
        f"`torch.nn.{name}`; after the first call it becomes a plain `{base.__name__}`."
    )
    return type(
        name,
        (_LazyConvMixin, base),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
            "cls_to_become": base,
            "_lazy_nd": nd,
        },
    )


LazyConv1d = _lazy(Conv1d, 1, False)
LazyConv2d = _lazy(Conv2d, 2, False)
LazyConv3d = _lazy(Conv3d, 3, False)
LazyConvTranspose1d = _lazy(ConvTranspose1d, 1, True)
LazyConvTranspose2d = _lazy(ConvTranspose2d, 2, True)
LazyConvTranspose3d = _lazy(ConvTranspose3d, 3, True)


# eager calls of these run one cached jit program (see _eager.py)
register_pure_forward(Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
