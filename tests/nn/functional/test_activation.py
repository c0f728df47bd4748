"""nn.functional activations against torch.nn.functional: values and gradients, edge points included."""

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_numpy

# Kinks and clip points of the activations below (0, +-0.5, +-1, +-3, 6, 2.5, 0.1, 20) plus large
# values that would overflow a naively evaluated exp branch, plus random values.
_EDGES = np.array(
    [0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, 2.5, 0.1, 20.0, 25.0, -25.0, 100.0, -100.0, 0.25],
    np.float32,
)
X = np.concatenate([_EDGES, 3 * randn(16, seed=3)]).reshape(4, 8)


def _check(jfn, tfn, x, *, rtol=1e-5, atol=1e-6, grad=True):
    """Compare outputs and input gradients (vjp with a random cotangent)."""
    jx = jnp.asarray(x)
    tx = torch.tensor(x, requires_grad=grad)
    out, tout = jfn(jx), tfn(tx)
    assert_close(out, tout, rtol, atol)
    if grad:
        ct = randn(*out.shape, seed=1)
        jg = jax.grad(lambda v: jnp.sum(jfn(v) * ct))(jx)
        (tout * torch.tensor(ct)).sum().backward()
        assert_close(jg, tx.grad, rtol, atol)


ELEMENTWISE = [
    ("relu", {}),
    ("relu6", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("celu", {}),
    ("celu", {"alpha": 2.0}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("hardtanh", {}),
    ("hardtanh", {"min_val": -3.0, "max_val": 0.5}),
    ("hardsigmoid", {}),
    ("hardswish", {}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ("softplus", {"beta": 0.5}),
    ("softsign", {}),
    ("softshrink", {}),
    ("softshrink", {"lambd": 1.0}),
    ("hardshrink", {}),
    ("hardshrink", {"lambd": 1.0}),
    ("tanhshrink", {}),
    ("threshold", {"threshold": 0.1, "value": 20.0}),
    ("threshold", {"threshold": -1.0, "value": -5.0}),
    ("logsigmoid", {}),
    ("rrelu", {}),
    ("rrelu", {"lower": 0.1, "upper": 0.5}),
]


@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=[f"{n}-{k}" for n, k in ELEMENTWISE])
def test_elementwise(name, kw):
    _check(lambda v: getattr(F, name)(v, **kw), lambda t: getattr(TF, name)(t, **kw), X)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("relu_", {}),
        ("elu_", {"alpha": 0.3}),
        ("selu_", {}),
        ("celu_", {}),
        ("leaky_relu_", {"negative_slope": 0.3}),
        ("hardtanh_", {}),
        ("threshold_", {"threshold": 0.0, "value": 1.0}),
        ("rrelu_", {}),
    ],
)
def test_inplace_variants_return_result(name, kw):
    jx = jnp.asarray(X)
    out = getattr(F, name)(jx, **kw)
    t = torch.tensor(X)
    want = getattr(TF, name)(t, **kw)
    assert_close(out, want)
    assert_close(jx, X)  # the input is untouched: JAX arrays are immutable


@pytest.mark.parametrize(
    "name",
    [
        "relu",
        "elu",
        "hardtanh",
        "hardswish",
        "silu",
        "relu6",
        "hardsigmoid",
        "mish",
        "leaky_relu",
        "selu",
        "celu",
    ],
)
def test_inplace_kwarg(name):
    assert_close(getattr(F, name)(jnp.asarray(X), inplace=True), getattr(TF, name)(torch.tensor(X)))


def test_nan_propagates_like_torch():
    x = np.array([np.nan, 1.0], np.float32)
    for name in ["relu", "relu6", "hardtanh", "elu", "leaky_relu", "softplus"]:
        assert_close(getattr(F, name)(jnp.asarray(x)), getattr(TF, name)(torch.tensor(x)))


def test_relu_gradient_at_zero_inf_and_nan_like_torch():
    """relu is a custom JVP (for speed); its gradient must still be torch's threshold_backward."""
    x = np.array([-1.0, 0.0, -0.0, 2.0, np.nan, np.inf, -np.inf, 1e-30], np.float32)
    t = torch.tensor(x, requires_grad=True)
    TF.relu(t).backward(torch.arange(1.0, 9.0))
    g = jax.vjp(F.relu, jnp.asarray(x))[1](jnp.arange(1.0, 9.0, dtype=jnp.float32))[0]
    np.testing.assert_array_equal(to_numpy(g), t.grad.numpy())
    # forward-mode and second order agree with the same rule
    np.testing.assert_array_equal(
        to_numpy(jax.jvp(F.relu, (jnp.asarray(x),), (jnp.ones(8),))[1]),
        t.grad.numpy() / np.arange(1.0, 9.0),
    )
    assert float(jax.grad(jax.grad(lambda v: F.relu(v)))(2.0)) == 0.0


