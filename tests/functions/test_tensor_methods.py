"""jaxmodule.Tensor's methods against torch.Tensor's, on jax arrays and on Parameters/Buffers.

Every case calls `jaxmodule.Tensor.<m>(x, ...)` and `torch.Tensor.<m>(t, ...)`, and the same
method on a Parameter (floating) or Buffer (other dtypes) holding x.
"""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.parameter import _TensorCell

from tests.functions._harness import E, M, check, check_error, randint, randn

X = randn(2, 3, 4)
A = randn(3, 4, seed=1)
INTS = randint(-4, 5, 3, 4)
MASK = randn(3, 4, seed=2) > 0
ONE = np.array([2.5], np.float32)
IDX = np.array([[0, 2], [1, 1], [3, 0]], np.int64)

CASES = [
    # size and layout
    M("size", X, jit=False),
    M("size", X, -1, jit=False),
    M("size", X, 1, jit=False),
    M("dim", X, jit=False),
    M("ndimension", A, jit=False),
    M("numel", X, jit=False),
    M("nelement", A, jit=False),
    M(
        "element_size", INTS.astype(np.int32), jit=False
    ),  # int64 would be int32 here (x64 off) M("contiguous", X), M("is_contiguous", X, jit=False),
    M("is_floating_point", X, jit=False),
    M("is_floating_point", INTS, jit=False),
    M("is_complex", X, jit=False),
    M("is_signed", INTS, jit=False),
    # views and reshapes
    M("view", X, 6, 4),
    M("view", X, (4, -1)),
    M("view", X, [-1]),
    M("view", X, 2, 12),
    M("view", X, np.int32),
    M("view", X, np.uint8),
    M("view", INTS.astype(np.int16), np.int32),
    M("view", X, np.float16),
    M("view_as", X, A.reshape(12).repeat(2)),
    M("reshape", X, 3, 8),
    M("reshape", X, (-1, 2)),
    M("reshape_as", A, A.T.copy()),
    M("transpose", X, 0, 1),
    M("transpose", X, -1, 0),
    M("t", A),
    M("permute", X, 2, 0, 1),
    M("permute", X, (1, 2, 0)),
    M("permute", X, [0, 2, 1]),
    M("flatten", X),
    M("flatten", X, 1),
    M("unflatten", X, 1, (3, 1)),
    M("unsqueeze", A, 1),
    M("squeeze", X[:, :1].copy()),
    M("squeeze", X[:1, :, :1].copy(), 0),
    M("squeeze", X[:1, :, :1].copy(), 0, 2),
    M("squeeze", X[:1, :, :1].copy(), (0, 1)),
    M("squeeze", X, 1),
    M("expand", ONE, 3, 2),
    M("expand", A[:, :1].copy(), -1, 5),
    M("expand", A, 2, -1, -1),
    M("expand", A, (2, 3, 4)),
    M("expand_as", A[:1].copy(), A),
    M("repeat", A, 2, 1),
    M("repeat", A, 2, 2, 3),
    M("repeat", A, (1, 2)),
    M("tile", A, 2),
    M("tile", A, 2, 2),
    M("flip", X, 0),
    M("flip", X, 0, 2),
    M("flip", X, (1, 2)),
    M("unfold", A, 1, 2, 1),
    M("unfold", A, 0, 2, 1),
    M("unfold", randn(10), 0, 3, 2),
    M("swapaxes", X, 0, 2),
    M("movedim", X, 0, -1),
    M("roll", A, 1, 1),
    M("narrow", X, 2, 1, 2),
    M("split", X, 2, -1),
    M("split", X, [1, 2], 1),
    M("chunk", X, 2, 2),
    M("unbind", A, 1),
    M("tensor_split", A, 3, 1),
    # new arrays
    M("new_zeros", A, 2, 3),
    M("new_zeros", INTS, (2,)),
    M("new_ones", A, (1, 2)),
    M("new_ones", INTS, 3),
    M("new_full", A, (2, 2), 7.0),
    M("new_full", INTS, (3,), 2),
    M("new_empty", A, (2, 0)),
    M("new_tensor", A, [1, 2]),
    M("new_zeros", A, 2, dtype=np.int32),
    M("new_tensor", INTS, [1.5, 2.5]),
    # dtype, device, values out
    M("type_as", INTS, A),
    M("type_as", A, INTS),
    M("to", A, np.float16),
    M("to", INTS, np.float32),
    M("to", A, "cpu"),
    M("to", A, "cpu", np.int32),
    M("to", A, dtype=np.int8),
    M("to", INTS, A),
    M("cpu", A),
    *[
        M(n, A * 10)
        for n in ("float", "double", "half", "bfloat16", "long", "int", "short", "char", "bool")
    ],
    M(
        "byte", np.abs(A) * 10
    ),  # negative floats to uint8 wrap in torch, saturate in XLA (C leaves it undefined)
    M("item", ONE, jit=False),
    M("item", np.array(3, np.int64), jit=False),
    M("tolist", A, jit=False),
    M("tolist", INTS, jit=False),
    M("numpy", A, jit=False),
    M("numpy", INTS, jit=False),
    M("detach", A),
    M("clone", A),
    # math, same semantics as the functions
    M("sum", X),
    M("sum", X, 1),
    M("sum", X, (0, 2), True),
    M("sum", INTS, -1),
    M("mean", X, -1),
    M("mean", X, dim=(0, 1)),
    M("max", X),
    M("max", X, 1),
    M("max", X, -1, True),
    M("max", A, A[::-1].copy()),
    M("min", X, 0),
    M("min", INTS),
    M("std", X),
    M("std", X, 1),
    M("std", X, 1, keepdim=True, correction=0),
    M("var", X, (0, 2)),
    M("var", X, 0, False),
    M("softmax", A, 1),
    M("softmax", A, -1),
    M("log_softmax", A, 0),
    M("argmax", X),
    M("argmax", X, 2),
    M("argmin", A, 0, True),
    M("amax", X, (0, 1)),
    M("prod", A, 1),
    M("logsumexp", A, 1),
    M("all", MASK),
    M("all", MASK, 1),
    M("any", MASK, 0),
    M("any", INTS),
    M("matmul", A, A.T.copy()),
    M("mm", A, A.T.copy()),
    M("bmm", X, X.transpose(0, 2, 1).copy()),
    M("masked_fill", A, MASK, 0.0),
    M("masked_fill", INTS, MASK, -1),
    M("where", A, MASK, 0.0),
    M("add", A, 1),
    M("add", A, A, alpha=2),
    M("sub", INTS, 1.5),
    M("mul", A, A),
    M("div", INTS, 2),
    M("div", A, 2, rounding_mode="floor"),
    M("pow", A, 2),
    M("pow", INTS, 2),
    M("exp", A),
    M("exp", INTS),
    M("sqrt", np.abs(A)),
    M("abs", INTS),
    M("neg", A),
    M("clamp", A, -0.5, 0.5),
    M("clamp", A, min=0),
    M("clip", INTS, max=0),
    M("round", A),
    M("round", A, decimals=1),
    M("sigmoid", A),
    M("tanh", A),
    M("relu", A),
    M("floor", A),
    M("sign", A),
    M("lerp", A, A * 2, 0.3),
    M("eq", A, A),
    M("ne", INTS, 0),
    M("lt", A, 0),
    M("ge", INTS, INTS[::-1].copy()),
    M("gather", A, 1, IDX),
    M("scatter", A, 1, IDX, 5.0),
    M("scatter_add", A, 1, IDX, A[:, :2].copy()),
    M("index_select", A, 0, np.array([2, 0], np.int64)),
    M("take_along_dim", A, IDX, 1),
    M("sort", A),
    M("sort", A, 0, True),
    M("argsort", A, 1),
    M("topk", A, 2),
    M("topk", A, 1, 0, False),
    M("cumsum", A, 1),
    M("cumsum", INTS, 0),
    M("cumprod", A, -1),
    M("cummax", A, 1),
    M("tril", A),
    M("triu", A, 1),
    M("diagonal", X, 0, 1, 2),
    M("diag", A),
    M("trace", A[:3, :3].copy()),
    M("norm", A),
    M("norm", A, 1, 1),
    M("median", A, 1),
    M("kthvalue", A, 2),
    M("mode", INTS, 1),
    M("isnan", A),
    M("nan_to_num", A),
    M("logical_not", MASK),
    M("bitwise_not", INTS),
    M("bernoulli", np.zeros((3,), np.float32), jit=False),
    M("nonzero", INTS, jit=False),
    M("masked_select", A, MASK, jit=False),
    M("unique", INTS, jit=False),
    M("repeat_interleave", A, 2, 0),
    M("allclose", A, A, jit=False),
    M("equal", A, A, jit=False),
    M("count_nonzero", INTS, 1),
    M("isclose", A, A),
    M("square", A),
    M("reciprocal", np.abs(A) + 1),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case):
    check(case, CASES)


