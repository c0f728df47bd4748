"""Activation functions. Mirrors the activations of `torch.nn.functional`.

Values and gradients follow torch, including at the kinks: relu'(0) = 0, hardtanh and relu6 have
zero gradient at their clip points, leaky_relu/elu/prelu use the negative slope at 0, softplus turns
linear above `threshold`. Exponential branches are evaluated on clamped inputs so that the branch
`jnp.where` discards never feeds inf/NaN into a gradient.

`inplace=True` and the `relu_`-style variants are accepted for torch compatibility; JAX arrays are
immutable, so they return the result as a new array and leave the input untouched.

>>> import jax.numpy as jnp
>>> relu(jnp.array([-1.0, 0.0, 2.0]))
Array([0., 0., 2.], dtype=float32)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from ..._random import next_key
from ._eager_jit import jit_when_eager
from ._utils import unwrap

__all__ = [
    "threshold",
    "threshold_",
    "relu",
    "relu_",
    "relu6",
    "hardtanh",
    "hardtanh_",
    "elu",
    "elu_",
    "selu",
    "selu_",
    "celu",
    "celu_",
    "leaky_relu",
    "leaky_relu_",
    "prelu",
    "rrelu",
    "rrelu_",
    "glu",
    "gelu",
    "logsigmoid",
    "hardshrink",
    "tanhshrink",
    "softsign",
    "softplus",
    "softmin",
    "softmax",
    "log_softmax",
    "gumbel_softmax",
    "softshrink",
    "tanh",
    "sigmoid",
    "hardsigmoid",
    "silu",
    "mish",
    "hardswish",
]

Array = jax.Array

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _canonical_dim(dim: int, ndim: int) -> int:
    """Wrap a negative dim and check its range, raising torch's IndexError."""
    n = max(ndim, 1)
    if not -n <= dim <= n - 1:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim % n


# ---- rectifiers ------------------------------------------------------------------------------
def _threshold(x: Array, th: float, value: float) -> Array:
    x = unwrap(x)
    return jnp.where(x <= th, jnp.asarray(value, x.dtype), x)


def threshold(input: Array, threshold: float, value: float, inplace: bool = False) -> Array:
    """`value` where input <= threshold, else input. Mirrors `torch.nn.functional.threshold`."""
    return _threshold(input, threshold, value)


def threshold_(input: Array, threshold: float, value: float) -> Array:
    """`threshold`, returned as a new array (JAX arrays are immutable)."""
    return _threshold(input, threshold, value)


@jax.custom_jvp
def _relu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, jnp.zeros((), x.dtype))


# torch's threshold_backward: the gradient is zero where the input is <= 0 and passes elsewhere
# (a NaN input passes it). Written as a JVP rule because autodiff of a `where` forward keeps a
# mask and selects in both passes: about 7% of a small CNN's training step on CPU.
_relu.defjvps(lambda t, out, x: jnp.where(x <= 0, jnp.zeros((), t.dtype), t))


def relu(input: Array, inplace: bool = False) -> Array:
    """max(0, x) with relu'(0) = 0; NaN propagates, and so does its gradient (as in torch).
    Mirrors `torch.nn.functional.relu`."""
    return _relu(unwrap(input))


def relu_(input: Array) -> Array:
    """`relu`, returned as a new array (JAX arrays are immutable)."""
    return relu(input)


