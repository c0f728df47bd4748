"""Differential tests of jaxmodule.nn.functional normalization functions against torch 2.13."""

import math

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from jaxmodule.nn.functional.normalization import (
    _batch_norm_and_stats,
    _instance_norm_and_stats,
)

from tests.helpers import assert_close, randn, to_torch


def check_vjp(jfn, tfn, arrays, rtol=1e-5, atol=1e-6, grad_rtol=None, grad_atol=None):
    """Compare outputs and gradients (w.r.t. every non-None array) of jfn vs tfn.

    The loss is sum(out * g) with a fixed random cotangent g, so every output element matters.
    """
    idx = [i for i, a in enumerate(arrays) if a is not None]
    jargs = [None if a is None else jnp.asarray(a) for a in arrays]

    def f(*diff):
        args = list(jargs)
        for i, d in zip(idx, diff):
            args[i] = d
        return jfn(*args)

    out, vjp = jax.vjp(f, *[jargs[i] for i in idx])
    targs = [None if a is None else to_torch(a, requires_grad=True) for a in arrays]
    tout = tfn(*targs)
    assert_close(out, tout, rtol, atol)
    g = randn(*out.shape, seed=7)
    grads = vjp(jnp.asarray(g))
    tout.backward(torch.from_numpy(g))
    for i, gj in zip(idx, grads):
        assert_close(gj, targs[i].grad, grad_rtol or rtol, grad_atol or atol)


# ---- batch_norm --------------------------------------------------------------------------------
BN_SHAPES = [(4, 3), (4, 3, 5), (2, 3, 2, 3)]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_torch(shape, affine):
    c = shape[1]
    x = randn(*shape)
    w = randn(c, seed=1) if affine else None
    b = randn(c, seed=2) if affine else None
    check_vjp(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
        [x, w, b],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )  # the backward sums over the batch


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_eval_matches_torch(shape):
    c = shape[1]
    x, w, b = randn(*shape), randn(c, seed=1), randn(c, seed=2)
    rm, rv = randn(c, seed=3), np.abs(randn(c, seed=4)) + 0.5
    check_vjp(
        lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3),
        lambda x, w, b: TF.batch_norm(
            x, to_torch(rm), to_torch(rv), w, b, training=False, eps=1e-3
        ),
        [x, w, b],
    )


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_running_stats_match_torch(momentum):
    x = randn(5, 3, 4)
    rm, rv = randn(3, seed=3), np.abs(randn(3, seed=4)) + 0.5
    trm, trv = to_torch(rm), to_torch(rv)
    tout = TF.batch_norm(to_torch(x), trm, trv, training=True, momentum=momentum)
    out, nrm, nrv = _batch_norm_and_stats(
        x, jnp.asarray(rm), jnp.asarray(rv), training=True, momentum=momentum
    )
    assert_close(out, tout)
    assert_close(nrm, trm)
    assert_close(nrv, trv)  # unbiased batch variance goes into running_var


def test_batch_norm_eval_returns_stats_unchanged_and_public_fn_drops_them():
    rm, rv = jnp.zeros(2), jnp.ones(2)
    _, nrm, nrv = _batch_norm_and_stats(randn(3, 2), rm, rv, training=False)
    assert nrm is rm and nrv is rv
    _, nrm, nrv = _batch_norm_and_stats(randn(3, 2), None, None, training=True)
    assert nrm is None and nrv is None


def test_batch_norm_traced_momentum_under_jit():
    x = randn(4, 3)
    f = jax.jit(
        lambda x, m: _batch_norm_and_stats(x, jnp.zeros(3), jnp.ones(3), training=True, momentum=m)[
            1:
        ]
    )
    nrm, nrv = f(jnp.asarray(x), jnp.float32(0.25))
    trm, trv = torch.zeros(3), torch.ones(3)
    TF.batch_norm(to_torch(x), trm, trv, training=True, momentum=0.25)
    assert_close(nrm, trm)
    assert_close(nrv, trv)