ERRORS = [
    E("view", X, 5, 5, exc=RuntimeError, match="is invalid for input of size 24", method=True),
    E("view", X, -1, -1, exc=RuntimeError, match="only one dimension can be inferred", method=True),
    E("view", np.ones(3, np.float16), np.float32, exc=RuntimeError, match="divisible", method=True),
    E("expand", A, 3, 5, exc=RuntimeError, match="must match the existing size", method=True),
    E("repeat", X, 2, 2, exc=RuntimeError, match="can not be smaller", method=True),
    E("item", A, exc=RuntimeError, match="cannot be converted to Scalar", method=True),
    E("size", X, 3, exc=IndexError, match="Dimension out of range", method=True),
    E("size", np.array(1.0, np.float32), 0, exc=IndexError, match="no dimensions", method=True),
    E("t", X, exc=RuntimeError, match="<= 2 dimensions", method=True),
    E("transpose", A, 0, 2, exc=IndexError, match="Dimension out of range", method=True),
    E(
        "unfold",
        A,
        1,
        5,
        1,
        exc=RuntimeError,
        match="maximum size for tensor at dimension 1 is 4",
        method=True,
    ),
]


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_torch(case):
    check_error(case)


# ---- the type ----------------------------------------------------------------------------------
def test_isinstance_covers_arrays_tracers_and_cells_only():
    x = jnp.ones(3)
    assert isinstance(x, jaxmodule.Tensor) and jaxmodule.is_tensor(x)
    assert isinstance(nn.Parameter(x), jaxmodule.Tensor) and isinstance(
        nn.Buffer(x), jaxmodule.Tensor
    )
    assert isinstance(nn.Parameter(x).data, jaxmodule.Tensor)
    seen = []
    jax.jit(lambda a: seen.append(isinstance(a, jaxmodule.Tensor)) or a)(x)
    jax.grad(lambda a: seen.append(isinstance(a, jaxmodule.Tensor)) or a.sum())(x)
    assert seen == [True, True]
    for other in (np.ones(3), 1.0, 2, [1.0], torch.ones(2), None):
        assert not isinstance(other, jaxmodule.Tensor) and not jaxmodule.is_tensor(other)
    assert issubclass(jax.Array, jaxmodule.Tensor) and issubclass(nn.Parameter, jaxmodule.Tensor)
    assert not issubclass(np.ndarray, jaxmodule.Tensor)
    with pytest.raises(TypeError, match="jaxmodule.tensor"):
        jaxmodule.Tensor(2, 3)


