"""`Parameter` / `Buffer` cells: array behaviour, in-place helpers against torch's in-place results.

Documented differences: operators on cells return plain `jax.Array`s; in-place helpers replace the
array held by the cell (so every holder of the cell sees the new value).
"""

import operator

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn.parameter import is_lazy

from tests.helpers import assert_close, to_numpy

A = np.array([[1.5, -2.0, 3.0], [0.5, 4.0, -1.0]], np.float32)
B = np.array([[2.0, 1.0, -1.5], [3.0, 0.25, 2.0]], np.float32)


def _cells():
    return [nn.Parameter(jnp.asarray(A)), nn.Buffer(jnp.asarray(A))]


BINARY = [
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.pow,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
    operator.eq,
    operator.ne,
    operator.floordiv,
    operator.mod,
]


@pytest.mark.parametrize("op", BINARY, ids=lambda o: o.__name__)
@pytest.mark.parametrize("other_kind", ["jax", "numpy", "scalar", "cell"])
def test_binary_operators_both_sides(op, other_kind):
    other = {"jax": jnp.asarray(B), "numpy": B, "scalar": 2.0, "cell": nn.Buffer(jnp.asarray(B))}[
        other_kind
    ]
    raw = B if other_kind != "scalar" else 2.0
    t, tother = torch.from_numpy(A), (torch.from_numpy(B) if other_kind != "scalar" else 2.0)
    for cell in _cells():
        got = op(cell, other)
        assert isinstance(got, jax.Array)
        assert_close(got, op(t, tother))
        rgot = op(other, cell)  # reflected (numpy may answer with an ndarray)
        assert isinstance(rgot, (jax.Array, np.ndarray))
        # negative bases to fractional powers give nan in both libraries (compared as equal)
        assert_close(
            np.asarray(rgot), op(torch.as_tensor(raw), t) if other_kind != "scalar" else op(raw, t)
        )


def test_matmul_and_unary():
    p = nn.Parameter(jnp.asarray(A))
    m = jnp.asarray(B.T)
    assert_close(p @ m, torch.from_numpy(A) @ torch.from_numpy(B.T))
    assert_close(jnp.asarray(B) @ p.T, torch.from_numpy(B) @ torch.from_numpy(A).T)
    assert_close(-p, -A)
    assert_close(abs(p), np.abs(A))
    assert_close(+p, A)


def test_array_attributes_and_protocols():
    p = nn.Parameter(jnp.asarray(A))
    t = torch.nn.Parameter(torch.from_numpy(A))
    assert p.shape == tuple(t.shape) and p.ndim == t.ndim == 2 and p.dim() == 2
    assert p.dtype == jnp.float32 and p.size() == (2, 3) and p.size(1) == 3 == t.size(1)
    assert p.numel() == t.numel() == 6 and len(p) == len(t) == 2
    assert_close(p.T, t.T.detach())
    assert_close(p[1], t[1].detach())
    assert_close(p[:, 1:], t[:, 1:].detach())
    assert_close(p[jnp.array([1, 0])], A[[1, 0]])
    rows = list(p)
    assert len(rows) == 2 and all(isinstance(r, jax.Array) for r in rows)
    assert_close(rows[1], A[1])
    assert_close(np.asarray(p), A)
    assert_close(p.reshape(3, 2), A.reshape(3, 2))  # delegated attribute
    assert_close(p.sum(), A.sum())
    assert p.is_leaf and p.is_floating_point() and p.requires_grad
    assert float(nn.Parameter(jnp.array(2.5))) == 2.5 and int(nn.Buffer(jnp.array(3))) == 3
    assert nn.Parameter(jnp.array(1.5)).item() == 1.5
    assert nn.Buffer(jnp.arange(3)).tolist() == [0, 1, 2]
    assert p.element_size() == 4 and p.nelement() == 6


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, x: jnp.dot(p, x),
        lambda p, x: jnp.matmul(p, x),
        lambda p, x: jnp.einsum("ij,jk->ik", p, x),
        lambda p, x: jax.nn.relu(p) @ x,
        lambda p, x: jnp.tanh(p) @ x,
        lambda p, x: (p * 2 + 1) @ x,
        lambda p, x: p.T.T @ x,
    ],
    ids=["dot", "matmul", "einsum", "relu", "tanh", "ops", "T"],
)
def test_jnp_functions_eager_and_jit(fn):
    x = jnp.asarray(B.T)
    for cell in _cells():
        eager = fn(cell, x)
        jitted = jax.jit(fn)(cell, x)
        ref = fn(jnp.asarray(A), x)
        assert_close(eager, ref)
        assert_close(jitted, ref)


