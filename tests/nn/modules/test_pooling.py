"""Pooling layers vs torch.nn: outputs, input gradients, indices, repr, state_dict, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_torch

# (class name, constructor args, constructor kwargs, input shape)
CASES = [
    ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1), (2, 3, 8, 7)),
    ("MaxPool2d", ((2, 3),), dict(dilation=(2, 1), ceil_mode=True), (3, 8, 7)),
    ("MaxPool3d", (2,), dict(stride=(1, 2, 2)), (1, 2, 4, 5, 6)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 10)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    ("AvgPool2d", (2,), dict(divisor_override=3), (3, 8, 7)),
    ("AvgPool3d", (2,), dict(padding=1, count_include_pad=False), (1, 2, 4, 5, 6)),
    ("LPPool1d", (2, 3), dict(stride=2), (2, 3, 10)),
    ("LPPool2d", (3.0, 2), dict(ceil_mode=True), (2, 3, 7, 7)),
    ("LPPool3d", (2, 2), dict(), (1, 2, 4, 4, 4)),
    ("AdaptiveAvgPool1d", (4,), dict(), (2, 3, 10)),
    ("AdaptiveAvgPool2d", ((3, None),), dict(), (2, 3, 8, 7)),
    ("AdaptiveAvgPool3d", (2,), dict(), (1, 2, 4, 5, 6)),
    ("AdaptiveMaxPool1d", (4,), dict(), (2, 3, 10)),
    ("AdaptiveMaxPool2d", ((3, 5),), dict(), (2, 3, 8, 7)),
    ("AdaptiveMaxPool3d", ((2, 3, 2),), dict(), (1, 2, 4, 5, 6)),
]


def _positive(shape, seed=1):
    # LPPool with a non-integer power needs non-negative inputs; harmless for the other layers
    return np.abs(randn(*shape, seed=seed)) + 0.1


@pytest.mark.parametrize("name, args, kwargs, shape", CASES)
def test_layer_matches_torch(name, args, kwargs, shape):
    t = getattr(torch.nn, name)(*args, **kwargs)
    m = getattr(nn, name)(*args, **kwargs)
    assert repr(m) == repr(t)
    assert list(m.state_dict()) == list(t.state_dict()) == []
    x = _positive(shape) if name.startswith("LP") else randn(*shape, seed=1)
    tx = to_torch(x, requires_grad=True)
    t_out = t(tx)
    ct = randn(*t_out.shape, seed=2)
    (t_out * to_torch(ct)).sum().backward()
    assert_close(m(jnp.asarray(x)), t_out)
    g = jax.grad(lambda v: (m(v) * ct).sum())(jnp.asarray(x))
    assert_close(g, tx.grad)


@pytest.mark.parametrize(
    "name, args, shape",
    [
        ("MaxPool2d", (3, 2, 1), (2, 3, 8, 7)),
        ("AdaptiveMaxPool2d", ((3, 5),), (2, 3, 8, 7)),
        ("MaxPool1d", (2,), (2, 3, 9)),
    ],
)
def test_return_indices(name, args, shape):
    t = getattr(torch.nn, name)(*args, return_indices=True)
    m = getattr(nn, name)(*args, return_indices=True)
    x = randn(*shape, seed=3)
    tv, ti = t(to_torch(x))
    v, i = m(jnp.asarray(x))
    assert_close(v, tv)
    np.testing.assert_array_equal(np.asarray(i), ti.numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_layers(nd):
    shape = (2, 3, 8, 6, 4)[: nd + 2]
    x = randn(*shape, seed=4)
    pool_t = getattr(torch.nn, f"MaxPool{nd}d")(2, return_indices=True)
    un_t = getattr(torch.nn, f"MaxUnpool{nd}d")(2)
    un = getattr(nn, f"MaxUnpool{nd}d")(2)
    assert repr(un) == repr(un_t)
    v, i = pool_t(to_torch(x))
    out_size = list(shape[2:]) if nd == 1 else None
    expected = un_t(v, i, output_size=out_size)
    assert_close(un(jnp.asarray(v.numpy()), jnp.asarray(i.numpy()), output_size=out_size), expected)


def test_jit_over_module_and_pooling_roundtrip():
    pool = nn.MaxPool2d(2, return_indices=True)
    unpool = nn.MaxUnpool2d(2)
    x = randn(1, 2, 4, 6, seed=5)

    @jax.jit
    def roundtrip(p, u, v):
        vals, idx = p(v)
        return u(vals, idx)

    out = roundtrip(pool, unpool, x)
    tv, ti = torch.nn.MaxPool2d(2, return_indices=True)(to_torch(x))
    assert_close(out, torch.nn.MaxUnpool2d(2)(tv, ti))


@pytest.mark.parametrize(
    "name, shape, kwargs",
    [
        ("FractionalMaxPool2d", (2, 3, 9, 11), dict(output_size=(4, 5))),
        ("FractionalMaxPool3d", (1, 2, 6, 7, 8), dict(output_ratio=0.5)),
    ],
)
def test_fractional_max_pool_layers(name, shape, kwargs):
    nd = len(shape) - 2
    samples = np.random.default_rng(5).uniform(size=(shape[0], shape[1], nd)).astype(np.float32)
    t = getattr(torch.nn, name)(2, _random_samples=to_torch(samples), return_indices=True, **kwargs)
    m = getattr(nn, name)(2, _random_samples=jnp.asarray(samples), return_indices=True, **kwargs)
    assert repr(m) == repr(t)
    assert list(m.state_dict()) == list(t.state_dict()) == ["_random_samples"]
    x = randn(*shape, seed=6)
    (tv, ti), (v, i) = t(to_torch(x)), m(jnp.asarray(x))
    assert_close(v, tv)
    np.testing.assert_array_equal(np.asarray(i), ti.numpy())


def test_fractional_max_pool_constructor_errors():
    with pytest.raises(
        ValueError, match="requires specifying either an output size, or a pooling ratio"
    ):
        nn.FractionalMaxPool2d(2)
    with pytest.raises(
        ValueError, match="only one of output_size and output_ratio may be specified"
    ):
        nn.FractionalMaxPool2d(2, output_size=3, output_ratio=0.5)
    with pytest.raises(ValueError, match="output_ratio must be between 0 and 1"):
        nn.FractionalMaxPool3d(2, output_ratio=1.5)
    assert list(nn.FractionalMaxPool2d(2, output_size=3).state_dict()) == []
