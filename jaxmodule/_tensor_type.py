"""`jaxmodule.Tensor`: torch.Tensor's methods as functions, and the type of every array.

torch model code calls methods (`x.view(B, T, C)`, `x.transpose(1, 2)`, `x.sum(dim=-1)`); jax
arrays have different methods of the same names (`transpose` takes a permutation, `sum` an
`axis`, `max` returns no indices). `jaxmodule.Tensor.<method>(x, ...)` is called exactly as
`torch.Tensor.<method>(t, ...)` and returns what torch's would, as a plain jax array. A method IS
the function of the same name (`Tensor.sum is jaxmodule.sum`) wherever torch's signatures agree;
the rest (`view`, `expand`, `repeat`, `size`, `new_zeros`, `to`, ...) are defined here.
Parameters and Buffers carry these methods too (`param.transpose(0, 1)`).

`isinstance(x, jaxmodule.Tensor)` is True for jax arrays (tracers included) and for Parameters
and Buffers, False for numpy arrays and Python numbers. `jaxmodule.Tensor(...)` cannot be called:
make arrays with `jaxmodule.tensor`, `jaxmodule.zeros`, ...

In-place methods (`fill_`, `add_`, ...) work on Parameters and Buffers (they replace the held
array); on a plain jax array, which is immutable, they raise a TypeError naming the out-of-place
form. `cuda()` moves to a GPU when JAX has one and raises RuntimeError (listing the devices that
exist) otherwise, as `to('cuda')` does.

>>> import jax.numpy as jnp, jaxmodule
>>> x = jnp.arange(6.0)
>>> jaxmodule.Tensor.view(x, 2, 3).shape, jaxmodule.Tensor.size(x, -1)
((2, 3), 6)
>>> isinstance(x, jaxmodule.Tensor)
True
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _functions as F
from ._device import is_device_spec, resolve_device
from ._functions._common import arr, canon_dtype, int_list, wrap_dim
from ._tensor import tensor as _tensor
from .nn.parameter import _TensorCell, install_tensor_methods

__all__ = ["Tensor", "Size", "is_tensor"]


class Size(tuple):
    """A shape: a tuple of ints with `numel()`. Mirrors `torch.Size`."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"jaxmodule.Size({list(self)})"