def test_integer_relu_keeps_dtype():
    x = np.array([-2, 0, 3], np.int32)
    out = F.relu(jnp.asarray(x))
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(to_numpy(out), TF.relu(torch.tensor(x)).numpy())


def test_parameter_input():
    p = jaxmodule.nn.Parameter(jnp.asarray(X))
    assert_close(F.gelu(p), TF.gelu(torch.tensor(X)))
    assert_close(F.softmax(p, dim=1), TF.softmax(torch.tensor(X), dim=1))


@pytest.mark.parametrize("shape,nw", [((2, 3, 4), 3), ((2, 3), 3), ((2, 3, 4, 2), 1), ((5,), 1)])
def test_prelu(shape, nw):
    x = randn(*shape, seed=2)
    x.flat[0] = 0.0
    w = np.linspace(0.1, 0.4, nw).astype(np.float32)
    jx, jw = jnp.asarray(x), jnp.asarray(w)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    out, tout = F.prelu(jx, jw), TF.prelu(tx, tw)
    assert_close(out, tout)
    ct = randn(*shape, seed=4)
    gx, gw = jax.grad(lambda a, b: jnp.sum(F.prelu(a, b) * ct), argnums=(0, 1))(jx, jw)
    (tout * torch.tensor(ct)).sum().backward()
    assert_close(gx, tx.grad)
    assert_close(gw, tw.grad, rtol=1e-5, atol=1e-5)  # a sum over many elements


def test_prelu_errors():
    with pytest.raises(RuntimeError, match="Found parameter numbers = 3 and channel size = 4"):
        F.prelu(jnp.ones((3, 4)), jnp.ones(3))
    with pytest.raises(RuntimeError, match="Found parameter numbers = 4 and channel size = 1"):
        F.prelu(jnp.ones(4), jnp.ones(4))
    with pytest.raises(RuntimeError, match="Expected `weight` to be a scalar or 1D tensor"):
        F.prelu(jnp.ones((3, 4)), jnp.ones((2, 2)))


@pytest.mark.parametrize("shape,dim", [((4, 6), -1), ((4, 6), 1), ((6, 3), 0), ((2, 4, 3), 1)])
def test_glu(shape, dim):
    _check(lambda v: F.glu(v, dim), lambda t: TF.glu(t, dim), randn(*shape, seed=5))


def test_glu_errors():
    with pytest.raises(
        RuntimeError, match="Halving dimension must be even, but dimension 1 is size 3"
    ):
        F.glu(jnp.ones((3, 3)), 1)
    with pytest.raises(RuntimeError, match="glu does not support scalars"):
        F.glu(jnp.ones(()))
    with pytest.raises(
        IndexError,
        match=r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)",
    ):
        F.glu(jnp.ones(4), 1)


def test_errors():
    x = jnp.ones((2, 2))
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="lambd must be >= 0"):
        F.softshrink(x, -1.0)
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(x, approximate="foo")
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        F.celu(x, 0.0)
    with pytest.raises(
        RuntimeError, match="Lower bound should be less than or equal to the upper bound"
    ):
        F.rrelu(x, 0.5, 0.1)