def test_cell_is_pytree_leaf_holder():
    p = nn.Parameter(jnp.asarray(A), requires_grad=False)
    leaves, td = jax.tree.flatten(p)
    assert len(leaves) == 1 and isinstance(leaves[0], jax.Array)
    back = jax.tree.unflatten(td, [leaves[0] * 2])
    assert type(back) is nn.Parameter and back.requires_grad is False
    b = jax.tree.map(lambda v: v + 1, nn.Buffer(jnp.asarray(A), persistent=False))
    assert type(b) is nn.Buffer and b.persistent is False
    g = jax.grad(lambda c: (c * c).sum())(nn.Parameter(jnp.asarray(A)))
    assert type(g) is nn.Parameter
    assert_close(g, 2 * A)


def test_data_grad_requires_grad():
    p = nn.Parameter(jnp.asarray(A))
    assert p.grad is None
    p.grad = jnp.ones((2, 3))
    assert_close(p.data, A)
    p.data = jnp.zeros((2, 3))
    assert_close(p, np.zeros((2, 3)))
    p.requires_grad = False
    assert not p.requires_grad
    assert p.requires_grad_() is p and p.requires_grad
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        p.requires_grad = 1
    assert nn.Buffer(jnp.ones(1)).requires_grad is False
    assert nn.Parameter(None).shape == (0,)
    assert nn.Parameter(torch.ones(2, dtype=torch.bfloat16)).dtype == jnp.bfloat16


def test_repr():
    p = nn.Parameter(jnp.ones(2))
    assert repr(p).startswith("Parameter containing:\n")
    assert repr(nn.Buffer(jnp.ones(2))) == repr(jnp.ones(2))


# ---- in-place helpers ------------------------------------------------------------------------
M = np.array([[True, False, True], [False, False, True]])

# (name, args for jaxmodule, args for torch)
DETERMINISTIC = [
    ("fill_", (2.5,), (2.5,)),
    ("zero_", (), ()),
    ("copy_", (jnp.asarray(B),), (torch.from_numpy(B),)),
    ("copy_", (np.ones(3, np.float32),), (torch.ones(3),)),
    ("mul_", (2.0,), (2.0,)),
    ("mul_", (jnp.asarray(B),), (torch.from_numpy(B),)),
    ("add_", (jnp.asarray(B),), (torch.from_numpy(B),)),
    ("add_", (1.0,), (1.0,)),
    ("sub_", (jnp.asarray(B),), (torch.from_numpy(B),)),
    ("div_", (jnp.asarray(B),), (torch.from_numpy(B),)),
    ("div_", (2.0,), (2.0,)),
    ("clamp_", (-1.0, 2.0), (-1.0, 2.0)),
    ("clamp_", (0.0,), (0.0,)),
    ("clamp_min_", (0.0,), (0.0,)),
    ("clamp_max_", (1.0,), (1.0,)),
    ("pow_", (2.0,), (2.0,)),
    ("addcmul_", (jnp.asarray(B), jnp.asarray(B)), (torch.from_numpy(B), torch.from_numpy(B))),
    ("addcdiv_", (jnp.asarray(A), jnp.asarray(B)), (torch.from_numpy(A), torch.from_numpy(B))),
    ("lerp_", (jnp.asarray(B), 0.25), (torch.from_numpy(B), 0.25)),
    ("masked_fill_", (jnp.asarray(M), 7.0), (torch.from_numpy(M), 7.0)),
    ("exp_", (), ()),
    ("neg_", (), ()),
    ("abs_", (), ()),
    ("sign_", (), ()),
    ("sigmoid_", (), ()),
    ("tanh_", (), ()),
    ("relu_", (), ()),
    ("floor_", (), ()),
    ("ceil_", (), ()),
    ("round_", (), ()),
    ("trunc_", (), ()),
    ("reciprocal_", (), ()),
    ("square_", (), ()),
    ("sin_", (), ()),
    ("cos_", (), ()),
]
KWARGS = [
    ("add_", (jnp.asarray(B),), {"alpha": 3.0}),
    ("sub_", (jnp.asarray(B),), {"alpha": 0.5}),
    ("div_", (jnp.asarray(B),), {"rounding_mode": "floor"}),
    ("div_", (jnp.asarray(B),), {"rounding_mode": "trunc"}),
    ("addcmul_", (jnp.asarray(B), jnp.asarray(A)), {"value": 0.5}),
    ("addcdiv_", (jnp.asarray(B), jnp.asarray(B)), {"value": 2.0}),
]


