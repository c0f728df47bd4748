"""Activation layers against torch.nn: repr, state_dict, forward, gradients, jit."""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_numpy

X = 3 * randn(2, 3, 4, seed=0)
X.flat[:8] = [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, -0.5]  # kinks of the layers below

CASES = [
    ("Threshold", (0.1, 20.0), {}),
    ("Threshold", (0.1, 20.0), {"inplace": True}),
    ("ReLU", (), {}),
    ("ReLU", (), {"inplace": True}),
    ("RReLU", (), {}),
    ("RReLU", (0.1, 0.3), {"inplace": True}),
    ("Hardtanh", (), {}),
    ("Hardtanh", (-2.0, 0.5), {"inplace": True}),
    ("ReLU6", (), {}),
    ("ReLU6", (True,), {}),
    ("Sigmoid", (), {}),
    ("Hardsigmoid", (), {}),
    ("Hardsigmoid", (True,), {}),
    ("Tanh", (), {}),
    ("SiLU", (), {}),
    ("SiLU", (True,), {}),
    ("Mish", (), {}),
    ("Mish", (True,), {}),
    ("Hardswish", (), {}),
    ("ELU", (), {}),
    ("ELU", (0.5, True), {}),
    ("CELU", (2.0,), {}),
    ("CELU", (), {"inplace": True}),
    ("SELU", (), {}),
    ("SELU", (True,), {}),
    ("GLU", (), {}),
    ("GLU", (0,), {}),
    ("GELU", (), {}),
    ("GELU", ("tanh",), {}),
    ("Hardshrink", (), {}),
    ("Hardshrink", (1.0,), {}),
    ("LeakyReLU", (), {}),
    ("LeakyReLU", (0.2, True), {}),
    ("LogSigmoid", (), {}),
    ("Softplus", (), {}),
    ("Softplus", (2.0, 5.0), {}),
    ("Softshrink", (), {}),
    ("Softshrink", (1.0,), {}),
    ("PReLU", (), {}),
    ("PReLU", (3, 0.1), {}),
    ("Softsign", (), {}),
    ("Tanhshrink", (), {}),
    ("Softmin", (1,), {}),
    ("Softmax", (-1,), {}),
    ("Softmax2d", (), {}),
    ("LogSoftmax", (2,), {}),
]
IDS = [f"{n}{a}{k}" for n, a, k in CASES]


def _pair(name, args, kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


def test_every_torch_activation_is_covered():
    import torch.nn.modules.activation as tact

    names = set(tact.__all__) - {"MultiheadAttention"}
    assert names == {n for n, _, _ in CASES}
    assert names == set(nn.modules.activation.__all__)


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=IDS)
def test_matches_torch(name, args, kwargs):
    jm, tm = _pair(name, args, kwargs)
    jm.eval(), tm.eval()
    assert repr(jm) == repr(tm)
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    if tm.state_dict():
        with torch.no_grad():
            for p in tm.parameters():
                p.copy_(torch.linspace(0.05, 0.4, p.numel()).reshape(p.shape))
        jm.load_state_dict(tm.state_dict())

    x = jnp.asarray(X)
    tx = torch.tensor(X, requires_grad=True)
    out, tout = jm(x), tm(tx.clone())  # clone: torch's inplace layers cannot write into a leaf
    assert_close(out, tout)

    ct = randn(*tout.shape, seed=1)
    (tout * torch.tensor(ct)).sum().backward()
    gm, gx = jaxmodule.grad(lambda m, v: jnp.sum(m(v) * ct), argnums=(0, 1))(jm, x)
    assert_close(gx, tx.grad)
    for (k, p), (tk, tp) in zip(gm.named_parameters(), tm.named_parameters()):
        assert k == tk
        assert_close(p, tp.grad, atol=1e-5)  # a sum over many elements

    assert_close(jax.jit(lambda m, v: m(v))(jm, x), out)


def test_prelu_factory_and_reset():
    m = nn.PReLU(4, init=0.3, dtype=jnp.bfloat16)
    assert m.weight.dtype == jnp.bfloat16 and m.weight.requires_grad
    with jaxmodule.no_grad():
        m.weight.fill_(1.0)
    m.reset_parameters()
    assert_close(m.weight._value.astype(jnp.float32), np.full(4, 0.3, np.float32), rtol=1e-2)
    assert m.init == 0.3 and m.num_parameters == 4


def test_rrelu_train_and_eval():
    m = nn.RReLU(0.1, 0.3)
    x = -jnp.ones(2000)
    slopes = -to_numpy(m(x))
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.01
    assert not np.allclose(slopes, -to_numpy(m(x)))  # fresh noise each call
    step = jaxmodule.compile(lambda mod, v: mod(v))
    a, b = to_numpy(step(m, x)), to_numpy(step(m, x))
    assert a.min() >= -0.3 and a.max() <= -0.1 and not np.allclose(a, b)
    m.eval()
    assert_close(m(x), np.full(2000, -0.2, np.float32))


def test_hardtanh_errors_and_deprecated_kwargs():
    with pytest.raises(
        AssertionError, match=r"max_val \(1.0\) must be greater than min_val \(2.0\)"
    ):
        nn.Hardtanh(2.0, 1.0)
    with pytest.warns(FutureWarning, match="`min_value` is deprecated and renamed to `min_val`"):
        m = nn.Hardtanh(min_value=-2.0)
    with pytest.warns(FutureWarning, match="`max_value` is deprecated"):
        m = nn.Hardtanh(max_value=2.0)
    assert repr(m) == "Hardtanh(min_val=-1.0, max_val=2.0)"


def test_softmax2d_rank_error():
    with pytest.raises(
        ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D instead"
    ):
        nn.Softmax2d()(jnp.ones((2, 3)))


@pytest.mark.parametrize("name", ["Softmax", "Softmin", "LogSoftmax"])
def test_implicit_dim_warns_at_caller(name):
    x = randn(2, 3, 4, seed=2)
    with pytest.warns(UserWarning, match="Implicit dimension choice") as rec:
        out = getattr(nn, name)()(jnp.asarray(x))
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning):
        want = getattr(torch.nn, name)()(torch.tensor(x))
    assert_close(out, want)
    assert repr(getattr(nn, name)()) == f"{name}(dim=None)"


def test_vmap_over_inputs():
    m = nn.PReLU(3, 0.2)
    x = jnp.asarray(X)
    assert_close(jax.vmap(lambda v: m(v[None])[0])(x), m(x))