@pytest.mark.parametrize("name", ["softmax", "softmin", "log_softmax"])
@pytest.mark.parametrize(
    "shape,dim", [((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1), ((2, 3, 4), 1), ((6,), 0)]
)
def test_softmax_family(name, shape, dim):
    x = 2 * randn(*shape, seed=6)
    _check(lambda v: getattr(F, name)(v, dim), lambda t: getattr(TF, name)(t, dim), x)


@pytest.mark.parametrize("name", ["softmax", "softmin", "log_softmax"])
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_implicit_dim(name, ndim):
    x = randn(*(2, 3, 4, 5)[:ndim], seed=7)
    with pytest.warns(
        UserWarning, match=f"Implicit dimension choice for {name} has been deprecated"
    ):
        out = getattr(F, name)(jnp.asarray(x))
    with pytest.warns(UserWarning):
        want = getattr(TF, name)(torch.tensor(x))
    assert_close(out, want)


def test_softmax_dtype_and_half():
    x = randn(3, 4, seed=8).astype(np.float16)
    out = F.softmax(jnp.asarray(x), dim=1, dtype=torch.float32)
    assert out.dtype == jnp.float32
    assert_close(out, TF.softmax(torch.tensor(x), dim=1, dtype=torch.float32))
    out16 = F.log_softmax(jnp.asarray(x), dim=1)
    assert out16.dtype == jnp.float16
    # float16 output: compare at half precision
    assert_close(out16, TF.log_softmax(torch.tensor(x), dim=1), rtol=1e-3, atol=1e-3)


def test_softmax_errors():
    with pytest.raises(IndexError, match=r"expected to be in range of \[-2, 1\], but got 2"):
        F.softmax(jnp.ones((2, 2)), dim=2)
    with pytest.raises(NotImplementedError, match="expected a floating-point input"):
        F.softmax(jnp.array([1, 2, 3]), dim=0)
    assert_close(
        F.softmax(jnp.array([1, 2, 3]), 0, dtype="float32"),
        TF.softmax(torch.tensor([1, 2, 3]), 0, dtype=torch.float32),
    )


def test_softmax_scalar():
    assert_close(F.softmax(jnp.asarray(2.0), 0), TF.softmax(torch.tensor(2.0), 0))
    assert_close(F.log_softmax(jnp.asarray(2.0), -1), TF.log_softmax(torch.tensor(2.0), -1))


def test_rrelu_training():
    x = jnp.asarray(X)
    out, vjp = jax.vjp(lambda v: F.rrelu(v, 0.1, 0.3, training=True), x)
    (g,) = vjp(jnp.ones_like(out))
    xn, on, gn = to_numpy(x), to_numpy(out), to_numpy(g)
    pos = xn > 0
    np.testing.assert_array_equal(on[pos], xn[pos])
    np.testing.assert_array_equal(gn[pos], 1.0)
    neg = xn < 0
    slopes = on[neg] / xn[neg]
    assert (slopes >= 0.1 - 1e-6).all() and (slopes <= 0.3 + 1e-6).all()
    np.testing.assert_allclose(gn[neg], slopes, rtol=1e-5)
    big = jnp.full((20000,), -1.0)
    s = -to_numpy(F.rrelu(big, 0.1, 0.3, training=True))
    assert abs(s.mean() - 0.2) < 0.003 and s.min() >= 0.1 and s.max() <= 0.3


def test_gumbel_softmax():
    logits = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    batch = jnp.broadcast_to(logits, (20000, 3))
    soft = F.gumbel_softmax(batch, tau=0.5)
    assert_close(soft.sum(-1), np.ones(20000, np.float32), atol=1e-5)
    hard = F.gumbel_softmax(batch, hard=True)
    h = to_numpy(hard)
    assert set(np.unique(h)) == {0.0, 1.0} and (h.sum(-1) == 1).all()
    np.testing.assert_allclose(h.mean(0), [0.2, 0.3, 0.5], atol=0.015)
    # straight-through: the hard sample's gradient is the soft sample's
    g = jax.grad(lambda v: jnp.sum(F.gumbel_softmax(v, hard=True) * jnp.arange(3.0)))(logits[None])
    assert float(jnp.abs(g).sum()) > 0
    with pytest.warns(UserWarning, match="`eps` parameter is deprecated"):
        F.gumbel_softmax(logits, eps=1e-5)


def test_jit_and_vmap():
    x = jnp.asarray(X)
    f = jax.jit(lambda v: F.softplus(F.gelu(F.hardtanh(v, -2.0, 2.0)), 2.0, 5.0) + F.softmax(v, -1))
    want = TF.softplus(TF.gelu(TF.hardtanh(torch.tensor(X), -2.0, 2.0)), 2.0, 5.0) + TF.softmax(
        torch.tensor(X), -1
    )
    assert_close(f(x), want)
    assert_close(jax.vmap(lambda r: F.log_softmax(r, 0))(x), TF.log_softmax(torch.tensor(X), 1))


def _signature_mismatches(module):
    """Names whose parameters (names, defaults) differ from torch's, and torch builtins (no signature)."""
    import inspect

    bad, builtins = [], set()
    for name in module.__all__:
        try:
            ts = inspect.signature(getattr(TF, name))
        except (ValueError, TypeError):
            builtins.add(name)
            continue
        js = inspect.signature(getattr(module, name))
        if [(p.name, p.default) for p in ts.parameters.values()] != [
            (p.name, p.default) for p in js.parameters.values()
        ]:
            bad.append(name)
    return bad, builtins


def test_signatures_match_torch():
    from jaxmodule.nn.functional import activation

    bad, builtins = _signature_mismatches(activation)
    assert bad == []
    # C++ builtins have no Python signature; their arguments follow torch's documented ones.
    assert builtins == {
        "threshold_",
        "relu_",
        "hardtanh_",
        "elu_",
        "selu_",
        "celu_",
        "leaky_relu_",
        "prelu",
        "rrelu_",
        "gelu",
        "logsigmoid",
        "hardshrink",
        "softplus",
        "softshrink",
    }