def _torchify(x):
    return torch.from_numpy(np.array(x)) if isinstance(x, jax.Array) else x


def _check_inplace(name, jargs, targs, kwargs):
    m = nn.Module()
    m.w = nn.Parameter(jnp.asarray(A))
    tied = nn.Module()
    tied.w = m.w
    m.register_buffer("b", jnp.asarray(A))
    t = torch.from_numpy(A.copy())
    getattr(t, name)(*targs, **{k: _torchify(v) for k, v in kwargs.items()})
    with jaxmodule.no_grad():
        out = getattr(m.w, name)(*jargs, **kwargs)
    assert out is m.w
    out_b = getattr(m.b, name)(*jargs, **kwargs)  # buffers need no no_grad
    assert out_b is m.b
    for cell in (m.w, tied.w, m.b, m._parameters["w"], m.state_dict()["w"]):
        assert cell.shape == (2, 3) and cell.dtype == jnp.float32
        assert_close(cell, t)


@pytest.mark.parametrize("name,jargs,targs", DETERMINISTIC, ids=[d[0] for d in DETERMINISTIC])
def test_inplace_matches_torch(name, jargs, targs):
    _check_inplace(name, jargs, targs, {})


@pytest.mark.parametrize(
    "name,args,kwargs", KWARGS, ids=[k[0] + "-" + next(iter(k[2])) for k in KWARGS]
)
def test_inplace_kwargs_match_torch(name, args, kwargs):
    _check_inplace(name, args, tuple(_torchify(a) for a in args), kwargs)


@pytest.mark.parametrize("name,args", [("log_", ()), ("sqrt_", ()), ("rsqrt_", ())])
def test_inplace_on_positive_values(name, args):
    pos = np.abs(A) + 0.5
    p = nn.Parameter(jnp.asarray(pos))
    with jaxmodule.no_grad():
        getattr(p, name)(*args)
    t = torch.from_numpy(pos.copy())
    getattr(t, name)(*args)
    assert_close(p, t)


@pytest.mark.parametrize(
    "op,tname",
    [("__iadd__", "add_"), ("__isub__", "sub_"), ("__imul__", "mul_"), ("__itruediv__", "div_")],
)
def test_augmented_assignment_on_module_attribute(op, tname):
    m = nn.Module()
    m.w = nn.Parameter(jnp.asarray(A))
    cell = m.w
    with jaxmodule.no_grad():
        getattr(m.w, op)(jnp.asarray(B))
        m.w += 1.0  # python re-assigns the returned cell: it must be the same Parameter
    assert m.w is cell
    t = torch.from_numpy(A.copy())
    getattr(t, tname)(torch.from_numpy(B))
    assert_close(m.w, t + 1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.fill_(1.0),
        lambda p: p.mul_(2.0),
        lambda p: p.add_(1.0),
        lambda p: p.zero_(),
        lambda p: p.normal_(),
        lambda p: p.uniform_(),
        lambda p: p.exp_(),
        lambda p: p.copy_(jnp.ones(3)),
        lambda p: p.clamp_(0.0, 1.0),
        lambda p: p.masked_fill_(jnp.asarray(M), 0.0),
    ],
)
def test_inplace_on_requires_grad_param_needs_no_grad(call):
    p = nn.Parameter(jnp.asarray(A))
    tp = torch.nn.Parameter(torch.from_numpy(A.copy()))
    with pytest.raises(
        RuntimeError,
        match="a leaf Variable that requires grad is being used in an in-place operation",
    ):
        torch_equivalent(call, tp)
    with pytest.raises(
        RuntimeError,
        match="a leaf Variable that requires grad is being used in an in-place operation",
    ):
        call(p)
    assert_close(p, A)  # unchanged
    # via .data, no no_grad is needed
    call(p.data)
    # requires_grad=False: allowed
    q = nn.Parameter(jnp.asarray(A), requires_grad=False)
    call(q)


