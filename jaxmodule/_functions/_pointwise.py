"""Element-wise math and comparisons with torch's type promotion.

Binary functions promote as `torch.result_type` does (`_common.result_type`): an int tensor plus
a Python float is float32, an int8 tensor plus a 0-d int32 tensor stays int8. Unary float
functions (`exp`, `sqrt`, `sigmoid`, ...) turn integer and bool inputs into the default float
dtype, as torch does. No function takes `out=`: JAX arrays cannot be written into.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

from .._dtype import get_default_dtype
from ..nn.functional import activation as _act
from ._common import arr, is_int_or_bool, is_number, promote, to_float

__all__ = [
    # unary, result in the default float for integer input
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
    # unary, dtype kept
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
    # predicates
    "isnan",
    "isinf",
    "isfinite",
    "isposinf",
    "isneginf",
    "signbit",
    "isreal",
    # binary
    "add",
    "sub",
    "subtract",
    "rsub",
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
    # comparisons
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
    # others
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
]

Unary = Callable[[Any], jax.Array]
Binary = Callable[[Any, Any], jax.Array]


def _named(f: Callable, name: str, doc: str) -> Callable:
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    return f


# ---- unary ---------------------------------------------------------------------------------
def _float_unary(name: str, fn: Callable[[jax.Array], jax.Array]) -> Unary:
    def op(input: Any) -> jax.Array:
        return fn(to_float(input))

    return _named(
        op,
        name,
        f"Element-wise `{name}`. Mirrors `torch.{name}` (integer and bool "
        "inputs give the default float dtype, as in torch).",
    )


exp = _float_unary("exp", jnp.exp)
exp2 = _float_unary("exp2", jnp.exp2)
expm1 = _float_unary("expm1", jnp.expm1)
log = _float_unary("log", jnp.log)
log2 = _float_unary("log2", jnp.log2)
log10 = _float_unary("log10", jnp.log10)
log1p = _float_unary("log1p", jnp.log1p)
sqrt = _float_unary("sqrt", jnp.sqrt)
rsqrt = _float_unary("rsqrt", jax.lax.rsqrt)
sin = _float_unary("sin", jnp.sin)
cos = _float_unary("cos", jnp.cos)
tan = _float_unary("tan", jnp.tan)
asin = arcsin = _float_unary("asin", jnp.arcsin)
acos = arccos = _float_unary("acos", jnp.arccos)
atan = arctan = _float_unary("atan", jnp.arctan)
sinh = _float_unary("sinh", jnp.sinh)
cosh = _float_unary("cosh", jnp.cosh)
tanh = _float_unary("tanh", jnp.tanh)
asinh = _float_unary("asinh", jnp.arcsinh)
acosh = _float_unary("acosh", jnp.arccosh)
atanh = _float_unary("atanh", jnp.arctanh)
sigmoid = _float_unary("sigmoid", jax.nn.sigmoid)
erf = _float_unary("erf", jsp.erf)
erfc = _float_unary("erfc", jsp.erfc)
erfinv = _float_unary("erfinv", jsp.erfinv)
reciprocal = _float_unary("reciprocal", jnp.reciprocal)
lgamma = _float_unary("lgamma", jsp.gammaln)
digamma = _float_unary("digamma", jsp.digamma)


def logit(input: Any, eps: float | None = None) -> jax.Array:
    """log(p / (1 - p)), with p clamped to [eps, 1 - eps] when eps is given. Mirrors `torch.logit`."""
    x = to_float(input)
    if eps is not None:
        x = jnp.clip(x, eps, 1 - eps)
    return jnp.log(x / (1 - x))


def _same_unary(
    name: str, fn: Callable[[jax.Array], jax.Array], int_identity: bool = False
) -> Unary:
    def op(input: Any) -> jax.Array:
        x = arr(input)
        return x if int_identity and is_int_or_bool(x.dtype) else fn(x)

    return _named(
        op, name, f"Element-wise `{name}`, keeping the input dtype. Mirrors `torch.{name}`."
    )


abs = absolute = _same_unary("abs", jnp.abs)  # noqa: A001
neg = negative = _same_unary("neg", jnp.negative)
positive = _same_unary("positive", lambda x: x)
sign = _same_unary("sign", jnp.sign)
sgn = _same_unary("sgn", jnp.sign)
square = _same_unary("square", jnp.square)
floor = _same_unary("floor", jnp.floor, int_identity=True)
ceil = _same_unary("ceil", jnp.ceil, int_identity=True)
trunc = fix = _same_unary("trunc", jnp.trunc, int_identity=True)
bitwise_not = _same_unary("bitwise_not", jnp.invert)


def frac(input: Any) -> jax.Array:
    """x - trunc(x). Mirrors `torch.frac` (floating inputs only)."""
    x = arr(input)
    if is_int_or_bool(x.dtype):
        raise RuntimeError(f"frac(): expected a floating point input, got {x.dtype}")
    return x - jnp.trunc(x)


def round(input: Any, *, decimals: int = 0) -> jax.Array:  # noqa: A001
    """Round half to even, optionally to `decimals` places. Mirrors `torch.round`.

    With decimals, computes `rint(x * 10**d) / 10**d` (d > 0) or `rint(x / 10**-d) * 10**-d`,
    torch's formula.

    >>> import jax.numpy as jnp
    >>> round(jnp.array([0.5, 1.5, 2.675]), decimals=0)
    Array([0., 2., 3.], dtype=float32)
    """
    x = arr(input)
    if is_int_or_bool(x.dtype):
        if decimals:
            raise RuntimeError(
                f"round(): decimals is only supported for floating point inputs, got {x.dtype}"
            )
        return x
    if decimals == 0:
        return jnp.round(x)
    if decimals > 0:
        p = jnp.asarray(10.0**decimals, x.dtype)
        return jnp.round(x * p) / p
    p = jnp.asarray(10.0**-decimals, x.dtype)
    return jnp.round(x / p) * p


def _predicate(name: str, fn: Callable[[jax.Array], jax.Array]) -> Unary:
    def op(input: Any) -> jax.Array:
        return fn(arr(input))

    return _named(op, name, f"Element-wise `{name}`, a bool array. Mirrors `torch.{name}`.")


isnan = _predicate("isnan", jnp.isnan)
isinf = _predicate("isinf", jnp.isinf)
isfinite = _predicate("isfinite", jnp.isfinite)
isposinf = _predicate("isposinf", jnp.isposinf)
isneginf = _predicate("isneginf", jnp.isneginf)
signbit = _predicate("signbit", jnp.signbit)
isreal = _predicate("isreal", jnp.isreal)
logical_not = _predicate("logical_not", jnp.logical_not)


# ---- binary --------------------------------------------------------------------------------
def _binary(
    name: str,
    fn: Callable[[jax.Array, jax.Array], jax.Array],
    float_result: bool = False,
    doc: str = "",
) -> Binary:
    def op(input: Any, other: Any) -> jax.Array:
        a, b = promote(input, other)
        if float_result and is_int_or_bool(a.dtype):
            a, b = a.astype(get_default_dtype()), b.astype(get_default_dtype())
        return fn(a, b)

    return _named(
        op,
        name,
        doc or f"Element-wise `{name}` with torch's type promotion. Mirrors `torch.{name}`.",
    )


mul = multiply = _binary("mul", jnp.multiply)
maximum = _binary(
    "maximum", jnp.maximum, doc="Element-wise maximum, NaN propagating. Mirrors `torch.maximum`."
)
minimum = _binary(
    "minimum", jnp.minimum, doc="Element-wise minimum, NaN propagating. Mirrors `torch.minimum`."
)
fmax = _binary("fmax", jnp.fmax, doc="Element-wise maximum, ignoring NaN. Mirrors `torch.fmax`.")
fmin = _binary("fmin", jnp.fmin, doc="Element-wise minimum, ignoring NaN. Mirrors `torch.fmin`.")
remainder = _binary(
    "remainder",
    jnp.remainder,
    doc="Python-style modulus (sign of the divisor). Mirrors `torch.remainder`.",
)
fmod = _binary(
    "fmod", jnp.fmod, doc="C-style modulus (sign of the dividend). Mirrors `torch.fmod`."
)
floor_divide = _binary(
    "floor_divide", jnp.floor_divide, doc="Division rounded down. Mirrors `torch.floor_divide`."
)
atan2 = arctan2 = _binary("atan2", jnp.arctan2, float_result=True)
hypot = _binary("hypot", jnp.hypot, float_result=True)
copysign = _binary("copysign", jnp.copysign, float_result=True)
logaddexp = _binary("logaddexp", jnp.logaddexp, float_result=True)
logaddexp2 = _binary("logaddexp2", jnp.logaddexp2, float_result=True)
xlogy = _binary("xlogy", jsp.xlogy, float_result=True)
bitwise_and = _binary("bitwise_and", jnp.bitwise_and)
bitwise_or = _binary("bitwise_or", jnp.bitwise_or)
bitwise_xor = _binary("bitwise_xor", jnp.bitwise_xor)
logical_and = _binary("logical_and", jnp.logical_and)
logical_or = _binary("logical_or", jnp.logical_or)
logical_xor = _binary("logical_xor", jnp.logical_xor)
eq = _binary("eq", jnp.equal)
ne = not_equal = _binary("ne", jnp.not_equal)
lt = less = _binary("lt", jnp.less)
le = less_equal = _binary("le", jnp.less_equal)
gt = greater = _binary("gt", jnp.greater)
ge = greater_equal = _binary("ge", jnp.greater_equal)


def _check_alpha(fn: str, dtype: Any, alpha: Any) -> None:
    if is_int_or_bool(dtype) and isinstance(alpha, builtins.float):
        raise RuntimeError(
            f"{fn}: for integral input tensors, argument alpha must not be a floating point number."
        )


def add(input: Any, other: Any, *, alpha: Any = 1) -> jax.Array:
    """input + alpha * other. Mirrors `torch.add`.

    >>> import jax.numpy as jnp
    >>> add(jnp.array([1, 2]), 0.5)  # int tensor + Python float -> float32, as in torch
    Array([1.5, 2.5], dtype=float32)
    """
    a, b = promote(input, other)
    if alpha == 1:
        return a + b
    _check_alpha("add", a.dtype, alpha)
    return a + b * jnp.asarray(alpha, a.dtype)


def sub(input: Any, other: Any, *, alpha: Any = 1) -> jax.Array:
    """input - alpha * other. Mirrors `torch.sub` (bool - bool raises, as in torch)."""
    a, b = promote(input, other)
    if a.dtype == jnp.bool_:
        raise RuntimeError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. "
            "Use the `^` or `logical_xor()` operator instead."
        )
    if alpha == 1:
        return a - b
    _check_alpha("sub", a.dtype, alpha)
    return a - b * jnp.asarray(alpha, a.dtype)


subtract = sub


def rsub(input: Any, other: Any, *, alpha: Any = 1) -> jax.Array:
    """other - alpha * input. Mirrors `torch.rsub`."""
    return sub(other, input, alpha=alpha)


def _int_trunc_div(a: jax.Array, b: jax.Array) -> jax.Array:
    q = jnp.floor_divide(a, b)
    inexact = (q * b != a) & ((a < 0) != (b < 0))
    return q + inexact.astype(q.dtype)


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> jax.Array:
    """Division: true division (ints give float), or rounded `'trunc'` / `'floor'`. Mirrors `torch.div`.

    Integer division by zero is not detected (torch raises; JAX returns an unspecified value).
    """
    a, b = promote(input, other)
    if rounding_mode is None:
        if is_int_or_bool(a.dtype):
            a, b = a.astype(get_default_dtype()), b.astype(get_default_dtype())
        return jnp.true_divide(a, b)
    if rounding_mode == "floor":
        return jnp.floor_divide(a, b)
    if rounding_mode == "trunc":
        return _int_trunc_div(a, b) if is_int_or_bool(a.dtype) else jnp.trunc(a / b)
    raise ValueError(
        f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'"
    )


divide = div


def true_divide(dividend: Any, divisor: Any) -> jax.Array:
    """dividend / divisor with true division. Mirrors `torch.true_divide`."""
    return div(dividend, divisor)


def pow(input: Any, exponent: Any) -> jax.Array:  # noqa: A001
    """input ** exponent. Mirrors `torch.pow` (either argument may be a Python number).

    A Python int exponent of a float tensor keeps JAX's exact integer power.
    """
    if (
        isinstance(exponent, builtins.int)
        and not isinstance(exponent, builtins.bool)
        and not is_number(input)
    ):
        x = arr(input)
        if is_int_or_bool(x.dtype) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        return jnp.power(x, exponent)
    a, b = promote(input, exponent)
    return jnp.power(a, b)


# ---- comparisons returning Python bools ----------------------------------------------------
def isclose(
    input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> jax.Array:
    """|input - other| <= atol + rtol * |other|, element-wise. Mirrors `torch.isclose`."""
    a, b = arr(input), arr(other)
    if a.dtype != b.dtype:
        raise RuntimeError(f"isclose(): {a.dtype} did not match {b.dtype}")
    close = a == b
    if is_int_or_bool(a.dtype):
        a, b = a.astype(get_default_dtype()), b.astype(get_default_dtype())
    finite = jnp.isfinite(a) & jnp.isfinite(b)
    close = close | (finite & (jnp.abs(a - b) <= atol + rtol * jnp.abs(b)))
    if equal_nan:
        close = close | (jnp.isnan(a) & jnp.isnan(b))
    return close


def allclose(
    input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    """True if every element is close. Mirrors `torch.allclose` (a Python bool: eager only)."""
    return builtins.bool(jnp.all(isclose(input, other, rtol, atol, equal_nan)))


def equal(input: Any, other: Any) -> bool:
    """True if both have the same shape and elements. Mirrors `torch.equal` (a Python bool)."""
    a, b = promote(input, other)
    return a.shape == b.shape and builtins.bool(jnp.all(a == b))


# ---- clamping and blends -------------------------------------------------------------------
def clamp(input: Any, min: Any = None, max: Any = None) -> jax.Array:  # noqa: A002 - torch names
    """min(max(input, min), max) with torch's promotion; where min > max the result is max.

    Mirrors `torch.clamp`; `min`/`max` may be numbers or arrays.
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    x, lo, hi = promote(input, min, max)
    if lo is not None:
        x = jnp.maximum(x, lo)
    return x if hi is None else jnp.minimum(x, hi)


