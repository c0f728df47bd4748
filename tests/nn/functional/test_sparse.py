"""Differential tests of F.embedding, F.embedding_bag and F.one_hot against torch 2.13."""

import math

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from jaxmodule.nn.functional.sparse import _embedding_and_weight, _embedding_bag_and_weight

from tests.helpers import assert_close, randn, to_torch

IDX_1D = np.array([0, 3, 3, 5, 1, 0, 3])
IDX_2D = np.array([[0, 3, 3], [5, 1, 0]])


def weight_grad(jfn, w, cot_seed=7):
    """(output, d(sum(out * g))/dw) for a jax function of the weight."""
    out, vjp = jax.vjp(jfn, jnp.asarray(w))
    g = randn(*out.shape, seed=cot_seed)
    return out, vjp(jnp.asarray(g))[0], g


def torch_weight_grad(tfn, w, g):
    tw = to_torch(w, requires_grad=True)
    tout = tfn(tw)
    tout.backward(torch.from_numpy(g))
    return tout, tw


# ---- embedding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("idx", [IDX_1D, IDX_2D])
@pytest.mark.parametrize("padding_idx", [None, 3, -1])
@pytest.mark.parametrize("freq", [False, True])
def test_embedding_output_and_grad_match_torch(idx, padding_idx, freq):
    w = randn(6, 4)
    out, gw, g = weight_grad(lambda w: F.embedding(idx, w, padding_idx, scale_grad_by_freq=freq), w)
    tout, tw = torch_weight_grad(
        lambda w: TF.embedding(torch.from_numpy(idx), w, padding_idx, scale_grad_by_freq=freq), w, g
    )
    assert_close(out, tout)
    assert_close(gw, tw.grad)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, math.inf])
def test_embedding_max_norm_matches_torch_output_weight_and_grad(norm_type):
    w = randn(6, 4) * 2
    out, gw, g = weight_grad(lambda w: F.embedding(IDX_1D, w, max_norm=1.5, norm_type=norm_type), w)
    tout, tw = torch_weight_grad(
        lambda w: TF.embedding(torch.from_numpy(IDX_1D), w, max_norm=1.5, norm_type=norm_type), w, g
    )
    assert_close(out, tout)
    assert_close(gw, tw.grad)  # torch renormalises outside autograd: plain gather gradient
    _, new_w = _embedding_and_weight(IDX_1D, w, max_norm=1.5, norm_type=norm_type)
    assert_close(new_w, tw)  # the weight torch modified in place; unused rows untouched
    np.testing.assert_array_equal(np.asarray(new_w)[[2, 4]], w[[2, 4]])


def test_embedding_without_max_norm_returns_no_weight():
    assert _embedding_and_weight(IDX_1D, randn(6, 2))[1] is None


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.embedding(jnp.array([0.0, 1.0]), randn(3, 2)),
            RuntimeError,
            "Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int",
        ),
        (
            lambda: F.embedding(jnp.array([0, 5]), randn(3, 2)),
            IndexError,
            "index out of range in self",
        ),
        (
            lambda: F.embedding(jnp.array([0, -1]), randn(3, 2)),
            IndexError,
            "index out of range in self",
        ),
        (
            lambda: F.embedding(jnp.array([0, 1]), randn(3, 2, 2)),
            RuntimeError,
            "'weight' must be 2-D",
        ),
        (
            lambda: F.embedding(jnp.array([0, 1]), randn(3, 2), padding_idx=3),
            AssertionError,
            "Padding_idx must be within num_embeddings",
        ),
        (
            lambda: F.embedding(jnp.array([0, 1]), randn(3, 2), padding_idx=-4),
            AssertionError,
            "Padding_idx must be within num_embeddings",
        ),
        (
            lambda: F.embedding(jnp.array([0, 1]), randn(3, 2), sparse=True),
            NotImplementedError,
            "sparse=True",
        ),
    ],
)
def test_embedding_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_embedding_under_jit_gives_nan_rows_for_out_of_range_indices():
    w = jnp.asarray(randn(3, 2))
    out = jax.jit(F.embedding)(jnp.array([1, 3, -1]), w)
    assert_close(out[0], w[1])
    assert np.isnan(np.asarray(out[1:])).all()


def test_embedding_vmap_and_int32_indices():
    w = jnp.asarray(randn(6, 3))
    idx = jnp.asarray(IDX_2D, jnp.int32)
    assert_close(jax.vmap(lambda i: F.embedding(i, w))(idx), F.embedding(idx, w))