def torch_equivalent(call, tp):
    """Run the same call on a torch Parameter (jax arrays in the lambdas become torch tensors)."""

    class Proxy:
        def __getattr__(self, name):
            fn = getattr(tp, name)
            return lambda *a, **k: fn(*[_torchify(x) for x in a], **k)

    return call(Proxy())


def test_inplace_via_data_writes_owner():
    m = nn.Linear(3, 2)
    m.weight.data.fill_(0.25)
    assert_close(m.weight, np.full((2, 3), 0.25, np.float32))
    m.weight.data.mul_(4)
    assert_close(m.weight, np.ones((2, 3), np.float32))
    m.weight.data.copy_(jnp.asarray(A))
    assert_close(m.weight, A)


def test_inplace_keeps_dtype_and_shape():
    p = nn.Parameter(jnp.ones((2, 3), jnp.bfloat16))
    with jaxmodule.no_grad():
        p.add_(jnp.ones((2, 3), jnp.float32) * 0.5)
        p.copy_(jnp.asarray(3.0, jnp.float32))
        p.fill_(2)
    assert p.dtype == jnp.bfloat16 and p.shape == (2, 3)
    assert_close(p, np.full((2, 3), 2.0))
    b = nn.Buffer(jnp.zeros(3, jnp.int32))
    b.add_(2)
    b.fill_(1.7)  # torch truncates toward zero into an integer tensor
    t = torch.zeros(3, dtype=torch.int32)
    t.add_(2)
    t.fill_(1.7)
    assert b.dtype == jnp.int32 and to_numpy(b).tolist() == t.tolist()


def test_copy_shape_error():
    p = nn.Buffer(jnp.zeros((2, 3)))
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).copy_(torch.ones(4))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        p.copy_(jnp.ones(4))


@pytest.mark.parametrize(
    "name,args,check",
    [
        ("normal_", (1.0, 0.5), lambda v: abs(v.mean() - 1.0) < 0.1 and abs(v.std() - 0.5) < 0.1),
        ("uniform_", (-2.0, 2.0), lambda v: v.min() >= -2 and v.max() < 2 and abs(v.mean()) < 0.15),
        (
            "bernoulli_",
            (0.3,),
            lambda v: set(np.unique(v)) <= {0.0, 1.0} and abs(v.mean() - 0.3) < 0.05,
        ),
        ("exponential_", (2.0,), lambda v: v.min() >= 0 and abs(v.mean() - 0.5) < 0.05),
        ("log_normal_", (0.0, 0.25), lambda v: v.min() > 0 and abs(np.log(v).mean()) < 0.05),
        ("cauchy_", (0.0, 1.0), lambda v: abs(np.median(v)) < 0.1),
    ],
)
def test_random_inplace_statistics(name, args, check):
    b = nn.Buffer(jnp.zeros((50, 50)))
    getattr(b, name)(*args)
    v = to_numpy(b)
    assert b.shape == (50, 50) and b.dtype == jnp.float32
    assert check(v), (name, v.mean(), v.std())


def test_random_inplace_reproducible_with_seed_and_generator():
    b1, b2 = nn.Buffer(jnp.zeros(5)), nn.Buffer(jnp.zeros(5))
    jaxmodule.manual_seed(3)
    b1.normal_()
    jaxmodule.manual_seed(3)
    b2.normal_()
    assert to_numpy(b1).tolist() == to_numpy(b2).tolist()
    g = jaxmodule.Generator().manual_seed(1)
    b1.uniform_(generator=g)
    g.manual_seed(1)
    b2.uniform_(generator=g)
    assert to_numpy(b1).tolist() == to_numpy(b2).tolist()


def test_inplace_inside_jit_on_traced_cell():
    @jax.jit
    def f(p):
        p.mul_(2.0)
        p.add_(1.0)
        return p

    out = f(nn.Buffer(jnp.asarray(A)))
    assert type(out) is nn.Buffer
    assert_close(out, A * 2 + 1)


