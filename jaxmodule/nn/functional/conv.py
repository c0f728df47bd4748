"""Convolutions (`conv1d/2d/3d`, `conv_transpose1d/2d/3d`) and sliding blocks (`unfold`, `fold`).

Layouts are torch's: inputs are (N, C, *spatial) (or (C, *spatial) unbatched), convolution
weights are (out, in / groups, *kernel), transposed-convolution weights (in, out / groups, *kernel).
Everything lowers to `jax.lax.conv_general_dilated`, whose default dimension numbers are exactly
NC(D)HW / OI(D)HW, except forward convolutions on the CPU backend, which take im2col + one matmul
where that is faster (small output maps); `JAXMODULE_CPU_CONV=xla` turns that off (`_conv_cpu.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ...amp.autocast_mode import autocast_inputs
from ._conv_cpu import choose_im2col, conv_im2col
from ._utils import unwrap

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "unfold",
    "fold",
]

_IntOrSeq = int | Sequence[int]


def _expand(name: str, value: Any, nd: int) -> tuple[int, ...]:
    """An int or a length-1/length-nd sequence -> an nd-tuple (torch's convolution argument rule)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (int(value[0]),) * nd
        if len(value) != nd:
            raise RuntimeError(
                f"expected {name} to be a single integer value or a list of {nd} values to match "
                f"the convolution dimensions, but got {name}={list(value)}"
            )
        return tuple(int(v) for v in value)
    return (int(value),) * nd


def _check_input(fn: str, x: Any, nd: int) -> bool:
    """Validate the input rank; return True when the input is unbatched."""
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fn}, but got input "
            f"of size: {list(x.shape)}"
        )
    return x.ndim == nd + 1


def _check_common(
    fn: str, x: Any, w: Any, b: Any, nd: int, stride: tuple, dilation: tuple, groups: int
) -> None:
    if w.ndim != nd + 2:
        raise RuntimeError(
            f"{fn}: expected weight to be {nd + 2}-dimensional, but got weight of size {list(w.shape)}"
        )
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("non-positive dilation is not supported")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if x.dtype != w.dtype:
        raise RuntimeError(
            f"{fn}: input dtype ({x.dtype}) and weight dtype ({w.dtype}) should be the same"
        )
    if b is not None and b.dtype != w.dtype:
        raise RuntimeError(
            f"{fn}: bias dtype ({b.dtype}) and weight dtype ({w.dtype}) should be the same"
        )


def _add_bias(out: Any, b: Any, nd: int) -> Any:
    if b is None:
        return out
    return out + b.reshape((1, -1) + (1,) * nd)


