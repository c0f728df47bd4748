"""Element-wise functions against torch: values, torch's type promotion, rounding modes, errors."""

import jaxmodule
import numpy as np
import pytest

from tests.functions._harness import C, E, check, check_error, randint, randn

X = randn(3, 4)
Y = randn(3, 4, seed=1)
ROW = randn(4, seed=2)
P = np.abs(randn(3, 4, seed=3)) + 0.1  # positive
U = np.clip(randn(3, 4, seed=4) * 0.3, -0.9, 0.9)  # in (-1, 1)
INTS = randint(-7, 8, 3, 4)
J = randint(1, 5, 3, 4, seed=1) * np.where(randint(0, 2, 3, 4, seed=2) > 0, 1, -1)  # non-zero
I8 = randint(-5, 5, 4, dtype=np.int8)
U8 = randint(0, 9, 4, dtype=np.uint8)
B = X > 0
H = randn(4, seed=5).astype(np.float16)
S0 = np.array(3, np.int64)  # a 0-d tensor
F0 = np.array(2.5, np.float32)
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5], np.float32)
HALVES = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.2345, 2.675, -3.14159], np.float32)

_FLOAT_UNARY = [
    "exp",
    "exp2",
    "expm1",
    "sin",
    "cos",
    "tan",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "sigmoid",
    "erf",
    "erfc",
    "reciprocal",
]
_POS_UNARY = ["log", "log2", "log10", "log1p", "sqrt", "rsqrt", "lgamma", "digamma", "acosh"]
_UNIT_UNARY = ["asin", "acos", "atanh", "erfinv", "arcsin", "arccos"]