def test_fill_diagonal():
    b = nn.Buffer(jnp.zeros((3, 3)))
    b.fill_diagonal_(5.0)
    t = torch.zeros(3, 3).fill_diagonal_(5.0)
    assert_close(b, t)


def test_uninitialized_parameter():
    p = nn.UninitializedParameter()
    assert is_lazy(p) and not is_lazy(nn.Parameter(jnp.ones(1)))
    p.materialize((2, 3))
    assert type(p) is nn.Parameter and p.shape == (2, 3)


INT_CASES = {
    "add_(0.5)": lambda t, A: t.add_(0.5),
    "add_(1)": lambda t, A: t.add_(1),
    "mul_(2.0)": lambda t, A: t.mul_(2.0),
    "div_(2)": lambda t, A: t.div_(2),
    "div_floor": lambda t, A: t.div_(2, rounding_mode="floor"),
    "div_trunc": lambda t, A: t.div_(-2, rounding_mode="trunc"),
    "exp_": lambda t, A: t.exp_(),
    "clamp_(0.5)": lambda t, A: t.clamp_(0.5),
    "clamp_(1, 3)": lambda t, A: t.clamp_(1, 3),
    "pow_(2)": lambda t, A: t.pow_(2),
    "pow_(0.5)": lambda t, A: t.pow_(0.5),
    "neg_": lambda t, A: t.neg_(),
    "floor_": lambda t, A: t.floor_(),
    "sqrt_": lambda t, A: t.sqrt_(),
    "iadd 1.5": lambda t, A: t.__iadd__(1.5),
    "imul 2": lambda t, A: t.__imul__(2),
    "itruediv 2": lambda t, A: t.__itruediv__(2),
    "ifloordiv 2": lambda t, A: t.__ifloordiv__(2),
    "masked_fill 1.5": lambda t, A: t.masked_fill_(A([True, False]), 1.5),
    "addcmul float": lambda t, A: t.addcmul_(A([1.0, 1.0]), A([1.0, 1.0])),
    "sign_": lambda t, A: t.sign_(),
    "round_": lambda t, A: t.round_(),
    "reciprocal_": lambda t, A: t.reciprocal_(),
    "square_": lambda t, A: t.square_(),
    "relu_": lambda t, A: t.relu_(),
    "abs_": lambda t, A: t.abs_(),
    "sigmoid_": lambda t, A: t.sigmoid_(),
    "add_ float array": lambda t, A: t.add_(A([1.0, 1.0])),
    "sub_(1, alpha=2)": lambda t, A: t.sub_(1, alpha=2),
    "copy_ float": lambda t, A: t.copy_(A([1.7, -2.7])),
    "fill_ float": lambda t, A: t.fill_(2.9),
}


@pytest.mark.parametrize("case", list(INT_CASES))
def test_inplace_on_integer_buffer_like_torch(case):
    """torch refuses in-place results of a higher dtype kind (float into int); casts otherwise."""
    t = torch.tensor([3, 4], dtype=torch.int32)
    b = nn.Buffer(jnp.array([3, 4], jnp.int32))
    te = je = None
    try:
        INT_CASES[case](t, torch.tensor)
    except RuntimeError as e:
        te = e
    try:
        INT_CASES[case](b, jnp.array)
    except RuntimeError as e:
        je = e
    assert (je is None) == (te is None), (je, te)
    if te is not None:
        assert "can't be cast to the desired output type" in str(je)
        assert to_numpy(b).tolist() == [3, 4]  # unchanged
    assert to_numpy(b).tolist() == t.tolist() and b.dtype == jnp.int32


def test_inplace_on_bool_and_half():
    b = nn.Buffer(jnp.array([True, False]))
    with pytest.raises(RuntimeError, match="can't be cast"):
        b.add_(1)
    b.mul_(True)
    h = nn.Buffer(jnp.ones(2, jnp.float16))
    h.add_(jnp.ones(2, jnp.float32))  # same kind: cast back, as torch
    assert h.dtype == jnp.float16
    with pytest.raises(RuntimeError, match="can't be cast"):
        h.add_(jnp.ones(2, jnp.complex64))
