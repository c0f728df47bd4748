"""Conv layers vs torch.nn: outputs, gradients, state_dict, repr, init statistics, jit, errors."""

import math

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, state_dict_shapes, to_torch

# Conv outputs are sums of ~50-100 products: float32 reordering gives ~1e-6 absolute error.
ATOL = 1e-5


def _compare(jm_cls, t_cls, args, kwargs, x, forward_kwargs=None):
    """Build both layers, copy torch's weights in, compare output and all gradients."""
    forward_kwargs = forward_kwargs or {}
    t = t_cls(*args, **kwargs)
    m = jm_cls(*args, **kwargs)
    assert state_dict_shapes(m.state_dict()) == state_dict_shapes(t.state_dict())
    m.load_state_dict(t.state_dict())
    tx = to_torch(x, requires_grad=True)
    t_out = t(tx, **forward_kwargs)
    ct = randn(*t_out.shape, seed=7)
    (t_out * to_torch(ct)).sum().backward()
    out = m(jnp.asarray(x), **forward_kwargs)
    assert_close(out, t_out, atol=ATOL)
    g_m, g_x = jaxmodule.grad(lambda mod, v: (mod(v, **forward_kwargs) * ct).sum(), argnums=(0, 1))(
        m, jnp.asarray(x)
    )
    assert_close(g_x, tx.grad, atol=ATOL)
    assert_close(g_m.weight, t.weight.grad, atol=ATOL)
    if t.bias is not None:
        assert_close(g_m.bias, t.bias.grad, atol=ATOL)
    assert repr(m) == repr(t)
    return m


CONV2D = [
    ((4, 6, 3), dict()),
    ((4, 6, 3), dict(stride=2, padding=1, bias=False)),
    ((4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)),
    ((4, 4, 3), dict(padding="same", groups=4)),
    ((4, 6, 3), dict(padding="valid")),
    ((4, 6, 3), dict(padding=2, padding_mode="reflect")),
    ((4, 6, (2, 3), 1, (1, 2)), dict(padding_mode="replicate")),
    ((4, 6, 4), dict(padding="same", padding_mode="circular", dilation=1)),
]


@pytest.mark.parametrize("args, kwargs", CONV2D)
def test_conv2d_matches_torch(args, kwargs):
    _compare(nn.Conv2d, torch.nn.Conv2d, args, kwargs, randn(2, 4, 8, 9, seed=1))


def test_conv2d_unbatched_jit_vmap_and_compile():
    t = torch.nn.Conv2d(3, 5, 3, padding=1)
    m = nn.Conv2d(3, 5, 3, padding=1)
    m.load_state_dict(t.state_dict())
    x = randn(4, 3, 6, 6, seed=2)
    expected = t(to_torch(x)).detach()
    assert_close(jax.jit(lambda mod, v: mod(v))(m, x), expected, atol=ATOL)
    assert_close(jax.vmap(m)(jnp.asarray(x)), expected, atol=ATOL)  # unbatched per example
    assert_close(jaxmodule.compile(m)(jnp.asarray(x)), expected, atol=ATOL)


def test_conv2d_default_init_bounds_and_stats():
    m = nn.Conv2d(8, 64, 3)
    fan_in = 8 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) gives the same bound
    w, b = np.asarray(m.weight), np.asarray(m.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound) has std bound / sqrt(3); 4608 samples give ~1% relative error
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3)
    assert abs(w.mean()) < 0.05 * bound
    m2 = nn.Conv2d(8, 64, 3)
    assert not np.allclose(np.asarray(m2.weight), w)  # draws from the global generator


def test_conv2d_dtype_and_state_dict_roundtrip():
    m = nn.Conv2d(2, 3, 3, dtype=torch.float64 if jax.config.jax_enable_x64 else "bfloat16")
    assert m.weight.dtype == m.bias.dtype != jnp.float32
    m32 = nn.Conv2d(2, 3, 3)
    m32b = nn.Conv2d(2, 3, 3)
    m32b.load_state_dict(m32.state_dict())
    x = randn(1, 2, 5, 5)
    np.testing.assert_array_equal(np.asarray(m32(x)), np.asarray(m32b(x)))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((4, 6, 3), dict(stride=2, padding=2, groups=2)),
        ((4, 6, 5), dict(padding="same", padding_mode="circular")),
    ],
)
def test_conv1d_matches_torch(args, kwargs):
    _compare(nn.Conv1d, torch.nn.Conv1d, args, kwargs, randn(2, 4, 11, seed=1))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((2, 4, 2), dict(stride=(1, 2, 2), padding=1)),
        ((2, 4, 3), dict(padding=1, padding_mode="replicate")),
    ],
)
def test_conv3d_matches_torch(args, kwargs):
    _compare(nn.Conv3d, torch.nn.Conv3d, args, kwargs, randn(2, 2, 4, 5, 6, seed=1))


