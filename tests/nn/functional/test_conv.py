"""Differential tests of jaxmodule.nn.functional convolutions and unfold/fold against torch."""

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_torch


def _check(jm_fn, torch_fn, arrays, kwargs, rtol=1e-5, atol=1e-5):
    """Compare outputs and gradients (w.r.t. every array argument) of a weighted sum of the output.

    atol 1e-5: convolution outputs are sums of ~100 products of unit normals (magnitude ~10), so a
    float32 reordering of the accumulation gives absolute differences of a few 1e-6 near zero.
    """
    tt = [None if a is None else to_torch(a, requires_grad=True) for a in arrays]
    t_out = torch_fn(*tt, **kwargs)
    ct = randn(*t_out.shape, seed=99)
    (t_out * to_torch(ct)).sum().backward()
    ja = [None if a is None else jnp.asarray(a) for a in arrays]
    out = jm_fn(*ja, **kwargs)
    assert_close(out, t_out, rtol, atol)
    idx = [i for i, a in enumerate(ja) if a is not None]

    def loss(*diff):
        args = list(ja)
        for i, v in zip(idx, diff):
            args[i] = v
        return (jm_fn(*args, **kwargs) * ct).sum()

    grads = jax.grad(loss, argnums=tuple(range(len(idx))))(*[ja[i] for i in idx])
    for g, i in zip(grads, idx):
        assert_close(g, tt[i].grad, rtol, atol)


CONV2D_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
    dict(groups=2, padding=1),
    dict(stride=3, groups=2, dilation=2, padding=(2, 0)),
]


@pytest.mark.parametrize("kwargs", CONV2D_CASES)
def test_conv2d(kwargs):
    groups = kwargs.get("groups", 1)
    x, w, b = randn(2, 4, 9, 8, seed=1), randn(6, 4 // groups, 3, 2, seed=2), randn(6, seed=3)
    _check(F.conv2d, TF.conv2d, [x, w, b], kwargs)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_same_even_kernel_pads_right():
    x, w = randn(1, 2, 6, 7, seed=1), randn(3, 2, 4, 2, seed=2)
    _check(F.conv2d, TF.conv2d, [x, w, None], dict(padding="same"))


def test_conv2d_unbatched_and_jit():
    x, w, b = randn(3, 7, 7, seed=1), randn(5, 3, 3, 3, seed=2), randn(5, seed=3)
    expected = TF.conv2d(to_torch(x), to_torch(w), to_torch(b), padding=1)
    out = jax.jit(lambda x, w, b: F.conv2d(x, w, b, padding=1))(x, w, b)
    assert out.shape == (5, 7, 7)
    assert_close(out, expected, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(stride=2, padding=2, dilation=2, groups=3), dict(padding="same")]
)
def test_conv1d(kwargs):
    groups = kwargs.get("groups", 1)
    x, w, b = randn(2, 6, 11, seed=1), randn(9, 6 // groups, 3, seed=2), randn(9, seed=3)
    _check(F.conv1d, TF.conv1d, [x, w, b], kwargs)


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=(1, 2, 2), padding=1, groups=2)])
def test_conv3d(kwargs):
    groups = kwargs.get("groups", 1)
    x, w, b = randn(2, 4, 5, 6, 5, seed=1), randn(4, 4 // groups, 2, 3, 2, seed=2), randn(4, seed=3)
    _check(F.conv3d, TF.conv3d, [x, w, b], kwargs)


CONVT2D_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(3, 2), padding=(2, 1), output_padding=(2, 0), dilation=(1, 2)),
    dict(groups=2, stride=2, dilation=3, output_padding=2),
    dict(padding=3),  # padding larger than dilation * (kernel - 1): the result is cropped
]