def test_batch_norm_bfloat16_close_to_torch():
    x = randn(4, 3, 5)
    out = F.batch_norm(jnp.asarray(x, jnp.bfloat16), None, None, training=True)
    assert out.dtype == jnp.bfloat16
    tout = TF.batch_norm(to_torch(x).bfloat16(), None, None, training=True)
    assert_close(out, tout, rtol=2e-2, atol=2e-2)  # bfloat16 has 8 mantissa bits


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.batch_norm(randn(2, 3), None, None),
            RuntimeError,
            "running_mean must be defined in evaluation mode",
        ),
        (
            lambda: F.batch_norm(randn(2, 3), jnp.zeros(3), None),
            RuntimeError,
            "running_var must be defined in evaluation mode",
        ),
        (
            lambda: F.batch_norm(randn(2, 3), jnp.zeros(4), jnp.ones(4)),
            RuntimeError,
            "running_mean should contain 3 elements not 4",
        ),
        (
            lambda: F.batch_norm(randn(2, 3), None, None, jnp.ones(4), training=True),
            RuntimeError,
            "weight should contain 3 elements not 4",
        ),
        (
            lambda: F.batch_norm(randn(1, 3), None, None, training=True),
            ValueError,
            r"Expected more than 1 value per channel when training, got input size torch.Size\(\[1, 3\]\)",
        ),
        (
            lambda: F.batch_norm(randn(2, 3), None, None, training=True, eps=0),
            ValueError,
            "batch_norm eps must be positive during training, but got 0",
        ),
        (
            lambda: F.batch_norm(randn(2, 3), jnp.zeros(3), jnp.ones(3), eps=-1),
            ValueError,
            "batch_norm eps must be non-negative, but got -1",
        ),
        (
            lambda: F.batch_norm(randn(3), None, None, training=True),
            IndexError,
            "Dimension out of range",
        ),
    ],
)
def test_batch_norm_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- instance_norm -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 2, 3)])
def test_instance_norm_matches_torch(shape):
    c = shape[1]
    x, w, b = randn(*shape), randn(c, seed=1), randn(c, seed=2)
    check_vjp(
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
        lambda x, w, b: TF.instance_norm(x, weight=w, bias=b),
        [x, w, b],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )


def test_instance_norm_running_stats_match_torch():
    x = randn(3, 2, 6)
    rm, rv = randn(2, seed=3), np.abs(randn(2, seed=4)) + 0.5
    trm, trv = to_torch(rm), to_torch(rv)
    tout = TF.instance_norm(to_torch(x), trm, trv, momentum=0.3)
    out, nrm, nrv = _instance_norm_and_stats(x, jnp.asarray(rm), jnp.asarray(rv), momentum=0.3)
    assert_close(out, tout)
    assert_close(nrm, trm)
    assert_close(nrv, trv)


def test_instance_norm_with_running_stats_in_eval():
    x, w = randn(3, 2, 6), randn(2, seed=1)
    rm, rv = randn(2, seed=3), np.abs(randn(2, seed=4)) + 0.5
    check_vjp(
        lambda x, w: F.instance_norm(x, rm, rv, w, use_input_stats=False),
        lambda x, w: TF.instance_norm(x, to_torch(rm), to_torch(rv), w, use_input_stats=False),
        [x, w],
    )


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.instance_norm(randn(2, 3, 1)),
            ValueError,
            r"Expected more than 1 spatial element when training, got input size torch.Size\(\[2, 3, 1\]\)",
        ),
        (
            lambda: F.instance_norm(randn(2, 3, 4), jnp.zeros(4), jnp.ones(4)),
            RuntimeError,
            "running_mean should contain 6 elements not 8",
        ),
        (
            lambda: F.instance_norm(randn(2, 3, 4), use_input_stats=False),
            RuntimeError,
            "Expected running_mean and running_var to be defined when use_input_stats is false",
        ),
    ],
)
def test_instance_norm_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- layer_norm / rms_norm / group_norm --------------------------------------------------------
@pytest.mark.parametrize("shape, nshape", [((4, 5), 5), ((2, 3, 4), (3, 4)), ((2, 3, 4), [4])])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_torch(shape, nshape, affine):
    ns = (nshape,) if isinstance(nshape, int) else tuple(nshape)
    x = randn(*shape)
    w = randn(*ns, seed=1) if affine != "none" else None
    b = randn(*ns, seed=2) if affine == "both" else None
    check_vjp(
        lambda x, w, b: F.layer_norm(x, nshape, w, b, eps=1e-4),
        lambda x, w, b: TF.layer_norm(x, list(ns), w, b, eps=1e-4),
        [x, w, b],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )


