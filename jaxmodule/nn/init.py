"""Parameter initialisation. Mirrors `torch.nn.init`.

Every function takes a `Parameter` or `Buffer` (or its `.data`), replaces the array it holds and
returns the same cell, as torch's functions fill a tensor in place and return it. Grad mode does not
matter (torch wraps these in `no_grad` too). Random draws come from jaxmodule's global generator, or
from `generator=` when given.

>>> import jax.numpy as jnp
>>> from jaxmodule.nn import Parameter, init
>>> w = Parameter(jnp.empty((3, 5)))
>>> init.eye_(w).sum().item()
3.0

Differences from torch: a plain `jax.Array` cannot be filled in place, so passing one raises
TypeError; values cannot match torch's bitwise (different random generator), only in distribution.

Meta cells (built under `jaxmodule.device('meta')`) are left as they are and the generator does
not advance, as in torch. A cell whose array spans several devices (after `to_empty` onto a
sharding) gets its new value from a jitted function with `out_shardings` = its sharding, so the
random draw runs sharded (threefry is partitionable) and no device ever holds the whole array;
single-device cells take the eager path, with the same numbers as always.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._random import Generator, next_key
from .parameter import INIT_FUNCTION_NAMES, _TensorCell

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]

_NonlinearityType = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
_FanMode = Literal["fan_in", "fan_out"]

_LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


# ---- helpers ---------------------------------------------------------------------------------
def _check_cell(tensor: Any, fn: str) -> _TensorCell:
    if not isinstance(tensor, _TensorCell):
        raise TypeError(
            f"nn.init.{fn}: expected a Parameter or Buffer to fill in place, got "
            f"{type(tensor).__name__} (JAX arrays are immutable; wrap it: `p = nn.Parameter(x)`)"
        )
    return tensor


def _sample_dtype(dtype: Any) -> Any:
    """Draw in float32 (or float64) and cast, as torch samples low precision at higher precision."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return dtype
    return jnp.float32


def _store(tensor: _TensorCell, value: Any) -> _TensorCell:
    tensor._store(value)  # bypasses the grad-mode check, as torch's `with torch.no_grad()`
    return tensor


def _spread(v: Any) -> Any:
    """The sharding of a concrete array laid over several devices, else None."""
    if isinstance(v, jax.core.Tracer):
        return None
    s = getattr(v, "sharding", None)
    return s if s is not None and len(s.device_set) > 1 else None


@functools.cache
def _sharded(fn: Callable[..., Any], sharding: Any) -> Callable[..., Any]:
    return jax.jit(fn, static_argnums=(0, 1), out_shardings=sharding)


def _fill(
    tensor: _TensorCell,
    fn: Callable[..., Any],
    dtype: Any,
    *args: Any,
    keys: int = 0,
    generator: Generator | None = None,
) -> _TensorCell:
    """Store `fn(shape, dtype, *fresh_keys, *args)` into the cell, where the cell lives.

    Meta cells stay as they are (no key is drawn); a cell spread over several devices gets the
    value from `fn` jitted with `out_shardings` = its sharding; others call `fn` eagerly.
    """
    v = tensor._value
    if isinstance(v, jax.ShapeDtypeStruct):
        return tensor
    drawn = [next_key(generator) for _ in range(keys)]
    sharding = _spread(v)
    f = fn if sharding is None else _sharded(fn, sharding)
    return _store(tensor, f(tuple(v.shape), dtype, *drawn, *args))


def _uniform_value(shape: tuple, dt: Any, key: jax.Array, a: float, b: float) -> jax.Array:
    return a + (b - a) * jax.random.uniform(key, shape, dt)


def _normal_value(shape: tuple, dt: Any, key: jax.Array, mean: float, std: float) -> jax.Array:
    return mean + std * jax.random.normal(key, shape, dt)


def _uniform(tensor: _TensorCell, a: float, b: float, generator: Generator | None) -> _TensorCell:
    return _fill(
        tensor, _uniform_value, _sample_dtype(tensor.dtype), a, b, keys=1, generator=generator
    )


def _normal(
    tensor: _TensorCell, mean: float, std: float, generator: Generator | None
) -> _TensorCell:
    return _fill(
        tensor, _normal_value, _sample_dtype(tensor.dtype), mean, std, keys=1, generator=generator
    )


def _trunc_normal_value(
    shape: tuple, dt: Any, key: jax.Array, mean: float, std: float, a: float, b: float
) -> jax.Array:
    z = jax.random.truncated_normal(key, (a - mean) / std, (b - mean) / std, shape, dt)
    # Rounding in mean + std * z can step a hair past a bound: clip to keep [a, b] exact.
    return jnp.clip(mean + std * z, a, b)


def _full_value(shape: tuple, dt: Any, val: Any) -> jax.Array:
    return jnp.full(shape, val, dt)


