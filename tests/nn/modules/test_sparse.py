"""Differential tests of nn.Embedding and nn.EmbeddingBag against torch 2.13."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, state_dict_shapes, to_torch

IDX = np.array([[0, 3, 3, 5], [1, 0, 4, 3]])


def grads(jm, tm, *inputs):
    """Forward and weight gradient of jm vs tm on integer inputs (state copied from tm)."""
    jm.load_state_dict(tm.state_dict())
    tm.zero_grad()
    out, vjp = jax.vjp(lambda m: m(*[None if i is None else jnp.asarray(i) for i in inputs]), jm)
    g = randn(*out.shape, seed=7)
    (gm,) = vjp(jnp.asarray(g))
    tout = tm(*[None if i is None else torch.from_numpy(i) for i in inputs])
    tout.backward(torch.from_numpy(g))
    assert_close(out, tout)
    assert_close(gm.weight._value, tm.weight.grad)


EMB_CONFIGS = [
    dict(),
    dict(padding_idx=0),
    dict(padding_idx=-3),
    dict(scale_grad_by_freq=True),
    dict(max_norm=1.0),
    dict(max_norm=2.0, norm_type=1.0, padding_idx=3),
]


@pytest.mark.parametrize("kwargs", EMB_CONFIGS)
def test_embedding_matches_torch(kwargs):
    tm, jm = torch.nn.Embedding(6, 4, **kwargs), nn.Embedding(6, 4, **kwargs)
    assert repr(jm) == repr(tm)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())
    assert jm.padding_idx == tm.padding_idx
    grads(jm, tm, IDX)


def test_embedding_init_and_padding_row():
    m = nn.Embedding(200, 50, padding_idx=-1)
    w = np.asarray(m.weight)
    np.testing.assert_array_equal(w[199], 0)
    assert abs(w[:199].mean()) < 0.02 and abs(w[:199].std() - 1) < 0.02  # N(0, 1), 9950 draws
    assert m.padding_idx == 199


def test_embedding_max_norm_writes_renormalised_weight_back():
    tm = torch.nn.Embedding(6, 4, max_norm=1.0)
    with torch.no_grad():
        tm.weight.mul_(3)
    jm = nn.Embedding(6, 4, max_norm=1.0)
    jm.load_state_dict(tm.state_dict())
    for idx in (IDX[0], IDX[1]):
        assert_close(jm(jnp.asarray(idx)), tm(torch.from_numpy(idx)))
        assert_close(jm.weight, tm.weight)  # torch renormalised these rows in place
    # rows never looked up keep their norm
    assert float(jnp.linalg.norm(jm.weight._value[2])) > 1.0


def test_embedding_max_norm_under_jit_returns_the_renormalised_module():
    jm = nn.Embedding(6, 4, max_norm=0.5)
    eager = nn.Embedding(6, 4, max_norm=0.5)
    eager.load_state_dict(jm.state_dict())
    out, jm2 = jax.jit(lambda m, i: (m(i), m))(jm, jnp.asarray(IDX))
    assert_close(out, eager(jnp.asarray(IDX)))
    assert_close(jm2.weight, eager.weight)


def test_embedding_from_pretrained():
    w = randn(5, 3)
    m = nn.Embedding.from_pretrained(torch.from_numpy(w), padding_idx=1)
    tm = torch.nn.Embedding.from_pretrained(torch.from_numpy(w), padding_idx=1)
    assert repr(m) == repr(tm)
    assert m.weight.requires_grad is False
    assert_close(m.weight, w)  # from_pretrained does not zero the padding row
    assert nn.Embedding.from_pretrained(jnp.asarray(w), freeze=False).weight.requires_grad
    with pytest.raises(
        AssertionError, match="Embeddings parameter is expected to be 2-dimensional"
    ):
        nn.Embedding.from_pretrained(jnp.ones(3))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: nn.Embedding(3, 2, padding_idx=3),
            AssertionError,
            "Padding_idx must be within num_embeddings",
        ),
        (
            lambda: nn.Embedding(3, 2, padding_idx=-4),
            AssertionError,
            "Padding_idx must be within num_embeddings",
        ),
        (
            lambda: nn.Embedding(3, 2, _weight=jnp.ones((2, 2))),
            AssertionError,
            "Shape of weight does not match num_embeddings and embedding_dim",
        ),
        (lambda: nn.Embedding(3, 2, sparse=True), NotImplementedError, "sparse=True"),
        (lambda: nn.EmbeddingBag(3, 2, sparse=True), NotImplementedError, "sparse=True"),
        (
            lambda: nn.EmbeddingBag(3, 2, padding_idx=5),
            AssertionError,
            "padding_idx must be within num_embeddings",
        ),
        (lambda: nn.Embedding(3, 2)(jnp.array([3])), IndexError, "index out of range in self"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_embedding_dtype_and_vmap():
    m = nn.Embedding(6, 4, dtype=jnp.bfloat16)
    assert m.weight.dtype == jnp.bfloat16 and m(jnp.asarray(IDX)).dtype == jnp.bfloat16
    m = nn.Embedding(6, 4)
    assert_close(jax.vmap(m)(jnp.asarray(IDX)), m(jnp.asarray(IDX)))


BAG_IDX = np.array([1, 2, 4, 5, 4, 3, 2, 0])
BAG_OFFSETS = np.array([0, 3, 3, 6])
BAG_CONFIGS = [
    dict(),
    dict(mode="sum"),
    dict(mode="max"),
    dict(padding_idx=2, mode="mean"),
    dict(max_norm=1.0, mode="sum"),
    dict(norm_type=3.0, scale_grad_by_freq=True),
]


@pytest.mark.parametrize("kwargs", BAG_CONFIGS)
def test_embedding_bag_matches_torch(kwargs):
    tm, jm = torch.nn.EmbeddingBag(6, 3, **kwargs), nn.EmbeddingBag(6, 3, **kwargs)
    assert repr(jm) == repr(tm)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())
    if kwargs.get("scale_grad_by_freq"):
        # torch's CPU bag kernel misapplies the counts (see F.embedding_bag); compare the 2-D
        # form, whose bags here hold distinct indices, so every count is 1 in both.
        grads(jm, tm, np.array([[0, 1, 2], [3, 4, 5]]))
        return
    grads(jm, tm, BAG_IDX, BAG_OFFSETS)
    grads(jm, tm, BAG_IDX.reshape(2, 4))


def test_embedding_bag_per_sample_weights_and_last_offset():
    tm = torch.nn.EmbeddingBag(6, 3, mode="sum", include_last_offset=True)
    jm = nn.EmbeddingBag(6, 3, mode="sum", include_last_offset=True)
    psw = randn(len(BAG_IDX), seed=4)
    grads(jm, tm, BAG_IDX, np.append(BAG_OFFSETS, len(BAG_IDX)), psw)


def test_embedding_bag_max_norm_writes_back_and_padding_row_is_zero():
    tm = torch.nn.EmbeddingBag(6, 3, max_norm=0.5, mode="sum", padding_idx=5)
    np.testing.assert_array_equal(np.asarray(nn.EmbeddingBag(6, 3, padding_idx=5).weight)[5], 0)
    jm = nn.EmbeddingBag(6, 3, max_norm=0.5, mode="sum", padding_idx=5)
    jm.load_state_dict(tm.state_dict())
    assert_close(
        jm(jnp.asarray(BAG_IDX), jnp.asarray(BAG_OFFSETS)),
        tm(torch.from_numpy(BAG_IDX), torch.from_numpy(BAG_OFFSETS)),
    )
    assert_close(jm.weight, tm.weight)


def test_embedding_bag_from_pretrained():
    w = randn(5, 3)
    m = nn.EmbeddingBag.from_pretrained(jnp.asarray(w), mode="max")
    tm = torch.nn.EmbeddingBag.from_pretrained(torch.from_numpy(w), mode="max")
    assert repr(m) == repr(tm)
    assert m.weight.requires_grad is False
    idx = np.array([[0, 4], [2, 3]])
    assert_close(m(jnp.asarray(idx)), tm(torch.from_numpy(idx)))
    assert nn.EmbeddingBag.from_pretrained(jnp.asarray(w), freeze=False).weight.requires_grad


def test_embedding_bag_under_jit():
    jm = nn.EmbeddingBag(6, 3, mode="max")
    f = jax.jit(lambda m, i, o: m(i, o))
    assert_close(
        f(jm, jnp.asarray(BAG_IDX), jnp.asarray(BAG_OFFSETS)),
        jm(jnp.asarray(BAG_IDX), jnp.asarray(BAG_OFFSETS)),
    )
    assert to_torch(jm.weight).shape == (6, 3)