def _conv(
    nd: int,
    fn: str,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> jax.Array:
    x, w, b = unwrap(input), unwrap(weight), unwrap(bias)
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    x, w, b = autocast_inputs(x, w, b)  # inside `jaxmodule.autocast`, compute in its dtype
    unbatched = _check_input(fn, x, nd)
    if unbatched:
        x = x[None]
    stride = _expand("stride", stride, nd)
    dilation = _expand("dilation", dilation, nd)
    groups = int(groups)
    _check_common(fn, x, w, b, nd, stride, dilation, groups)
    c_out, c_in_g, *kernel = w.shape
    if c_out % groups != 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size [{list(w.shape)}] instead"
        )
    if x.shape[1] != c_in_g * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(w.shape)}, expected input"
            f"{list(x.shape)} to have {c_in_g * groups} channels, but got {x.shape[1]} channels instead"
        )
    if b is not None and (b.ndim != 1 or b.shape[0] != c_out):
        raise RuntimeError(
            f"Given weight of size {list(w.shape)}, expected bias to be 1-dimensional with {c_out} "
            f"elements, but got bias of size {list(b.shape)} instead"
        )
    eff = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            # torch puts the odd extra element of the total padding on the right
            pads = [((e - 1) // 2, (e - 1) - (e - 1) // 2) for e in eff]
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        p = _expand("padding", padding, nd)
        if any(v < 0 for v in p):
            raise RuntimeError("negative padding is not supported")
        pads = [(v, v) for v in p]
    padded = [n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads)]
    if any(pz < e for pz, e in zip(padded, eff)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
            f"size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than actual input size"
        )
    out_sizes = [(pz - e) // s + 1 for pz, e, s in zip(padded, eff, stride)]
    if choose_im2col(x, out_sizes, groups):  # CPU only: see _conv_cpu.py
        out = conv_im2col(x, w, stride, pads, dilation, groups, out_sizes)
    else:
        out = lax.conv_general_dilated(
            x,
            w,
            window_strides=stride,
            padding=pads,
            rhs_dilation=dilation,
            feature_group_count=groups,
        )
    out = _add_bias(out, b, nd)
    return out[0] if unbatched else out


def _conv_transpose(
    nd: int,
    fn: str,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: int,
    dilation: Any,
) -> jax.Array:
    x, w, b = unwrap(input), unwrap(weight), unwrap(bias)
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    x, w, b = autocast_inputs(x, w, b)  # inside `jaxmodule.autocast`, compute in its dtype
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    unbatched = _check_input(fn, x, nd)
    if unbatched:
        x = x[None]
    stride = _expand("stride", stride, nd)
    dilation = _expand("dilation", dilation, nd)
    padding = _expand("padding", padding, nd)
    output_padding = _expand("output_padding", output_padding, nd)
    groups = int(groups)
    _check_common(fn, x, w, b, nd, stride, dilation, groups)
    if any(v < 0 for v in padding):
        raise RuntimeError("negative padding is not supported")
    if any(v < 0 for v in output_padding):
        raise RuntimeError("negative output_padding is not supported")
    for op, s, d in zip(output_padding, stride, dilation):
        if not (op < s or op < d):
            raise RuntimeError(
                f"output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(output_padding)}, stride={list(stride)}, dilation={list(dilation)}"
            )
    c_in, c_out_g, *kernel = w.shape
    if c_in % groups != 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size [{list(w.shape)}] instead"
        )
    if x.shape[1] != c_in:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(w.shape)}, expected input{list(x.shape)} to "
            f"have {c_in} channels, but got {x.shape[1]} channels instead"
        )
    c_out = c_out_g * groups
    if b is not None and (b.ndim != 1 or b.shape[0] != c_out):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(w.shape)}, expected bias to be 1-dimensional "
            f"with {c_out} elements, but got bias of size {list(b.shape)} instead"
        )
    out_sizes = [
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, s, p, d, k, op in zip(x.shape[2:], stride, padding, dilation, kernel, output_padding)
    ]
    if any(o <= 0 for o in out_sizes):
        raise RuntimeError(
            f"Given input size per channel: ({' x '.join(map(str, x.shape[2:]))}). Calculated output "
            f"size per channel: ({' x '.join(map(str, out_sizes))}). Output size is too small"
        )
    # (in, out/g, *k) -> (out, in/g, *k), spatially flipped: the transpose is the gradient of a
    # forward convolution, computed as a convolution over the stride-dilated input.
    wg = w.reshape((groups, c_in // groups, c_out_g, *kernel))
    wg = jnp.swapaxes(wg, 1, 2).reshape((c_out, c_in // groups, *kernel))
    wg = jnp.flip(wg, axis=tuple(range(2, 2 + nd)))
    pads = [
        (d * (k - 1) - p, d * (k - 1) - p + op)
        for d, k, p, op in zip(dilation, kernel, padding, output_padding)
    ]
    out = lax.conv_general_dilated(
        x,
        wg,
        window_strides=(1,) * nd,
        padding=pads,
        lhs_dilation=stride,
        rhs_dilation=dilation,
        feature_group_count=groups,
    )
    out = _add_bias(out, b, nd)
    return out[0] if unbatched else out


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq | str = 0,
    dilation: _IntOrSeq = 1,
    groups: int = 1,
) -> jax.Array:
    """1D convolution over (N, C_in, L) or (C_in, L). Mirrors `torch.nn.functional.conv1d`.

    Args:
        input: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_out, C_in / groups, kL).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as in torch; `padding` may be 'valid' or 'same'.

    On the CPU backend small output maps lower to im2col + one matmul (faster there than XLA's
    convolution); set the environment variable `JAXMODULE_CPU_CONV=xla` to always use
    `lax.conv_general_dilated`, `=im2col` to always use im2col (read at trace time).

    Shape:
        output: (N, C_out, L_out), L_out = floor((L + 2p - d (k - 1) - 1) / s) + 1.
    """
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq | str = 0,
    dilation: _IntOrSeq = 1,
    groups: int = 1,
) -> jax.Array:
    """2D convolution over (N, C_in, H, W) or (C_in, H, W). Mirrors `torch.nn.functional.conv2d`.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_out, C_in / groups, kH, kW).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as in torch; `padding` may be 'valid' or 'same'.

    On the CPU backend small output maps lower to im2col + one matmul (faster there than XLA's
    convolution); set the environment variable `JAXMODULE_CPU_CONV=xla` to always use
    `lax.conv_general_dilated`, `=im2col` to always use im2col (read at trace time).

    Shape:
        output: (N, C_out, H_out, W_out).

    >>> import jax.numpy as jnp
    >>> conv2d(jnp.ones((1, 2, 5, 5)), jnp.ones((3, 2, 3, 3)), padding=1).shape
    (1, 3, 5, 5)
    """
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def conv3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq | str = 0,
    dilation: _IntOrSeq = 1,
    groups: int = 1,
) -> jax.Array:
    """3D convolution over (N, C_in, D, H, W) or unbatched. Mirrors `torch.nn.functional.conv3d`.

    Args:
        input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
        weight: (C_out, C_in / groups, kD, kH, kW).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as in torch; `padding` may be 'valid' or 'same'.

    On the CPU backend small output maps lower to im2col + one matmul (faster there than XLA's
    convolution); set the environment variable `JAXMODULE_CPU_CONV=xla` to always use
    `lax.conv_general_dilated`, `=im2col` to always use im2col (read at trace time).
    """
    return _conv(3, "conv3d", input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq = 0,
    output_padding: _IntOrSeq = 0,
    groups: int = 1,
    dilation: _IntOrSeq = 1,
) -> jax.Array:
    """1D transposed convolution. Mirrors `torch.nn.functional.conv_transpose1d`.

    Args:
        input: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_in, C_out / groups, kL), torch's transposed layout.
        bias: optional (C_out,).
        stride, padding, output_padding, groups, dilation: as in torch (note torch's order).

    Shape:
        output: (N, C_out, L_out), L_out = (L - 1) s - 2p + d (k - 1) + output_padding + 1.
    """
    return _conv_transpose(
        1,
        "conv_transpose1d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq = 0,
    output_padding: _IntOrSeq = 0,
    groups: int = 1,
    dilation: _IntOrSeq = 1,
) -> jax.Array:
    """2D transposed convolution. Mirrors `torch.nn.functional.conv_transpose2d`.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_in, C_out / groups, kH, kW), torch's transposed layout.
        bias: optional (C_out,).
        stride, padding, output_padding, groups, dilation: as in torch (note torch's order).

    >>> import jax.numpy as jnp
    >>> conv_transpose2d(jnp.ones((1, 2, 4, 4)), jnp.ones((2, 3, 3, 3)), stride=2).shape
    (1, 3, 9, 9)
    """
    return _conv_transpose(
        2,
        "conv_transpose2d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


def conv_transpose3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: _IntOrSeq = 1,
    padding: _IntOrSeq = 0,
    output_padding: _IntOrSeq = 0,
    groups: int = 1,
    dilation: _IntOrSeq = 1,
) -> jax.Array:
    """3D transposed convolution. Mirrors `torch.nn.functional.conv_transpose3d`.

    Args:
        input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
        weight: (C_in, C_out / groups, kD, kH, kW), torch's transposed layout.
        bias: optional (C_out,).
        stride, padding, output_padding, groups, dilation: as in torch (note torch's order).
    """
    return _conv_transpose(
        3,
        "conv_transpose3d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


# ---- sliding blocks ---------------------------------------------------------------------------


def _pair_arg(name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (int(value[0]),) * 2
        if len(value) != 2:
            raise RuntimeError(
                f"expected {name} to be an int or a sequence of 2 ints, got {list(value)}"
            )
        return (int(value[0]), int(value[1]))
    return (int(value),) * 2


def _block_args(kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> tuple:
    k, d = _pair_arg("kernel_size", kernel_size), _pair_arg("dilation", dilation)
    p, s = _pair_arg("padding", padding), _pair_arg("stride", stride)
    if any(v <= 0 for v in k):
        raise RuntimeError(
            f"kernel size should be greater than zero, but got kernel_size={list(k)}"
        )
    if any(v <= 0 for v in d):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={list(d)}")
    if any(v < 0 for v in p):
        raise RuntimeError(f"padding should be non-negative, but got padding={list(p)}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"stride should be greater than zero, but got stride={list(s)}")
    return k, d, p, s


def _blocks(size: tuple, k: tuple, d: tuple, p: tuple, s: tuple) -> list[int]:
    return [
        (n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, pp, ss in zip(size, k, d, p, s)
    ]


def unfold(
    input: Any,
    kernel_size: _IntOrSeq,
    dilation: _IntOrSeq = 1,
    padding: _IntOrSeq = 0,
    stride: _IntOrSeq = 1,
) -> jax.Array:
    """Extract sliding local blocks (im2col). Mirrors `torch.nn.functional.unfold`.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W).
        kernel_size, dilation, padding, stride: int or pair.

    Shape:
        output: (N, C * kH * kW, L) with L the number of blocks; channels vary slowest, then the
        kernel row, then the kernel column (torch's order).
    """
    x = jnp.asarray(unwrap(input))
    if x.ndim not in (3, 4) or any(n == 0 for n in x.shape[1:]):
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
            f"dimensions for input, but got: {list(x.shape)}"
        )
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    k, d, p, s = _block_args(kernel_size, dilation, padding, stride)
    oh, ow = _blocks(x.shape[2:], k, d, p, s)
    if oh < 1 or ow < 1:
        raise RuntimeError(
            f"Given input with spatial size ({x.shape[2]}, {x.shape[3]}), kernel_size={list(k)}, "
            f"dilation={list(d)}, padding={list(p)}, calculated shape of the array of sliding blocks "
            f"as ({oh}, {ow}), but its components must be at least one."
        )
    xp = jnp.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = []
    for i in range(k[0]):
        for j in range(k[1]):
            r0, c0 = i * d[0], j * d[1]
            cols.append(
                xp[:, :, r0 : r0 + (oh - 1) * s[0] + 1 : s[0], c0 : c0 + (ow - 1) * s[1] + 1 : s[1]]
            )
    n, c = x.shape[:2]
    out = jnp.stack(cols, axis=2).reshape(n, c * k[0] * k[1], oh * ow)
    return out[0] if unbatched else out


def fold(
    input: Any,
    output_size: _IntOrSeq,
    kernel_size: _IntOrSeq,
    dilation: _IntOrSeq = 1,
    padding: _IntOrSeq = 0,
    stride: _IntOrSeq = 1,
) -> jax.Array:
    """Sum sliding local blocks into a containing array (col2im). Mirrors `torch.nn.functional.fold`.

    Args:
        input: (N, C * kH * kW, L) or unbatched (C * kH * kW, L).
        output_size: the spatial size (H, W) of the output.
        kernel_size, dilation, padding, stride: int or pair.

    Shape:
        output: (N, C, H, W) (or (C, H, W) unbatched).
    """
    x = jnp.asarray(unwrap(input))
    if x.ndim not in (2, 3) or any(n == 0 for n in x.shape[1:]):
        raise RuntimeError(
            "Expected 2D or 3D (batch mode) tensor with possibly 0 batch size and non-zero "
            f"dimensions for input, but got: {list(x.shape)}"
        )
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    out_hw = _pair_arg("output_size", output_size)
    k, d, p, s = _block_args(kernel_size, dilation, padding, stride)
    if x.shape[1] % (k[0] * k[1]) != 0:
        raise RuntimeError(
            f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
            f"but got input.size(1)={x.shape[1]} and kernel_size={k}"
        )
    oh, ow = _blocks(out_hw, k, d, p, s)
    if oh < 1 or ow < 1:
        raise RuntimeError(
            f"Given output_size={out_hw}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
            f"calculated shape of the array of sliding blocks as ({oh}, {ow}), but its components "
            "must be at least one."
        )
    if x.shape[2] != oh * ow:
        raise RuntimeError(
            f"Given output_size={out_hw}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
            f"expected size of input's dimension 2 to match the calculated number of sliding blocks "
            f"{oh} * {ow} = {oh * ow}, but got input.size(2)={x.shape[2]}."
        )
    n, c = x.shape[0], x.shape[1] // (k[0] * k[1])
    blocks = x.reshape(n, c, k[0], k[1], oh, ow)
    out = jnp.zeros((n, c, out_hw[0] + 2 * p[0], out_hw[1] + 2 * p[1]), x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            r0, c0 = i * d[0], j * d[1]
            out = out.at[
                :, :, r0 : r0 + (oh - 1) * s[0] + 1 : s[0], c0 : c0 + (ow - 1) * s[1] + 1 : s[1]
            ].add(blocks[:, :, i, j])
    out = out[:, :, p[0] : p[0] + out_hw[0], p[1] : p[1] + out_hw[1]]
    return out[0] if unbatched else out