CASES = [
    *[C(n, X) for n in _FLOAT_UNARY],
    *[C(n, INTS) for n in ("exp", "sigmoid", "sin", "reciprocal")],
    *[C(n, P + (1.0 if n == "acosh" else 0.0)) for n in _POS_UNARY],
    C("sqrt", np.abs(INTS)),
    C("log", B),
    *[C(n, U) for n in _UNIT_UNARY],
    C("logit", P / (P.max() + 1)),
    C("logit", X, eps=0.1),
    *[
        C(n, X)
        for n in (
            "abs",
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
        )
    ],
    *[C(n, INTS) for n in ("abs", "neg", "sign", "square", "floor", "ceil", "trunc", "round")],
    C("round", HALVES),
    C("round", HALVES, decimals=2),
    C("round", HALVES * 1000, decimals=-2),
    C("round", HALVES, decimals=1),
    C("bitwise_not", INTS),
    C("bitwise_not", B),
    C("logical_not", INTS),
    C("logical_not", X),
    *[C(n, SPECIAL) for n in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit")],
    C("isnan", INTS),
    C("nan_to_num", SPECIAL),
    C("nan_to_num", SPECIAL, nan=1.0, posinf=2.0, neginf=-2.0),
    # binary arithmetic and promotion
    C("add", X, Y),
    C("add", X, ROW),
    C("add", X, 2),
    C("add", X, 0.5),
    C("add", INTS, 2),
    C("add", INTS, 2.5),
    C("add", INTS, X),
    C("add", INTS, Y, alpha=2.0),
    C("add", X, Y, alpha=-0.5),
    C("add", INTS, INTS, alpha=3),
    C("add", I8, S0),
    C("add", I8, F0),
    C("add", U8, I8),
    C("add", B, B),
    C("add", B, 1),
    C("add", H, X[0]),
    C("add", H, F0),
    C("add", H, 2.0),
    C("add", S0, F0),
    C("add", I8, 300),
    C("sub", X, Y),
    C("sub", INTS, 1.5),
    C("sub", X, Y, alpha=2),
    C("subtract", INTS, J),
    C("rsub", X, Y),
    C("rsub", X, 1.0, alpha=2),
    C("mul", X, Y),
    C("mul", INTS, 0.5),
    C("mul", B, INTS),
    C("multiply", U8, I8),
    C("div", X, Y),
    C("div", INTS, J),
    C("div", INTS, 2),
    C("div", X, 2),
    C("div", INTS, J, rounding_mode="floor"),
    C("div", INTS, J, rounding_mode="trunc"),
    C("div", X, Y, rounding_mode="floor"),
    C("div", X, Y, rounding_mode="trunc"),
    C("divide", INTS, J),
    C("true_divide", INTS, J),
    C("floor_divide", INTS, J),
    C("floor_divide", X, Y),
    C("remainder", INTS, J),
    C("remainder", X, Y),
    C("remainder", INTS, 3),
    C("fmod", INTS, J),
    C("fmod", X, Y),
    C("pow", X, 2),
    C("pow", P, 0.5),
    C("pow", INTS, 2),
    C("pow", INTS, 0.5),
    C("pow", P, Y),
    C("pow", 2.0, X),
    C("pow", 2, INTS.clip(0, 5)),
    C("pow", X, 3),
    C("pow", INTS.clip(0, 3), J.clip(0, 3)),
    C("maximum", X, Y),
    C("maximum", INTS, J),
    C("maximum", SPECIAL, np.zeros(6, np.float32)),
    C("minimum", X, Y),
    C("minimum", SPECIAL, np.zeros(6, np.float32)),
    C("minimum", INTS, X),
    C("fmax", SPECIAL, np.ones(6, np.float32)),
    C("fmin", SPECIAL, np.ones(6, np.float32)),
    C("atan2", X, Y),
    C("atan2", INTS, J),
    C("arctan2", Y, X),
    C("hypot", X, Y),
    C("copysign", X, Y),
    C("logaddexp", X, Y),
    C("logaddexp2", X, Y),
    C("xlogy", X, P),
    C("xlogy", np.zeros(4, np.float32), ROW),
    C("bitwise_and", INTS, J),
    C("bitwise_or", INTS, J),
    C("bitwise_xor", B, B[::-1].copy()),
    C("logical_and", X, INTS),
    C("logical_or", B, INTS),
    C("logical_xor", X, Y),
    *[
        C(n, X, Y)
        for n in (
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
        )
    ],
    C("eq", INTS, 2),
    C("lt", INTS, 2.5),
    C("ge", X, ROW),
    C("eq", INTS, J),
    C("lt", I8, S0),
    C("gt", B, 0),
    # clamping, blends
    C("clamp", X, -0.5, 0.5),
    C("clamp", X, min=0.0),
    C("clamp", X, max=0.1),
    C("clamp", INTS, -2, 3),
    C("clamp", INTS, min=0.5),
    C("clamp", X, Y, P),
    C("clamp", X, 1.0, -1.0),
    C("clamp", SPECIAL, -1, 1),
    C("clip", X, -1, 1),
    C("clamp_min", X, 0.0),
    C("clamp_max", INTS, 2),
    C("lerp", X, Y, 0.25),
    C("lerp", X, Y, 0.75),
    C("lerp", X, Y, U),
    C("addcmul", X, Y, P),
    C("addcmul", X, Y, P, value=0.5),
    C("addcdiv", X, Y, P, value=-2.0),
    C("isclose", X, X + 1e-6),
    C("isclose", X, Y, rtol=0.5, atol=0.5),
    C("isclose", SPECIAL, SPECIAL),
    C("isclose", SPECIAL, SPECIAL, equal_nan=True),
    C("isclose", INTS, J),
    C("allclose", X, X + 1e-7, jit=False),
    C("allclose", X, Y, jit=False),
    C("allclose", SPECIAL, SPECIAL, equal_nan=True, jit=False),
    C("equal", X, X.copy(), jit=False),
    C("equal", X, Y, jit=False),
    C("equal", X, X[:2].copy(), jit=False),
    C("softmax", X, 1),
    C("softmax", X, -1, dtype=np.float32),
    C("softmax", X, 0),
    C("log_softmax", X, 1),
    C("log_softmax", X, 0),
    C("relu", X),
    C("relu", INTS),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E("sub", B, B, exc=RuntimeError, match="bool tensors is not supported"),
    E("add", INTS, J, alpha=0.5, exc=RuntimeError, match="alpha must not be a floating point"),
    E("div", X, Y, rounding_mode="round", exc=(ValueError, RuntimeError), match="rounding_mode"),
    E("pow", INTS, -1, exc=RuntimeError, match="negative integer powers"),
    E("clamp", X, exc=RuntimeError, match="At least one of 'min' or 'max'"),
    E("frac", INTS, exc=RuntimeError, match="floating point"),
    E("addcdiv", X, INTS, J, exc=RuntimeError, match="Integer division with addcdiv"),
    E("isclose", X, INTS, exc=RuntimeError, match="did not match"),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


def test_promotion_table_matches_torch():
    """torch.result_type over a grid of operand kinds (dimensioned, 0-d, Python numbers)."""
    import torch
    from jaxmodule._functions._common import result_type

    from tests.functions._harness import expected_dtype, to_jax, to_torch

    operands = [
        np.ones(2, np.int8),
        np.ones(2, np.uint8),
        np.ones(2, np.int16),
        np.ones(2, np.int32),
        np.ones(2, np.int64),
        np.ones(2, np.float16),
        np.ones(2, np.float32),
        np.ones(2, bool),
        np.array(1, np.int32),
        np.array(1.0, np.float32),
        np.array(True),
        np.array(1, np.int8),
        np.array(1.0, np.float16),
        1,
        1.5,
        True,
    ]
    for a in operands:
        for b in operands:
            if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray):
                continue
            want = torch.result_type(to_torch(a), to_torch(b))
            got = result_type(to_jax(a), to_jax(b))
            assert str(got) == expected_dtype(torch.empty(0, dtype=want)), (a, b, got, want)


def test_unary_float_ops_give_default_float_for_ints():
    assert jaxmodule.exp(np.arange(3)).dtype == np.float32
    assert jaxmodule.sqrt(np.array([True])).dtype == np.float32