CONVT = [
    (
        nn.ConvTranspose2d,
        torch.nn.ConvTranspose2d,
        (4, 6, 3),
        dict(stride=2, padding=1, output_padding=1),
    ),
    (
        nn.ConvTranspose2d,
        torch.nn.ConvTranspose2d,
        (4, 6, (3, 2)),
        dict(stride=(2, 3), groups=2, dilation=(2, 1), bias=False),
    ),
    (nn.ConvTranspose1d, torch.nn.ConvTranspose1d, (4, 2, 3), dict(stride=3, padding=1)),
    (nn.ConvTranspose3d, torch.nn.ConvTranspose3d, (4, 2, 2), dict(stride=2)),
]


@pytest.mark.parametrize("jm_cls, t_cls, args, kwargs", CONVT)
def test_conv_transpose_matches_torch(jm_cls, t_cls, args, kwargs):
    nd = {nn.ConvTranspose1d: 1, nn.ConvTranspose2d: 2, nn.ConvTranspose3d: 3}[jm_cls]
    x = randn(2, 4, *(5, 4, 3)[:nd], seed=1)
    _compare(jm_cls, t_cls, args, kwargs, x)


@pytest.mark.parametrize("output_size", [(10, 10), [1, 6, 9, 10]])
def test_conv_transpose2d_output_size(output_size):
    x = randn(1, 4, 5, 5, seed=1)
    _compare(
        nn.ConvTranspose2d,
        torch.nn.ConvTranspose2d,
        (4, 6, 3),
        dict(stride=2, padding=1),
        x,
        forward_kwargs=dict(output_size=output_size),
    )


def test_conv_transpose_output_size_errors():
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    with pytest.raises(
        ValueError,
        match="requested an output size of \\[12, 12\\], but valid sizes range "
        "from \\[9, 9\\] to \\[10, 10\\]",
    ):
        m(jnp.ones((1, 4, 5, 5)), output_size=(12, 12))
    with pytest.raises(
        ValueError, match="for 4D input, output_size must have 2 or 4 elements \\(got 3\\)"
    ):
        m(jnp.ones((1, 4, 5, 5)), output_size=(1, 10, 10))


@pytest.mark.parametrize(
    "jm_cls, t_cls, nd",
    [
        (nn.LazyConv2d, torch.nn.LazyConv2d, 2),
        (nn.LazyConvTranspose1d, torch.nn.LazyConvTranspose1d, 1),
    ],
)
def test_lazy_conv(jm_cls, t_cls, nd):
    m, t = jm_cls(6, 3, stride=2), t_cls(6, 3, stride=2)
    assert repr(m) == repr(t)
    x = randn(2, 4, *(7, 6)[:nd], seed=1)
    out = m(jnp.asarray(x))
    t(to_torch(x))
    assert type(m).__name__ == type(t).__name__
    assert repr(m) == repr(t)
    assert state_dict_shapes(m.state_dict()) == state_dict_shapes(t.state_dict())
    m.load_state_dict(t.state_dict())
    assert_close(m(jnp.asarray(x)), t(to_torch(x)), atol=ATOL)
    assert out.shape == tuple(t(to_torch(x)).shape)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nn.Conv2d(4, 6, 3, groups=0), "groups must be a positive integer"),
        (lambda: nn.Conv2d(4, 6, 3, groups=3), "in_channels must be divisible by groups"),
        (lambda: nn.Conv2d(4, 6, 3, groups=4), "out_channels must be divisible by groups"),
        (lambda: nn.Conv2d(4, 6, 3, padding="full"), "Invalid padding string 'full'"),
        (
            lambda: nn.Conv2d(4, 6, 3, padding="same", stride=2),
            "padding='same' is not supported for strided",
        ),
        (lambda: nn.Conv2d(4, 6, 3, padding_mode="mirror"), "padding_mode must be one of"),
        (
            lambda: nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"),
            'Only "zeros" padding mode is supported for ConvTranspose2d',
        ),
    ],
)
def test_constructor_errors_match_torch(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_forward_error_names_the_problem():
    with pytest.raises(RuntimeError, match="expected input\\[1, 3, 5, 5\\] to have 4 channels"):
        nn.Conv2d(4, 6, 3)(jnp.ones((1, 3, 5, 5)))
