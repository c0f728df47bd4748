"""Differential tests of cosine_similarity, pairwise_distance and pdist against torch."""

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import pytest
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_torch


def _check2(jm_fn, torch_fn, a, b, kwargs, rtol=1e-5, atol=1e-6):
    ta, tb = to_torch(a, requires_grad=True), to_torch(b, requires_grad=True)
    t_out = torch_fn(ta, tb, **kwargs)
    ct = randn(*t_out.shape, seed=99)
    (t_out * to_torch(ct)).sum().backward()
    assert_close(jm_fn(jnp.asarray(a), jnp.asarray(b), **kwargs), t_out, rtol, atol)
    ga, gb = jax.grad(lambda u, v: (jm_fn(u, v, **kwargs) * ct).sum(), argnums=(0, 1))(
        jnp.asarray(a), jnp.asarray(b)
    )
    assert_close(ga, ta.grad, rtol, atol)
    assert_close(gb, tb.grad, rtol, atol)


@pytest.mark.parametrize(
    "shapes, kwargs",
    [
        (((4, 5), (4, 5)), dict()),
        (((4, 5), (4, 5)), dict(dim=0)),
        (((3, 1, 6), (1, 4, 6)), dict(dim=-1)),
        (((7,), (7,)), dict(dim=0)),
    ],
)
def test_cosine_similarity(shapes, kwargs):
    _check2(
        F.cosine_similarity,
        TF.cosine_similarity,
        randn(*shapes[0], seed=1),
        randn(*shapes[1], seed=2),
        kwargs,
    )


def test_cosine_similarity_tiny_norm_uses_eps_and_norm_gradient():
    a = randn(3, 4, seed=1)
    a[1] *= 1e-10  # norm below eps: clamped value, but the gradient still flows through the norm
    b = randn(3, 4, seed=2)
    _check2(F.cosine_similarity, TF.cosine_similarity, a, b, dict(eps=1e-6), atol=1e-5)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, float("inf")])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance(p, keepdim):
    _check2(
        F.pairwise_distance,
        TF.pairwise_distance,
        randn(4, 6, seed=1),
        randn(4, 6, seed=2),
        dict(p=p, keepdim=keepdim),
    )


def test_pairwise_distance_broadcast_and_zero_distance():
    _check2(
        F.pairwise_distance, TF.pairwise_distance, randn(4, 6, seed=1), randn(6, seed=2), dict()
    )
    x = randn(3, 5, seed=3)
    _check2(
        F.pairwise_distance, TF.pairwise_distance, x, x.copy(), dict(eps=0.0)
    )  # zero norm: zero grad


@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, 3.0, float("inf")])
def test_pdist(p):
    x = randn(5, 3, seed=1)
    tx = to_torch(x, requires_grad=True)
    t_out = TF.pdist(tx, p)
    t_out.sum().backward()
    assert_close(F.pdist(x, p), t_out)
    assert_close(jax.grad(lambda v: F.pdist(v, p).sum())(jnp.asarray(x)), tx.grad)


def test_errors():
    with pytest.raises(RuntimeError, match="pdist only supports 2D tensors, got: 3D"):
        F.pdist(jnp.ones((2, 2, 2)))
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.cosine_similarity(jnp.ones((2, 3)), jnp.ones((2, 3)), dim=2)