@pytest.mark.parametrize("kwargs", CONVT2D_CASES)
def test_conv_transpose2d(kwargs):
    groups = kwargs.get("groups", 1)
    x, w, b = randn(2, 4, 5, 6, seed=1), randn(4, 6 // groups, 3, 4, seed=2), randn(6, seed=3)
    _check(F.conv_transpose2d, TF.conv_transpose2d, [x, w, b], kwargs)


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1, groups=3)])
def test_conv_transpose1d_3d(kwargs):
    x, w, b = randn(2, 6, 7, seed=1), randn(6, 2, 3, seed=2), randn(6, seed=3)
    _check(F.conv_transpose1d, TF.conv_transpose1d, [x, w, b], kwargs)
    x, w, b = randn(6, 3, 4, 3, seed=1), randn(6, 1, 2, 3, 2, seed=2), randn(3, seed=3)  # unbatched
    _check(F.conv_transpose3d, TF.conv_transpose3d, [x, w, b], kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
        dict(kernel_size=3, stride=2, padding=1),
    ],
)
def test_unfold_fold(kwargs):
    x = randn(2, 3, 7, 6, seed=1)
    _check(F.unfold, TF.unfold, [x], kwargs, atol=1e-6)
    blocks = np.asarray(TF.unfold(to_torch(x), **kwargs))
    _check(
        lambda b, **kw: F.fold(b, (7, 6), **kw),
        lambda b, **kw: TF.fold(b, (7, 6), **kw),
        [blocks],
        kwargs,
        atol=1e-6,
    )
    _check(F.unfold, TF.unfold, [x[0]], kwargs, atol=1e-6)  # unbatched


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 2, 3, 3)), groups=3),
            "expected input\\[1, 4, 5, 5\\] to have 6 channels, but got 4 channels instead",
        ),
        (
            lambda: F.conv2d(
                jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), padding="same", stride=2
            ),
            "padding='same' is not supported for strided convolutions",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), padding="foo"),
            "Invalid padding string: 'foo'",
        ),
        (
            lambda: F.conv2d(jnp.ones((4, 5)), jnp.ones((6, 4, 3, 3))),
            "Expected 3D \\(unbatched\\) or 4D \\(batched\\) input to conv2d",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 1, 1)), jnp.ones((6, 4, 3, 3))),
            "Kernel size can't be greater than actual input size",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), stride=0),
            "non-positive stride is not supported",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), padding=-1),
            "negative padding is not supported",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), stride=(1, 2, 3)),
            "expected stride to be a single integer value or a list of 2 values",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5)), jnp.ones((6, 4, 3, 3)), jnp.ones(5)),
            "expected bias to be 1-dimensional with 6 elements, but got bias of size \\[5\\]",
        ),
        (
            lambda: F.conv2d(jnp.ones((1, 4, 5, 5), jnp.float16), jnp.ones((6, 4, 3, 3))),
            "input dtype \\(float16\\) and weight dtype \\(float32\\) should be the same",
        ),
        (
            lambda: F.conv_transpose2d(
                jnp.ones((1, 4, 5, 5)), jnp.ones((4, 3, 3, 3)), stride=2, output_padding=2
            ),
            "output padding must be smaller than either stride or dilation",
        ),
        (
            lambda: F.conv_transpose2d(jnp.ones((1, 4, 5, 5)), jnp.ones((4, 3, 3, 3)), groups=3),
            "expected weight to be divisible by 3 at dimension 0",
        ),
        (
            lambda: F.fold(jnp.ones((1, 12, 5)), (4, 4), 2),
            "match the calculated number of sliding blocks 3 \\* 3 = 9, but got input.size\\(2\\)=5",
        ),
        (
            lambda: F.unfold(jnp.ones((2, 3, 4, 5, 5)), 2),
            "Expected 3D or 4D \\(batch mode\\) tensor",
        ),
    ],
)
def test_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_conv_transpose_rejects_string_padding():
    with pytest.raises(TypeError, match="argument 'padding' must be tuple of ints, not str"):
        F.conv_transpose2d(jnp.ones((1, 4, 5, 5)), jnp.ones((4, 3, 3, 3)), padding="same")


def test_conv_autocast_computes_in_low_precision():
    import jaxmodule

    x, w, b = randn(1, 2, 5, 5, seed=1), randn(3, 2, 3, 3, seed=2), randn(3, seed=3)
    with jaxmodule.amp.autocast("cpu", dtype=jnp.bfloat16):
        out = F.conv2d(x, w, b, padding=1)
        out_t = F.conv_transpose2d(x, np.swapaxes(w, 0, 1), b)
    assert out.dtype == out_t.dtype == jnp.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = TF.conv2d(to_torch(x), to_torch(w), to_torch(b), padding=1)
    assert expected.dtype == torch.bfloat16
    assert_close(out, expected, rtol=2e-2, atol=5e-2)  # bfloat16 keeps 8 mantissa bits
    assert F.conv2d(x, w, b).dtype == jnp.float32  # outside the region nothing changes