clip = clamp


def clamp_min(input: Any, min: Any) -> jax.Array:  # noqa: A002
    """clamp(input, min=min). Mirrors `torch.clamp_min`."""
    return clamp(input, min=min)


def clamp_max(input: Any, max: Any) -> jax.Array:  # noqa: A002
    """clamp(input, max=max). Mirrors `torch.clamp_max`."""
    return clamp(input, max=max)


def lerp(input: Any, end: Any, weight: Any) -> jax.Array:
    """input + weight * (end - input), with torch's two-sided formula. Mirrors `torch.lerp`."""
    a, b, w = promote(input, end, weight)
    d = b - a
    return jnp.where(jnp.abs(w) < 0.5, a + w * d, b - d * (1 - w))


def addcmul(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> jax.Array:
    """input + value * tensor1 * tensor2. Mirrors `torch.addcmul`."""
    x, a, b = promote(input, tensor1, tensor2)
    return x + jnp.asarray(value, x.dtype) * a * b


def addcdiv(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> jax.Array:
    """input + value * tensor1 / tensor2. Mirrors `torch.addcdiv` (no integer division, as torch)."""
    x, a, b = promote(input, tensor1, tensor2)
    if is_int_or_bool(arr(tensor1).dtype) and is_int_or_bool(arr(tensor2).dtype):
        raise RuntimeError(
            "Integer division with addcdiv is no longer supported, and in a future "
            "release addcdiv will perform a true division of tensor1 and tensor2."
        )
    return x + jnp.asarray(value, x.dtype) * a / b


def nan_to_num(
    input: Any, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
) -> jax.Array:
    """NaN -> nan, +inf -> posinf (dtype max), -inf -> neginf (dtype min). Mirrors `torch.nan_to_num`."""
    return jnp.nan_to_num(arr(input), nan=nan, posinf=posinf, neginf=neginf)


# ---- activations torch also has at the top level -------------------------------------------
def softmax(input: Any, dim: int, dtype: Any = None) -> jax.Array:
    """exp(x) / sum(exp(x)) along `dim`. Mirrors `torch.softmax` (same as `nn.functional.softmax`)."""
    return _act.softmax(input, dim, dtype=dtype)


def log_softmax(input: Any, dim: int, dtype: Any = None) -> jax.Array:
    """log(softmax(x)) along `dim`, computed stably. Mirrors `torch.log_softmax`."""
    return _act.log_softmax(input, dim, dtype=dtype)


def relu(input: Any) -> jax.Array:
    """max(x, 0). Mirrors `torch.relu`."""
    return _act.relu(input)