def test_methods_are_the_functions_and_cells_share_them():
    T = jaxmodule.Tensor
    for name in ("sum", "max", "transpose", "gather", "softmax", "topk", "clamp", "split"):
        assert getattr(T, name) is getattr(jaxmodule, name), name
    for name in (
        "view",
        "transpose",
        "permute",
        "reshape",
        "size",
        "expand",
        "repeat",
        "flatten",
        "squeeze",
        "unsqueeze",
        "sum",
        "mean",
        "max",
        "min",
        "std",
        "var",
        "to",
        "float",
    ):
        assert _TensorCell.__dict__[name] is T.__dict__[name], name
    assert (
        jaxmodule.Size((2, 3)).numel() == 6
        and repr(jaxmodule.Size((2, 3))) == "jaxmodule.Size([2, 3])"
    )


def test_parameter_methods_used_to_be_numpys():
    """Before, these delegated to jax.Array and silently meant something else."""
    p = nn.Parameter(jnp.asarray(X))
    t = torch.from_numpy(X)
    assert p.transpose(0, 1).shape == tuple(t.transpose(0, 1).shape) == (3, 2, 4)
    assert p.repeat(2, 1, 1).shape == tuple(t.repeat(2, 1, 1).shape) == (4, 3, 4)
    np.testing.assert_allclose(np.asarray(p.std()), t.std().item(), rtol=1e-5)
    assert p.max(1).indices.shape == (2, 4)
    assert p.view(jnp.int32).dtype == jnp.int32


def test_inplace_methods_on_arrays_point_to_the_out_of_place_form():
    x = jnp.ones(3)
    with pytest.raises(TypeError, match=r"immutable.*x = jnp.zeros_like\(x\)"):
        jaxmodule.Tensor.zero_(x)
    with pytest.raises(TypeError, match=r"x = jaxmodule.Tensor.add\(x, ...\)"):
        jaxmodule.Tensor.add_(x, 1)
    with pytest.raises(TypeError, match="immutable"):
        nn.Parameter(x).unsqueeze_(0)
    p = nn.Buffer(jnp.ones(3))
    jaxmodule.Tensor.add_(p, 2)  # cells do it in place
    np.testing.assert_array_equal(np.asarray(p), [3.0, 3.0, 3.0])


def test_cuda_without_a_gpu_names_the_devices():
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no 'cuda' device"):
        jaxmodule.Tensor.cuda(jnp.ones(2))


def test_to_device_and_sharding():
    cpu1 = jax.devices("cpu")[1]
    assert jaxmodule.Tensor.to(jnp.ones(2), cpu1).devices() == {cpu1}
    assert jaxmodule.Tensor.to(jnp.ones(2), "cpu:1", jnp.float16).dtype == jnp.float16
    assert nn.Parameter(jnp.ones(2)).to(device="cpu:1").devices() == {cpu1}