def _eye_value(shape: tuple[int, int], dt: Any) -> jax.Array:
    rows, cols = shape
    return jnp.eye(rows, cols, dtype=dt)


def _orthogonal_value(shape: tuple, dt: Any, key: jax.Array, gain: float) -> jax.Array:
    rows = shape[0]
    cols = math.prod(shape) // rows
    flat = jax.random.normal(key, (rows, cols), dt)
    if rows < cols:
        flat = flat.T
    q, r = jnp.linalg.qr(flat)
    q = q * jnp.sign(jnp.diagonal(r))  # make the decomposition unique (torch's sign fix)
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape)


def _sparse_value(
    shape: tuple, dt: Any, key: jax.Array, order_key: jax.Array, std: float, num_zeros: int
) -> jax.Array:
    values = std * jax.random.normal(key, shape, dt)
    # A random permutation of the rows per column: rank of i.i.d. uniforms down each column.
    ranks = jnp.argsort(jnp.argsort(jax.random.uniform(order_key, shape), axis=0), axis=0)
    return jnp.where(ranks < num_zeros, 0, values)


# ---- gains and fans ------------------------------------------------------------------------
def calculate_gain(nonlinearity: _NonlinearityType, param: int | float | None = None) -> float:
    """Return the recommended gain for a nonlinearity. Mirrors `torch.nn.init.calculate_gain`.

    Args:
        nonlinearity: the `nn.functional` name ('linear', 'conv2d', 'sigmoid', 'tanh', 'relu',
            'leaky_relu', 'selu', ...).
        param: the negative slope for 'leaky_relu' (default 0.01).

    >>> calculate_gain('tanh')
    1.6666666666666667
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight laid out (out, in, *kernel), as torch computes them."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive_field_size = 1
    for s in shape[2:]:
        receptive_field_size *= s
    return shape[1] * receptive_field_size, shape[0] * receptive_field_size


def _calculate_correct_fan(tensor: Any, mode: _FanMode) -> int:
    mode = mode.lower()  # type: ignore[assignment]
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# ---- simple fills --------------------------------------------------------------------------
def uniform_(
    tensor: Any, a: float = 0.0, b: float = 1.0, generator: Generator | None = None
) -> Any:
    """Fill with samples from U(a, b). Mirrors `torch.nn.init.uniform_`.

    Args:
        tensor: the Parameter/Buffer to fill.
        a: lower bound.
        b: upper bound.
        generator: the Generator to draw from (default: the global one).
    """
    return _uniform(_check_cell(tensor, "uniform_"), a, b, generator)


def normal_(
    tensor: Any, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None
) -> Any:
    """Fill with samples from N(mean, std^2). Mirrors `torch.nn.init.normal_`.

    Args:
        tensor: the Parameter/Buffer to fill.
        mean: the mean.
        std: the standard deviation.
        generator: the Generator to draw from (default: the global one).
    """
    return _normal(_check_cell(tensor, "normal_"), mean, std, generator)


def trunc_normal_(
    tensor: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Generator | None = None,
) -> Any:
    """Fill with samples from N(mean, std^2) truncated to [a, b]. Mirrors `torch.nn.init.trunc_normal_`.

    Args:
        tensor: the Parameter/Buffer to fill.
        mean: the mean of the untruncated normal.
        std: its standard deviation.
        a: the lower cutoff.
        b: the upper cutoff.
        generator: the Generator to draw from (default: the global one).

    Samples by inverse-CDF (`jax.random.truncated_normal`) rather than torch's rejection loop; the
    distribution is the same.
    """
    tensor = _check_cell(tensor, "trunc_normal_")
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    return _fill(
        tensor,
        _trunc_normal_value,
        _sample_dtype(tensor.dtype),
        mean,
        std,
        a,
        b,
        keys=1,
        generator=generator,
    )


def constant_(tensor: Any, val: float) -> Any:
    """Fill with `val`. Mirrors `torch.nn.init.constant_`."""
    tensor = _check_cell(tensor, "constant_")
    return _fill(tensor, _full_value, tensor.dtype, val)


def ones_(tensor: Any) -> Any:
    """Fill with 1. Mirrors `torch.nn.init.ones_`."""
    tensor = _check_cell(tensor, "ones_")
    return _fill(tensor, _full_value, tensor.dtype, 1)


def zeros_(tensor: Any) -> Any:
    """Fill with 0. Mirrors `torch.nn.init.zeros_`."""
    tensor = _check_cell(tensor, "zeros_")
    return _fill(tensor, _full_value, tensor.dtype, 0)


def eye_(tensor: Any) -> Any:
    """Fill a 2-D tensor with the identity matrix. Mirrors `torch.nn.init.eye_`."""
    tensor = _check_cell(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, _eye_value, tensor.dtype)


def dirac_(tensor: Any, groups: int = 1) -> Any:
    """Fill a {3, 4, 5}-D conv weight with the Dirac delta. Mirrors `torch.nn.init.dirac_`.

    Args:
        tensor: a conv weight (out, in, *kernel).
        groups: number of groups in the conv layer; each group preserves identity.
    """
    tensor = _check_cell(tensor, "dirac_")
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_grp = shape[0] // groups
    min_dim = min(out_per_grp, shape[1])
    if isinstance(tensor._value, jax.ShapeDtypeStruct):
        return tensor
    w = np.zeros(shape, dtype=np.float32)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min_dim):
            w[(g * out_per_grp + d, d, *centre)] = 1
    sharding = _spread(tensor._value)  # a host array goes to each device as its shard only
    return _store(
        tensor,
        jnp.asarray(w, tensor.dtype)
        if sharding is None
        else jax.device_put(w.astype(tensor.dtype), sharding),
    )


# ---- scaled random fills -------------------------------------------------------------------
def _xavier_std(tensor: Any, gain: float) -> float:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def xavier_uniform_(tensor: Any, gain: float = 1.0, generator: Generator | None = None) -> Any:
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)). Mirrors `torch.nn.init.xavier_uniform_`."""
    tensor = _check_cell(tensor, "xavier_uniform_")
    a = math.sqrt(3.0) * _xavier_std(tensor, gain)
    return _uniform(tensor, -a, a, generator)


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: Generator | None = None) -> Any:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)). Mirrors `torch.nn.init.xavier_normal_`."""
    tensor = _check_cell(tensor, "xavier_normal_")
    return _normal(tensor, 0.0, _xavier_std(tensor, gain), generator)


def _kaiming_std(tensor: Any, a: float, mode: _FanMode, nonlinearity: _NonlinearityType) -> float:
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: Generator | None = None,
) -> Any:
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan_mode). Mirrors `torch.nn.init.kaiming_uniform_`.

    Args:
        tensor: the Parameter/Buffer to fill, laid out (out, in, *kernel).
        a: negative slope of the rectifier (used with 'leaky_relu').
        mode: 'fan_in' (default) or 'fan_out'.
        nonlinearity: the `nn.functional` name, 'leaky_relu' by default.
        generator: the Generator to draw from (default: the global one).
    """
    tensor = _check_cell(tensor, "kaiming_uniform_")
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return _uniform(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Any,
    a: float = 0,
    mode: _FanMode = "fan_in",
    nonlinearity: _NonlinearityType = "leaky_relu",
    generator: Generator | None = None,
) -> Any:
    """He normal: N(0, std^2), std = gain / sqrt(fan_mode). Mirrors `torch.nn.init.kaiming_normal_`.

    Args:
        tensor: the Parameter/Buffer to fill, laid out (out, in, *kernel).
        a: negative slope of the rectifier (used with 'leaky_relu').
        mode: 'fan_in' (default) or 'fan_out'.
        nonlinearity: the `nn.functional` name, 'leaky_relu' by default.
        generator: the Generator to draw from (default: the global one).
    """
    tensor = _check_cell(tensor, "kaiming_normal_")
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    return _normal(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor: Any, gain: float = 1, generator: Generator | None = None) -> Any:
    """Fill with a (semi-)orthogonal matrix, trailing dims flattened. Mirrors `torch.nn.init.orthogonal_`.

    Args:
        tensor: a Parameter/Buffer with at least 2 dimensions.
        gain: scaling factor.
        generator: the Generator to draw from (default: the global one).
    """
    tensor = _check_cell(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if 0 in tensor.shape:
        return tensor
    return _fill(
        tensor, _orthogonal_value, _sample_dtype(tensor.dtype), gain, keys=1, generator=generator
    )


def sparse_(
    tensor: Any, sparsity: float, std: float = 0.01, generator: Generator | None = None
) -> Any:
    """Fill a 2-D tensor with N(0, std^2) values, zeroing `ceil(sparsity * rows)` per column. Mirrors `torch.nn.init.sparse_`.

    Args:
        tensor: a 2-D Parameter/Buffer.
        sparsity: fraction of elements in each column set to zero.
        std: standard deviation of the non-zero values.
        generator: the Generator to draw from (default: the global one).
    """
    tensor = _check_cell(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    num_zeros = math.ceil(sparsity * tensor.shape[0])
    return _fill(
        tensor,
        _sparse_value,
        _sample_dtype(tensor.dtype),
        std,
        num_zeros,
        keys=2,
        generator=generator,
    )


# ---- deprecated spellings without the trailing underscore (torch keeps them) ----------------
def _make_deprecate(meth: Callable[..., Any]) -> Callable[..., Any]:
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = (
        f"Deprecated alias of `{new_name}` (warns FutureWarning), as in torch."
    )
    deprecated_init.__name__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)

INIT_FUNCTION_NAMES.update(
    name
    for name, value in list(globals().items())
    if not name.startswith("_")
    and callable(value)
    and getattr(value, "__module__", None) == __name__
)