@pytest.mark.parametrize("shape, nshape", [((4, 5), [5]), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("eps", [None, 1e-3])
@pytest.mark.parametrize("weighted", [True, False])
def test_rms_norm_matches_torch(shape, nshape, eps, weighted):
    x = randn(*shape)
    w = randn(*nshape, seed=1) if weighted else None
    check_vjp(
        lambda x, w: F.rms_norm(x, nshape, w, eps),
        lambda x, w: TF.rms_norm(x, list(nshape), w, eps),
        [x, w],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )


def test_rms_norm_default_eps_of_half_input_is_float32_eps():
    x = np.full((4,), 0.01, np.float32)
    out = F.rms_norm(jnp.asarray(x, jnp.bfloat16), [4])
    assert_close(out, TF.rms_norm(to_torch(x).bfloat16(), [4]))


@pytest.mark.parametrize(
    "shape, groups", [((2, 4, 3), 2), ((2, 6, 2, 2), 3), ((3, 4), 2), ((2, 4, 3), 1)]
)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(shape, groups, affine):
    c = shape[1]
    x = randn(*shape)
    w = randn(c, seed=1) if affine else None
    b = randn(c, seed=2) if affine else None
    check_vjp(
        lambda x, w, b: F.group_norm(x, groups, w, b),
        lambda x, w, b: TF.group_norm(x, groups, w, b),
        [x, w, b],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.layer_norm(randn(2, 4), [3]),
            RuntimeError,
            r"Given normalized_shape=\[3\], expected input with shape \[\*, 3\], but got input of size\[2, 4\]",
        ),
        (
            lambda: F.layer_norm(randn(2, 4), [4], jnp.ones(3)),
            RuntimeError,
            r"Expected weight to be of same shape as normalized_shape, but got weight of shape \[3\]",
        ),
        (
            lambda: F.layer_norm(randn(2, 4), [4], None, jnp.ones(3)),
            RuntimeError,
            r"Expected bias to be of same shape as normalized_shape, but got bias of shape \[3\]",
        ),
        (
            lambda: F.layer_norm(randn(2, 4), []),
            RuntimeError,
            "Expected normalized_shape to be at least 1-dimensional",
        ),
        (
            lambda: F.rms_norm(randn(2, 4), [3]),
            RuntimeError,
            r"expected input with shape \[\*3\], but got input of size\[2, 4\]",
        ),
        (
            lambda: F.group_norm(randn(2, 3, 4), 2),
            RuntimeError,
            r"Expected number of channels in input to be divisible by num_groups, but got input of "
            r"shape \[2, 3, 4\] and num_groups=2",
        ),
        (
            lambda: F.group_norm(randn(2, 4, 4), 2, jnp.ones(3)),
            RuntimeError,
            r"Expected weight to be a vector of size equal to the number of channels in input, but got "
            r"weight of shape \[3\] and input of shape \[2, 4, 4\]",
        ),
        (
            lambda: F.group_norm(randn(1, 2, 1), 2),
            ValueError,
            r"Expected more than 1 value per channel when training, got input size \[1, 2, 1\]",
        ),
        (
            lambda: F.group_norm(randn(4), 2),
            RuntimeError,
            "Expected at least 2 dimensions for input tensor but received 1",
        ),
    ],
)
def test_layer_group_rms_norm_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- local_response_norm / normalize -----------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 6, 2, 3), (1, 4, 2, 2, 2)])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_local_response_norm_matches_torch(shape, size):
    x = randn(*shape) * 3
    check_vjp(
        lambda x: F.local_response_norm(x, size, alpha=0.1, beta=0.6, k=2.0),
        lambda x: TF.local_response_norm(x, size, alpha=0.1, beta=0.6, k=2.0),
        [x],
    )


def test_local_response_norm_errors_and_empty():
    with pytest.raises(
        ValueError, match=r"Expected 3D or higher dimensionality input \(got 2 dimensions\)"
    ):
        F.local_response_norm(randn(3, 4), 2)
    assert F.local_response_norm(jnp.zeros((0, 3, 2)), 2).shape == (0, 3, 2)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("dim", [0, 1, -1, (0, 2)])
def test_normalize_matches_torch(p, dim):
    x = randn(3, 4, 2)
    check_vjp(
        lambda x: F.normalize(x, p, dim),
        lambda x: TF.normalize(x, p, dim),
        [x],
        grad_rtol=1e-4,
        grad_atol=1e-5,
    )


def test_normalize_zero_vector_gradient_matches_torch():
    x = np.zeros((2, 3), np.float32)
    x[1] = [1.0, -2.0, 0.5]
    check_vjp(lambda x: F.normalize(x, dim=1), lambda x: TF.normalize(x, dim=1), [x])


def test_normalize_errors():
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.normalize(jnp.ones(3), dim=1)
    with pytest.raises(NotImplementedError, match="`out`"):
        F.normalize(jnp.ones((2, 3)), out=jnp.ones((2, 3)))


def test_normalization_functions_under_jit_and_vmap():
    x = jnp.asarray(randn(4, 3, 5))
    f = jax.jit(
        lambda x: (
            F.batch_norm(x, None, None, training=True),
            F.layer_norm(x, [5]),
            F.group_norm(x, 3),
            F.instance_norm(x),
            F.rms_norm(x, [5]),
            F.local_response_norm(x, 2),
            F.normalize(x),
        )
    )
    eager = (
        F.batch_norm(x, None, None, training=True),
        F.layer_norm(x, [5]),
        F.group_norm(x, 3),
        F.instance_norm(x),
        F.rms_norm(x, [5]),
        F.local_response_norm(x, 2),
        F.normalize(x),
    )
    for a, e in zip(f(x), eager):
        assert_close(a, e)
    per_sample = jax.vmap(lambda s: F.layer_norm(s, [5]))(x)
    assert_close(per_sample, eager[1])