# ---- embedding_bag -----------------------------------------------------------------------------
BAG_IDX = np.array([1, 2, 4, 5, 4, 3, 2, 0])
BAG_OFFSETS = np.array([0, 3, 3, 6])  # the second bag is empty


def _bag_case(mode, padding_idx=None, psw=False, freq=False, two_d=False, last=False):
    idx = BAG_IDX.reshape(2, 4) if two_d else BAG_IDX
    offsets = None if two_d else (np.append(BAG_OFFSETS, len(BAG_IDX)) if last else BAG_OFFSETS)
    weights = randn(*idx.shape, seed=3) if psw else None
    kwargs = dict(
        mode=mode, padding_idx=padding_idx, scale_grad_by_freq=freq, include_last_offset=last
    )
    return idx, offsets, weights, kwargs


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 4])
@pytest.mark.parametrize("layout", ["offsets", "2d", "last_offset"])
def test_embedding_bag_matches_torch(mode, padding_idx, layout):
    idx, offsets, _, kw = _bag_case(
        mode, padding_idx, two_d=layout == "2d", last=layout == "last_offset"
    )
    w = randn(6, 3)
    out, gw, g = weight_grad(lambda w: F.embedding_bag(idx, w, offsets, **kw), w)
    tout, tw = torch_weight_grad(
        lambda w: TF.embedding_bag(
            torch.from_numpy(idx), w, None if offsets is None else torch.from_numpy(offsets), **kw
        ),
        w,
        g,
    )
    assert_close(out, tout)
    assert_close(gw, tw.grad)


def test_embedding_bag_max_gradient_goes_to_first_maximum_like_torch():
    w = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]], np.float32)
    idx, offsets = np.array([0, 1, 2]), np.array([0])
    out, gw, g = weight_grad(lambda w: F.embedding_bag(idx, w, offsets, mode="max"), w)
    tout, tw = torch_weight_grad(
        lambda w: TF.embedding_bag(torch.from_numpy(idx), w, torch.from_numpy(offsets), mode="max"),
        w,
        g,
    )
    assert_close(gw, tw.grad)


@pytest.mark.parametrize("two_d", [False, True])
def test_embedding_bag_per_sample_weights_grad_matches_torch(two_d):
    idx, offsets, psw, kw = _bag_case("sum", psw=True, two_d=two_d)
    w = randn(6, 3)
    f = lambda w, p: F.embedding_bag(idx, w, offsets, per_sample_weights=p, **kw)  # noqa: E731
    out, vjp = jax.vjp(f, jnp.asarray(w), jnp.asarray(psw))
    g = randn(*out.shape, seed=7)
    gw, gp = vjp(jnp.asarray(g))
    tw, tp = to_torch(w, requires_grad=True), to_torch(psw, requires_grad=True)
    tout = TF.embedding_bag(
        torch.from_numpy(idx),
        tw,
        None if offsets is None else torch.from_numpy(offsets),
        per_sample_weights=tp,
        **kw,
    )
    tout.backward(torch.from_numpy(g))
    assert_close(out, tout)
    assert_close(gw, tw.grad)
    assert_close(gp, tp.grad)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_scale_grad_by_freq_follows_the_documented_rule(mode):
    # torch 2.13's CPU embedding_bag kernel looks the counts up by sorted position instead of by
    # index (rows 3, 4, 5 below get 0.5x, 2x, 0.5x), so the reference is the documented rule:
    # F.embedding(scale_grad_by_freq=True) reduced per bag with torch ops.
    idx, offsets, _, kw = _bag_case(mode, freq=True)
    w = randn(6, 3)
    out, gw, g = weight_grad(lambda w: F.embedding_bag(idx, w, offsets, **kw), w)

    def reference(w):
        rows = TF.embedding(torch.from_numpy(idx), w, scale_grad_by_freq=True)
        bounds = list(offsets) + [len(idx)]
        bags = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            part = rows[a:b]
            bags.append(part.sum(0) if mode == "sum" or b == a else part.mean(0))
        return torch.stack(bags)

    tout, tw = torch_weight_grad(reference, w, g)
    assert_close(out, tout)
    assert_close(gw, tw.grad)


def test_embedding_bag_max_norm_matches_torch():
    w = randn(6, 3) * 2
    tw = to_torch(w)
    tout = TF.embedding_bag(
        torch.from_numpy(BAG_IDX), tw, torch.from_numpy(BAG_OFFSETS), max_norm=1.0, mode="sum"
    )
    out, new_w = _embedding_bag_and_weight(BAG_IDX, w, BAG_OFFSETS, max_norm=1.0, mode="sum")
    assert_close(out, tout)
    assert_close(new_w, tw)