def hardtanh(
    input: Array, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Array:
    """Clamp to [min_val, max_val]; zero gradient at and beyond the bounds. Mirrors `torch.nn.functional.hardtanh`."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    x = unwrap(input)
    lo, hi = jnp.asarray(min_val, x.dtype), jnp.asarray(max_val, x.dtype)
    return jnp.where(x <= min_val, lo, jnp.where(x >= max_val, hi, x))


def hardtanh_(input: Array, min_val: float = -1.0, max_val: float = 1.0) -> Array:
    """`hardtanh`, returned as a new array (JAX arrays are immutable)."""
    return hardtanh(input, min_val, max_val)


def relu6(input: Array, inplace: bool = False) -> Array:
    """min(max(0, x), 6) (torch's hardtanh(x, 0, 6)). Mirrors `torch.nn.functional.relu6`."""
    return hardtanh(input, 0.0, 6.0)


def _elu(x: Array, alpha: float, scale: float, input_scale: float) -> Array:
    neg = jnp.expm1(jnp.where(x > 0, jnp.zeros((), x.dtype), x) * input_scale) * (alpha * scale)
    return jnp.where(x > 0, x * scale, neg.astype(x.dtype))


def elu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    """x if x > 0 else alpha * (exp(x) - 1). Mirrors `torch.nn.functional.elu`."""
    return _elu(unwrap(input), alpha, 1.0, 1.0)


def elu_(input: Array, alpha: float = 1.0) -> Array:
    """`elu`, returned as a new array (JAX arrays are immutable)."""
    return elu(input, alpha)


def selu(input: Array, inplace: bool = False) -> Array:
    """scale * elu(x, alpha) with the self-normalising constants. Mirrors `torch.nn.functional.selu`."""
    return _elu(unwrap(input), _SELU_ALPHA, _SELU_SCALE, 1.0)


def selu_(input: Array) -> Array:
    """`selu`, returned as a new array (JAX arrays are immutable)."""
    return selu(input)


def celu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). Mirrors `torch.nn.functional.celu`."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _elu(unwrap(input), alpha, 1.0, 1.0 / alpha)


def celu_(input: Array, alpha: float = 1.0) -> Array:
    """`celu`, returned as a new array (JAX arrays are immutable)."""
    return celu(input, alpha)


def leaky_relu(input: Array, negative_slope: float = 0.01, inplace: bool = False) -> Array:
    """x if x > 0 else negative_slope * x. Mirrors `torch.nn.functional.leaky_relu`."""
    x = unwrap(input)
    return jnp.where(x > 0, x, x * negative_slope)


def leaky_relu_(input: Array, negative_slope: float = 0.01) -> Array:
    """`leaky_relu`, returned as a new array (JAX arrays are immutable)."""
    return leaky_relu(input, negative_slope)


def prelu(input: Array, weight: Array) -> Array:
    """Leaky relu with a learned slope per channel (dim 1) or one shared slope. Mirrors `torch.nn.functional.prelu`.

    Args:
        input: (N, C, ...) or any shape when `weight` has one element.
        weight: a scalar or a 1-D array of C slopes.
    """
    x, w = unwrap(input), unwrap(weight)
    w = jnp.asarray(w)
    if w.ndim > 1:
        raise RuntimeError(
            f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {w.ndim}"
        )
    if w.size != 1:
        if x.ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = x.shape[1] if x.ndim > 1 else 1
        if channels != w.size:
            raise RuntimeError(
                "Mismatch of parameter numbers and input channel size. Found parameter "
                f"numbers = {w.size} and channel size = {channels}."
            )
        w = w.reshape((channels,) + (1,) * (x.ndim - 2))
    else:
        w = w.reshape(())
    return jnp.where(x > 0, x, w * x)


def rrelu(
    input: Array,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> Array:
    """Randomised leaky relu. Mirrors `torch.nn.functional.rrelu`.

    In training each non-positive element gets a slope drawn from U(lower, upper) (from the
    global generator); in eval the slope is (lower + upper) / 2.
    """
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    x = unwrap(input)
    if not training:
        return leaky_relu(x, (lower + upper) / 2)
    dt = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    r = jax.random.uniform(next_key(), x.shape, dt, lower, upper)
    return jnp.where(x > 0, x, x * r)


def rrelu_(
    input: Array, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False
) -> Array:
    """`rrelu`, returned as a new array (JAX arrays are immutable)."""
    return rrelu(input, lower, upper, training)


# ---- smooth activations --------------------------------------------------------------------
def glu(input: Array, dim: int = -1) -> Array:
    """a * sigmoid(b) where a, b are the two halves of `input` along `dim`. Mirrors `torch.nn.functional.glu`."""
    x = unwrap(input)
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = _canonical_dim(dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(
            f"Halving dimension must be even, but dimension {d} is size {x.shape[d]}"
        )
    a, b = jnp.split(x, 2, axis=d)
    return a * jax.nn.sigmoid(b)


def gelu(input: Array, approximate: str = "none") -> Array:
    """x * Phi(x) (erf form) or its tanh approximation. Mirrors `torch.nn.functional.gelu`.

    Args:
        approximate: 'none' (exact, erf) or 'tanh'.
    """
    x = unwrap(input)
    if approximate == "none":
        return 0.5 * x * (1 + jax.lax.erf(x * (1 / math.sqrt(2.0))))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + jnp.tanh(inner))
    raise RuntimeError("approximate argument must be either none or tanh.")


def logsigmoid(input: Array) -> Array:
    """log(sigmoid(x)), computed stably. Mirrors `torch.nn.functional.logsigmoid`."""
    return jax.nn.log_sigmoid(unwrap(input))


def hardshrink(input: Array, lambd: float = 0.5) -> Array:
    """0 for |x| <= lambd, else x. Mirrors `torch.nn.functional.hardshrink`."""
    x = unwrap(input)
    return jnp.where((x >= -lambd) & (x <= lambd), jnp.zeros((), x.dtype), x)


def tanhshrink(input: Array) -> Array:
    """x - tanh(x). Mirrors `torch.nn.functional.tanhshrink`."""
    x = unwrap(input)
    return x - jnp.tanh(x)


def softsign(input: Array) -> Array:
    """x / (1 + |x|). Mirrors `torch.nn.functional.softsign`."""
    x = unwrap(input)
    return x / (1 + jnp.abs(x))


def softplus(input: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold. Mirrors `torch.nn.functional.softplus`."""
    x = unwrap(input)
    bx = x * beta
    linear = bx > threshold
    soft = jnp.log1p(jnp.exp(jnp.where(linear, jnp.zeros((), bx.dtype), bx))) / beta
    return jnp.where(linear, x, soft.astype(x.dtype))


def softshrink(input: Array, lambd: float = 0.5) -> Array:
    """x - lambd for x > lambd, x + lambd for x < -lambd, else 0. Mirrors `torch.nn.functional.softshrink`."""
    if lambd < 0:
        raise RuntimeError(f"softshrink: lambd must be >= 0, but found {lambd}")
    x = unwrap(input)
    zero = jnp.zeros((), x.dtype)
    return jnp.where(x > lambd, x - lambd, jnp.where(x < -lambd, x + lambd, zero))


def tanh(input: Array) -> Array:
    """Mirrors `torch.nn.functional.tanh`."""
    return jnp.tanh(unwrap(input))


def sigmoid(input: Array) -> Array:
    """Mirrors `torch.nn.functional.sigmoid`."""
    return jax.nn.sigmoid(unwrap(input))


def hardsigmoid(input: Array, inplace: bool = False) -> Array:
    """relu6(x + 3) / 6, zero gradient at and beyond +-3. Mirrors `torch.nn.functional.hardsigmoid`."""
    x = unwrap(input)
    return jnp.where(
        x <= -3, jnp.zeros((), x.dtype), jnp.where(x >= 3, jnp.ones((), x.dtype), x / 6 + 0.5)
    )


def silu(input: Array, inplace: bool = False) -> Array:
    """x * sigmoid(x). Mirrors `torch.nn.functional.silu`."""
    x = unwrap(input)
    return x * jax.nn.sigmoid(x)


def mish(input: Array, inplace: bool = False) -> Array:
    """x * tanh(softplus(x)). Mirrors `torch.nn.functional.mish`."""
    x = unwrap(input)
    return x * jnp.tanh(jax.nn.softplus(x))


def hardswish(input: Array, inplace: bool = False) -> Array:
    """x * relu6(x + 3) / 6. Mirrors `torch.nn.functional.hardswish` (gradient 0 at -3, 1 at 3)."""
    x = unwrap(input)
    return jnp.where(x <= -3, jnp.zeros((), x.dtype), jnp.where(x < 3, x * (x + 3) / 6, x))


# ---- softmax family ------------------------------------------------------------------------
def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_impl(
    name: str, fn: Any, input: Array, dim: int | None, stacklevel: int, dtype: Any
) -> Array:
    x = unwrap(input)
    x = jnp.asarray(x)
    if dtype is not None:
        x = x.astype(to_dtype(dtype))
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise NotImplementedError(
            f"{name}: expected a floating-point input (or pass dtype=), got {x.dtype}"
        )
    if dim is None:
        dim = _softmax_dim(name, x.ndim, stacklevel + 1)
    return _softmax_apply(x, fn=fn, axis=_canonical_dim(dim, x.ndim))


@jit_when_eager(static_argnames=("fn", "axis"))
def _softmax_apply(x: Array, *, fn: Any, axis: int) -> Array:
    """`fn(x, axis=axis)` (a softmax-family function), half precision accumulated in float32."""
    if x.ndim == 0:
        return fn(x[None], axis=0)[0]
    if x.dtype in (jnp.float16, jnp.bfloat16):  # torch accumulates half precision in float32
        return fn(x.astype(jnp.float32), axis=axis).astype(x.dtype)
    return fn(x, axis=axis)


def softmax(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Array:
    """exp(x) / sum(exp(x)) along `dim`. Mirrors `torch.nn.functional.softmax`.

    Args:
        dim: the dimension to normalise; None picks torch's legacy implicit dim (with a warning).
        dtype: cast the input to this dtype first.
    """
    return _softmax_impl("softmax", jax.nn.softmax, input, dim, _stacklevel, dtype)


def softmin(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Array:
    """softmax(-x) along `dim`. Mirrors `torch.nn.functional.softmin`."""
    return _softmax_impl("softmin", _softmin, input, dim, _stacklevel, dtype)


def _softmin(v: Array, axis: int) -> Array:  # module level: a static argument of a cached program
    return jax.nn.softmax(-v, axis=axis)


def log_softmax(
    input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Array:
    """log(softmax(x)) computed stably along `dim`. Mirrors `torch.nn.functional.log_softmax`."""
    return _softmax_impl("log_softmax", jax.nn.log_softmax, input, dim, _stacklevel, dtype)


def gumbel_softmax(
    logits: Array, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> Array:
    """Sample from the Gumbel-softmax distribution. Mirrors `torch.nn.functional.gumbel_softmax`.

    Args:
        logits: unnormalised log-probabilities.
        tau: temperature.
        hard: return one-hot samples whose gradient is the soft sample's (straight-through).
        eps: deprecated, no effect (as in torch).
        dim: the class dimension.

    Noise comes from jaxmodule's global generator.
    """
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    x = unwrap(logits)
    d = _canonical_dim(dim, x.ndim)
    gumbels = jax.random.gumbel(next_key(), x.shape, x.dtype)
    y_soft = jax.nn.softmax((x + gumbels) / tau, axis=d)
    if not hard:
        return y_soft
    index = jnp.argmax(y_soft, axis=d, keepdims=True)
    classes = jnp.arange(x.shape[d]).reshape((-1,) + (1,) * (x.ndim - d - 1))
    y_hard = (index == classes).astype(y_soft.dtype)
    return y_hard - jax.lax.stop_gradient(y_soft) + y_soft
