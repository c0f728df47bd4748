"""Differential tests of LayerNorm, GroupNorm, RMSNorm, LocalResponseNorm, CrossMapLRN2d vs torch."""

import jax
import jax.numpy as jnp
import pytest
import torch
from jaxmodule import nn

from tests.helpers import (
    assert_close,
    assert_forward_and_grads_match,
    randn,
    state_dict_shapes,
)
from tests.helpers import randomize_torch_module as randomize

GRAD_TOL = dict(rtol=1e-4, atol=1e-5)  # normalization backwards sum over the normalized dims


def compare(jm, tm, x, rtol=1e-5, atol=1e-6, grad_tol=GRAD_TOL):
    """Load tm's state into jm, then compare forward and gradients (input and parameters)."""
    jm.load_state_dict(tm.state_dict())
    assert_forward_and_grads_match(jm, tm, x, rtol, atol, grad_tol)


def check_structure(jm, tm):
    assert repr(jm) == repr(tm)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())
    for v, tv in zip(jm.state_dict().values(), tm.state_dict().values()):
        assert_close(v, tv)  # torch's initial values


LAYER_NORM_CASES = [
    (dict(normalized_shape=5), (3, 5)),
    (dict(normalized_shape=[2, 5], eps=1e-3), (3, 2, 5)),
    (dict(normalized_shape=(5,), bias=False), (2, 3, 5)),
    (dict(normalized_shape=5, elementwise_affine=False), (3, 5)),
]


@pytest.mark.parametrize("kwargs, shape", LAYER_NORM_CASES)
def test_layer_norm_matches_torch(kwargs, shape):
    tm, jm = torch.nn.LayerNorm(**kwargs), nn.LayerNorm(**kwargs)
    check_structure(jm, tm)
    compare(jm, randomize(tm), randn(*shape))


GROUP_NORM_CASES = [
    (dict(num_groups=2, num_channels=4), (3, 4, 5)),
    (dict(num_groups=3, num_channels=6, eps=1e-3), (2, 6, 2, 2)),
    (dict(num_groups=1, num_channels=4, affine=False), (2, 4, 3)),
    (dict(num_groups=4, num_channels=4, bias=False), (2, 4, 3)),
]


@pytest.mark.parametrize("kwargs, shape", GROUP_NORM_CASES)
def test_group_norm_matches_torch(kwargs, shape):
    tm, jm = torch.nn.GroupNorm(**kwargs), nn.GroupNorm(**kwargs)
    check_structure(jm, tm)
    compare(jm, randomize(tm), randn(*shape))


def test_group_norm_errors():
    with pytest.raises(
        ValueError, match="num_channels \\(5\\) must be divisible by num_groups \\(2\\)"
    ):
        nn.GroupNorm(2, 5)
    with pytest.raises(RuntimeError, match="Expected number of channels in input to be divisible"):
        nn.GroupNorm(2, 4)(jnp.ones((2, 3, 4)))


RMS_CASES = [
    (dict(normalized_shape=5), (3, 5)),
    (dict(normalized_shape=[2, 5], eps=1e-3), (3, 2, 5)),
    (dict(normalized_shape=5, elementwise_affine=False), (3, 5)),
]


@pytest.mark.parametrize("kwargs, shape", RMS_CASES)
def test_rms_norm_matches_torch(kwargs, shape):
    tm, jm = torch.nn.RMSNorm(**kwargs), nn.RMSNorm(**kwargs)
    check_structure(jm, tm)
    compare(jm, randomize(tm), randn(*shape))


def test_layer_norm_shape_error():
    with pytest.raises(
        RuntimeError, match="Given normalized_shape=\\[4\\], expected input with shape"
    ):
        nn.LayerNorm(4)(jnp.ones((2, 3)))


@pytest.mark.parametrize("size, shape", [(2, (2, 5, 3)), (3, (2, 4, 2, 3)), (4, (1, 6, 2, 2, 2))])
def test_local_response_norm_matches_torch(size, shape):
    kwargs = dict(size=size, alpha=0.3, beta=0.6, k=1.5)
    tm, jm = torch.nn.LocalResponseNorm(**kwargs), nn.LocalResponseNorm(**kwargs)
    check_structure(jm, tm)
    compare(jm, tm, randn(*shape) * 2, grad_tol=dict(rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("size", [2, 3, 5])
def test_cross_map_lrn2d_matches_torch_forward_and_backward(size):
    tm = torch.nn.CrossMapLRN2d(size, alpha=0.5, beta=0.7, k=1.5)
    jm = nn.CrossMapLRN2d(size, alpha=0.5, beta=0.7, k=1.5)
    check_structure(jm, tm)
    # torch's hand-written backward is not the derivative of its forward; both are reproduced.
    compare(jm, tm, randn(2, 7, 2, 3) * 2, grad_tol=dict(rtol=1e-5, atol=1e-6))
    with pytest.raises(ValueError, match="CrossMapLRN2d: Expected input to be 4D, got 3D instead."):
        jm(jnp.ones((2, 3, 4)))


def test_default_reprs_match_torch():
    pairs = [
        (nn.LayerNorm(3), torch.nn.LayerNorm(3)),
        (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
        (nn.RMSNorm(3), torch.nn.RMSNorm(3)),
        (nn.LocalResponseNorm(2), torch.nn.LocalResponseNorm(2)),
        (nn.CrossMapLRN2d(3), torch.nn.CrossMapLRN2d(3)),
    ]
    for jm, tm in pairs:
        assert repr(jm) == repr(tm)


def test_layers_under_jit_vmap_and_dtype():
    x = jnp.asarray(randn(4, 6, 3))
    for m in (nn.LayerNorm(3), nn.GroupNorm(3, 6), nn.RMSNorm(3), nn.LocalResponseNorm(2)):
        assert_close(jax.jit(lambda mod, v: mod(v))(m, x), m(x))
    ln = nn.LayerNorm(3)
    assert_close(jax.vmap(ln)(x), ln(x))
    half = nn.LayerNorm(3, dtype=jnp.bfloat16)
    assert half.weight.dtype == jnp.bfloat16
    assert half(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