def test_embedding_bag_under_jit():
    w = jnp.asarray(randn(6, 3))
    f = jax.jit(lambda i, o, w: F.embedding_bag(i, w, o, mode="max"))
    assert_close(
        f(jnp.asarray(BAG_IDX), jnp.asarray(BAG_OFFSETS), w),
        F.embedding_bag(BAG_IDX, w, BAG_OFFSETS, mode="max"),
    )


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.embedding_bag(np.array([0, 1, 2]), randn(3, 2), np.array([1])),
            RuntimeError,
            "offsets\\[0\\] has to be 0, i.e., the first sequence in the mini-batch has to start from "
            "position 0. However, got 1",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1, 2]), randn(3, 2), np.array([0, 5])),
            RuntimeError,
            "offsets\\[-1\\] can not be greater than input's length 3 but got offsets\\[-1\\] of 5",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1, 2]), randn(3, 2), np.array([0]), mode="x"),
            ValueError,
            "mode has to be one of sum, mean or max",
        ),
        (
            lambda: F.embedding_bag(
                np.array([0, 1, 2]), randn(3, 2), np.array([0]), per_sample_weights=jnp.ones(3)
            ),
            NotImplementedError,
            "per_sample_weights is only supported for mode='sum' \\(got mode='mean'\\)",
        ),
        (
            lambda: F.embedding_bag(
                np.array([0, 1, 2]),
                randn(3, 2),
                np.array([0]),
                mode="sum",
                per_sample_weights=jnp.ones(2),
            ),
            ValueError,
            "embedding_bag: If per_sample_weights \\(torch.Size\\(\\[2\\]\\)\\) is not None, then it must "
            "have the same shape as the input \\(torch.Size\\(\\[3\\]\\)\\)",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1, 2]), randn(3, 2)),
            ValueError,
            "offsets has to be a 1D Tensor but got None",
        ),
        (
            lambda: F.embedding_bag(np.array([[0, 1, 2]]), randn(3, 2), np.array([0])),
            ValueError,
            "if input is 2D, then offsets has to be None",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1, 2]), randn(3, 2), np.array([0]), padding_idx=3),
            RuntimeError,
            "padding_idx must be within the number of embeddings, -3 through 2, but got 3",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 5]), randn(3, 2), np.array([0])),
            RuntimeError,
            "Index 1 of input takes value 5 which is not in the valid range \\[0, 3\\)",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1]), randn(3), np.array([0])),
            ValueError,
            "weight has to be a 2D Tensor, but got Tensor of dimension 1",
        ),
        (
            lambda: F.embedding_bag(
                np.array([0, 1]), randn(3, 2), np.array([0]), mode="max", scale_grad_by_freq=True
            ),
            ValueError,
            "max mode does not support scaling the gradient by the frequency",
        ),
        (
            lambda: F.embedding_bag(np.array([0, 1]), randn(3, 2), np.array([0]), sparse=True),
            NotImplementedError,
            "sparse=True",
        ),
    ],
)
def test_embedding_bag_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- one_hot -----------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [-1, 6])
def test_one_hot_matches_torch(num_classes):
    out = F.one_hot(IDX_2D, num_classes)
    tout = TF.one_hot(torch.from_numpy(IDX_2D), num_classes)
    np.testing.assert_array_equal(np.asarray(out), tout.numpy())
    assert out.dtype == jax.dtypes.canonicalize_dtype(jnp.int64)


def test_one_hot_under_jit_and_empty():
    out = jax.jit(lambda x: F.one_hot(x, 4))(jnp.array([3, 0]))
    np.testing.assert_array_equal(np.asarray(out), [[0, 0, 0, 1], [1, 0, 0, 0]])
    assert F.one_hot(jnp.zeros((0,), jnp.int32), 3).shape == (0, 3)
    with pytest.raises(NotImplementedError, match="num_classes=-1 needs concrete values"):
        jax.jit(F.one_hot)(jnp.array([1]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: F.one_hot(jnp.array([0, -1])), "Class values must be non-negative."),
        (lambda: F.one_hot(jnp.array([0, 3]), 3), "Class values must be smaller than num_classes."),
        (lambda: F.one_hot(jnp.array([0.0, 1.0])), "one_hot is only applicable to index tensor"),
        (
            lambda: F.one_hot(jnp.zeros((0,), jnp.int32)),
            "Can not infer total number of classes from empty tensor.",
        ),
    ],
)
def test_one_hot_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()