class _TensorMeta(type):
    """isinstance/issubclass answer for jax arrays and cells; calling the class is refused."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, (jax.Array, _TensorCell))

    def __subclasscheck__(cls, sub: type) -> bool:
        return sub is cls or (isinstance(sub, type) and issubclass(sub, (jax.Array, _TensorCell)))

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "jaxmodule.Tensor is the type of jax arrays and cannot be instantiated: make arrays "
            "with jaxmodule.tensor(data), jaxmodule.empty(*size) or jaxmodule.zeros(*size)"
        )


def is_tensor(obj: Any) -> bool:
    """True for jax arrays (tracers too) and Parameters/Buffers. Mirrors `torch.is_tensor`."""
    return isinstance(obj, Tensor)


def _is_dtype_like(x: Any) -> bool:
    return not isinstance(x, (builtins.int, np.integer, tuple, list)) and not is_device_spec(x)


def _place(x: jax.Array, device: Any) -> jax.Array:
    if isinstance(device, (jax.sharding.Sharding, jax.Device)):
        return jax.device_put(x, device)
    return jax.device_put(x, resolve_device(device))


class Tensor(metaclass=_TensorMeta):
    """torch.Tensor's methods, each called with the array first: `Tensor.view(x, 2, 3)`.

    Mirrors `torch.Tensor`'s methods (see the module docstring for what differs).
    """

    # ---- size and layout -------------------------------------------------------------------
    def size(self, dim: int | None = None) -> Any:
        """The shape as a `Size`, or one dim's length. Mirrors `torch.Tensor.size`."""
        shape = arr(self).shape
        if dim is None:
            return Size(shape)
        if not shape:
            raise IndexError(f"dimension specified as {dim} but tensor has no dimensions")
        return shape[wrap_dim(dim, len(shape))]

    def dim(self) -> int:
        """Number of dims. Mirrors `torch.Tensor.dim`."""
        return arr(self).ndim

    ndimension = dim

    def nelement(self) -> int:
        """Number of elements. Mirrors `torch.Tensor.nelement`."""
        return F.numel(self)

    def element_size(self) -> int:
        """Bytes per element. Mirrors `torch.Tensor.element_size`."""
        return arr(self).dtype.itemsize

    def contiguous(self, memory_format: Any = None) -> jax.Array:
        """The array itself (JAX arrays have no strides). Mirrors `torch.Tensor.contiguous`."""
        return arr(self)

    def is_contiguous(self, memory_format: Any = None) -> bool:
        """Always True. Mirrors `torch.Tensor.is_contiguous`."""
        return True

    # ---- reshaping -------------------------------------------------------------------------
    def view(self, *shape: Any) -> jax.Array:
        """Reshape (`view(2, 3)`, `view((2, 3))`, one -1 allowed) or reinterpret the bits as
        another dtype (`view(jnp.int32)`). Mirrors `torch.Tensor.view`."""
        if len(shape) == 1 and _is_dtype_like(shape[0]):
            return _view_dtype(arr(self), canon_dtype(shape[0]))
        return F.reshape(self, int_list(shape))

    def view_as(self, other: Any) -> jax.Array:
        """view(other.shape). Mirrors `torch.Tensor.view_as`."""
        return F.reshape(self, arr(other).shape)

    def reshape(self, *shape: Any, order: str = "C") -> jax.Array:
        """Reshape (`reshape(2, 3)` or `reshape((2, 3))`). Mirrors `torch.Tensor.reshape`.

        `order` exists because `jnp.reshape(cell, shape)` forwards to this method; only torch's
        row-major order "C" is supported."""
        if order != "C":
            raise ValueError(f"reshape: only order='C' is supported, got order={order!r}")
        return F.reshape(self, int_list(shape))

    def reshape_as(self, other: Any) -> jax.Array:
        """reshape(other.shape). Mirrors `torch.Tensor.reshape_as`."""
        return F.reshape(self, arr(other).shape)

    def permute(self, *dims: Any) -> jax.Array:
        """Reorder dims (`permute(0, 2, 1)` or `permute((0, 2, 1))`). Mirrors `torch.Tensor.permute`."""
        return F.permute(self, int_list(dims, "dims"))

    def flip(self, *dims: Any) -> jax.Array:
        """Reverse along dims (`flip(0, 1)` or `flip((0, 1))`). Mirrors `torch.Tensor.flip`."""
        return F.flip(self, int_list(dims, "dims"))

    def tile(self, *dims: Any) -> jax.Array:
        """Repeat the whole array per dim. Mirrors `torch.Tensor.tile`."""
        return F.tile(self, int_list(dims, "dims"))

    def squeeze(self, *dim: Any) -> jax.Array:
        """Remove size-1 dims: all, `squeeze(0)`, `squeeze(0, 1)` or `squeeze((0, 1))`. Mirrors `torch.Tensor.squeeze`."""
        return F.squeeze(self, None if not dim else dim[0] if len(dim) == 1 else dim)

    def expand(self, *sizes: Any) -> jax.Array:
        """Broadcast to `sizes` (-1 keeps a dim). Mirrors `torch.Tensor.expand`."""
        return F.broadcast_to(self, int_list(sizes))

    def expand_as(self, other: Any) -> jax.Array:
        """expand(other.shape). Mirrors `torch.Tensor.expand_as`."""
        return F.broadcast_to(self, arr(other).shape)

    def repeat(self, *sizes: Any) -> jax.Array:
        """Tile the array `sizes` times per dim (len(sizes) >= dim()). Mirrors `torch.Tensor.repeat`."""
        reps = int_list(sizes)
        x = arr(self)
        if len(reps) < x.ndim:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of "
                "dimensions of tensor"
            )
        return jnp.tile(x, reps)

    def unfold(self, dimension: int, size: int, step: int) -> jax.Array:
        """All windows of `size` elements, `step` apart, along `dimension`, as a new last dim.

        Mirrors `torch.Tensor.unfold`.
        """
        x = arr(self)
        d = wrap_dim(dimension, x.ndim)
        x = x.reshape(1) if x.ndim == 0 else x
        n = x.shape[d]
        if size > n:
            raise RuntimeError(
                f"maximum size for tensor at dimension {d} is {n} but size is {size}"
            )
        if step <= 0:
            raise RuntimeError(f"step is {step} but must be > 0")
        starts = np.arange(0, n - size + 1, step)
        idx = starts[:, None] + np.arange(size)[None, :]
        return jnp.moveaxis(jnp.take(x, idx, axis=d), d + 1, -1)

    # ---- new arrays like this one ----------------------------------------------------------
    def new_zeros(self, *size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
        """Zeros of `size` in this dtype. Mirrors `torch.Tensor.new_zeros`."""
        return Tensor.new_full(self, int_list(size), 0, dtype=dtype, device=device)

    def new_ones(self, *size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
        """Ones of `size` in this dtype. Mirrors `torch.Tensor.new_ones`."""
        return Tensor.new_full(self, int_list(size), 1, dtype=dtype, device=device)

    def new_empty(self, *size: Any, dtype: Any = None, device: Any = None) -> jax.Array:
        """Zeros of `size` in this dtype (JAX has no uninitialised memory). Mirrors `torch.Tensor.new_empty`."""
        return Tensor.new_full(self, int_list(size), 0, dtype=dtype, device=device)

    def new_full(
        self, size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None
    ) -> jax.Array:
        """`fill_value` in `size`, in this dtype. Mirrors `torch.Tensor.new_full`."""
        dt = arr(self).dtype if dtype is None else canon_dtype(dtype)
        out = jnp.full(int_list((size,)), fill_value, dt)
        return out if device is None else _place(out, device)

    def new_tensor(self, data: Any, dtype: Any = None, device: Any = None) -> jax.Array:
        """An array from `data`, in this dtype unless given. Mirrors `torch.Tensor.new_tensor`."""
        return _tensor(data, arr(self).dtype if dtype is None else dtype, device)

    # ---- dtype and device ------------------------------------------------------------------
    def type_as(self, other: Any) -> jax.Array:
        """Cast to `other`'s dtype. Mirrors `torch.Tensor.type_as`."""
        return arr(self).astype(arr(other).dtype)

    def to(self, *args: Any, **kwargs: Any) -> jax.Array:
        """Cast and/or move: `to(dtype)`, `to(device)`, `to(device, dtype)`, `to(other)`.

        Mirrors `torch.Tensor.to`; devices are any torch spelling, a `jax.Device` or a sharding.
        """
        x = arr(self)
        dtype, device = kwargs.get("dtype"), kwargs.get("device")
        for a in args:
            if isinstance(a, builtins.bool) or a is None:
                continue
            if isinstance(a, Tensor):  # to(other): its dtype and (outside jit) its device
                other = arr(a)
                dtype = other.dtype
                if not isinstance(other, jax.core.Tracer) and len(other.devices()) == 1:
                    device = next(iter(other.devices()))
            elif isinstance(a, (jax.sharding.Sharding, jax.Device)) or is_device_spec(a):
                device = a
            else:
                dtype = a
        if dtype is not None:
            x = x.astype(canon_dtype(dtype))
        return x if device is None else _place(x, device)

    def cpu(self, memory_format: Any = None) -> jax.Array:
        """On the first CPU device. Mirrors `torch.Tensor.cpu`."""
        return jax.device_put(arr(self), jax.devices("cpu")[0])

    def cuda(self, device: Any = None, non_blocking: bool = False) -> jax.Array:
        """On a GPU (RuntimeError listing the devices if JAX has none). Mirrors `torch.Tensor.cuda`."""
        spec = (
            "cuda"
            if device is None
            else f"cuda:{device}"
            if isinstance(device, builtins.int)
            else device
        )
        return _place(arr(self), spec)

    def is_signed(self) -> bool:
        """True unless the dtype is unsigned or bool. Mirrors `torch.Tensor.is_signed`."""
        dt = arr(self).dtype
        return not (jnp.issubdtype(dt, jnp.unsignedinteger) or dt == jnp.bool_)

    # ---- values out ------------------------------------------------------------------------
    def item(self) -> Any:
        """The single element as a Python number. Mirrors `torch.Tensor.item`."""
        x = arr(self)
        if x.size != 1:
            raise RuntimeError(f"a Tensor with {x.size} elements cannot be converted to Scalar")
        return x.reshape(()).item()

    def tolist(self) -> Any:
        """Nested Python lists of numbers. Mirrors `torch.Tensor.tolist`."""
        return np.asarray(arr(self)).tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """A numpy copy (torch shares memory; JAX arrays cannot). Mirrors `torch.Tensor.numpy`."""
        return np.asarray(arr(self))

    def detach(self) -> jax.Array:
        """The values with gradients stopped. Mirrors `torch.Tensor.detach`."""
        return jax.lax.stop_gradient(arr(self))

    def clone(self, *, memory_format: Any = None) -> jax.Array:
        """A copy. Mirrors `torch.Tensor.clone`."""
        return jnp.array(arr(self), copy=True)

    # ---- signatures that differ from the functions ------------------------------------------
    def where(self, condition: Any, y: Any) -> jax.Array:
        """self where condition else y. Mirrors `torch.Tensor.where`."""
        return F.where(condition, self, y)


def _view_dtype(x: jax.Array, dt: np.dtype) -> jax.Array:
    """torch's view(dtype): same bits; the last dim scales by the itemsize ratio."""
    a, b = x.dtype.itemsize, dt.itemsize
    if a == b:
        return jax.lax.bitcast_convert_type(x, dt)
    if x.ndim == 0:
        raise RuntimeError(
            "self.dim() cannot be 0 to view a tensor as a dtype with a different size"
        )
    if a > b:
        out = jax.lax.bitcast_convert_type(x, dt)  # (..., n, a // b)
        return out.reshape(x.shape[:-1] + (x.shape[-1] * (a // b),))
    r = b // a
    if x.shape[-1] % r:
        raise RuntimeError(
            f"self.size(-1) must be divisible by {r} to view {x.dtype} as {dt} (different element sizes), "
            f"but got {x.shape[-1]}"
        )
    return jax.lax.bitcast_convert_type(x.reshape(x.shape[:-1] + (x.shape[-1] // r, r)), dt)


def _astype_method(name: str, dtype: Any) -> Any:
    dt = canon_dtype(dtype)

    def method(self: Any, memory_format: Any = None) -> jax.Array:
        return arr(self).astype(dt)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Cast to {dtype} (as JAX holds it: {dt}). Mirrors `torch.Tensor.{name}`."
    return method


for _name, _dt in (
    ("float", "float32"),
    ("double", "float64"),
    ("half", "float16"),
    ("bfloat16", "bfloat16"),
    ("long", "int64"),
    ("int", "int32"),
    ("short", "int16"),
    ("char", "int8"),
    ("byte", "uint8"),
    ("bool", "bool"),
    ("cfloat", "complex64"),
    ("cdouble", "complex128"),
):
    setattr(Tensor, _name, _astype_method(_name, _dt))


# ---- in-place methods: possible on cells only ---------------------------------------------------
_INPLACE_HINTS = {
    "fill_": "jnp.full_like(x, value)",
    "zero_": "jnp.zeros_like(x)",
    "copy_": "src",
    "normal_": "mean + std * jaxmodule.randn_like(x)",
    "uniform_": "jaxmodule.rand_like(x) * (b - a) + a",
}
INPLACE_METHODS = (
    "fill_",
    "zero_",
    "copy_",
    "normal_",
    "uniform_",
    "bernoulli_",
    "exponential_",
    "log_normal_",
    "cauchy_",
    "random_",
    "geometric_",
    "add_",
    "sub_",
    "mul_",
    "div_",
    "pow_",
    "clamp_",
    "clip_",
    "clamp_min_",
    "clamp_max_",
    "addcmul_",
    "addcdiv_",
    "lerp_",
    "masked_fill_",
    "fill_diagonal_",
    "exp_",
    "log_",
    "sqrt_",
    "rsqrt_",
    "neg_",
    "abs_",
    "sign_",
    "sigmoid_",
    "tanh_",
    "relu_",
    "floor_",
    "ceil_",
    "round_",
    "trunc_",
    "reciprocal_",
    "square_",
    "sin_",
    "cos_",
    "scatter_",
    "scatter_add_",
    "scatter_reduce_",
    "index_add_",
    "index_fill_",
    "index_copy_",
    "masked_scatter_",
    "unsqueeze_",
    "squeeze_",
    "transpose_",
    "t_",
    "resize_",
    "swapaxes_",
    "tril_",
    "triu_",
)


def _inplace_method(name: str) -> Any:
    base = name[:-1]
    hint = _INPLACE_HINTS.get(name, f"jaxmodule.Tensor.{base}(x, ...)")

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        own = getattr(type(self), name, None)
        if isinstance(self, _TensorCell) and own is not None and own is not method:
            return own(self, *args, **kwargs)
        raise TypeError(
            f"Tensor.{name}: jax arrays are immutable, so `{name}` cannot change them in place; "
            f"use the out-of-place form and rebind it: `x = {hint}` (Parameters and Buffers "
            f"support the common in-place methods)"
        )

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In place on Parameters/Buffers; TypeError on jax arrays (use `{hint}`)."
    return method


for _name in INPLACE_METHODS:
    setattr(Tensor, _name, _inplace_method(_name))


# ---- methods that ARE the functions (torch's signatures agree, self first) ----------------------
SHARED_WITH_FUNCTIONS = (
    # shape, joining, splitting
    "flatten",
    "unflatten",
    "ravel",
    "unsqueeze",
    "transpose",
    "swapaxes",
    "swapdims",
    "t",
    "adjoint",
    "movedim",
    "moveaxis",
    "roll",
    "rot90",
    "repeat_interleave",
    "broadcast_to",
    "fliplr",
    "flipud",
    "narrow",
    "split",
    "chunk",
    "unbind",
    "tensor_split",
    "hsplit",
    "vsplit",
    "dsplit",
    # indexing
    "gather",
    "scatter",
    "scatter_add",
    "scatter_reduce",
    "index_select",
    "index_add",
    "index_copy",
    "index_fill",
    "masked_fill",
    "masked_select",
    "nonzero",
    "argwhere",
    "take_along_dim",
    "take",
    # matrices and products
    "tril",
    "triu",
    "diag",
    "diagonal",
    "diag_embed",
    "diagflat",
    "trace",
    "matmul",
    "mm",
    "bmm",
    "mv",
    "dot",
    "outer",
    "ger",
    "inner",
    "kron",
    "cross",
    "baddbmm",
    "addmm",
    "addmv",
    "addbmm",
    "norm",
    "dist",
    # reductions and scans
    "sum",
    "nansum",
    "mean",
    "nanmean",
    "prod",
    "std",
    "var",
    "max",
    "min",
    "amax",
    "amin",
    "aminmax",
    "argmax",
    "argmin",
    "all",
    "any",
    "logsumexp",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "count_nonzero",
    "median",
    "nanmedian",
    "mode",
    "kthvalue",
    # sorting
    "sort",
    "argsort",
    "msort",
    "topk",
    "unique",
    "unique_consecutive",
    # element-wise
    "exp",
    "exp2",
    "expm1",
    "log",
    "log2",
    "log10",
    "log1p",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "sigmoid",
    "erf",
    "erfc",
    "erfinv",
    "reciprocal",
    "lgamma",
    "digamma",
    "logit",
    "abs",
    "absolute",
    "neg",
    "negative",
    "positive",
    "sign",
    "sgn",
    "square",
    "floor",
    "ceil",
    "trunc",
    "fix",
    "frac",
    "round",
    "bitwise_not",
    "logical_not",
    "isnan",
    "isinf",
    "isfinite",
    "isposinf",
    "isneginf",
    "signbit",
    "isreal",
    "add",
    "sub",
    "subtract",
    "mul",
    "multiply",
    "div",
    "divide",
    "true_divide",
    "floor_divide",
    "remainder",
    "fmod",
    "pow",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "atan2",
    "arctan2",
    "hypot",
    "copysign",
    "logaddexp",
    "logaddexp2",
    "xlogy",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "logical_and",
    "logical_or",
    "logical_xor",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "not_equal",
    "isclose",
    "allclose",
    "equal",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
    "lerp",
    "addcmul",
    "addcdiv",
    "nan_to_num",
    "softmax",
    "log_softmax",
    "relu",
    # random and info
    "bernoulli",
    "multinomial",
    "numel",
    "is_floating_point",
    "is_complex",
    "is_nonzero",
)

for _name in SHARED_WITH_FUNCTIONS:
    setattr(Tensor, _name, getattr(F, _name))

install_tensor_methods(
    {k: v for k, v in vars(Tensor).items() if not k.startswith("_") and callable(v)}
)
