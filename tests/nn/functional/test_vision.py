"""Differential tests of pad, interpolate and pixel/channel shuffles against torch."""

import itertools

import jax
import jax.numpy as jnp
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_torch


def _check(jm_fn, torch_fn, x, kwargs, rtol=1e-5, atol=1e-6):
    tx = to_torch(x, requires_grad=True)
    t_out = torch_fn(tx, **kwargs)
    ct = randn(*t_out.shape, seed=99)
    (t_out * to_torch(ct)).sum().backward()
    assert_close(jm_fn(jnp.asarray(x), **kwargs), t_out, rtol, atol)
    g = jax.grad(lambda v: (jm_fn(v, **kwargs) * ct).sum())(jnp.asarray(x))
    assert_close(g, tx.grad, rtol, atol)


PADS = [
    ("constant", (2, 1), 4),
    ("constant", (1, 0, -1, 2, 0, 3), 4),
    ("constant", (1, 1, 1, 1, 1, 1, 1, 1), 4),
    ("constant", (-1, -2), 3),
    ("reflect", (2, 3), 3),
    ("reflect", (2, 0, 1, 3), 4),
    ("reflect", (1, 2, 2, 1, 1, 1), 5),
    ("reflect", (-1, 2), 2),
    ("replicate", (3, 1), 2),
    ("replicate", (2, 5, 0, 1), 3),
    ("replicate", (1, 2, 0, 1, 2, 2), 4),
    ("circular", (2, 4), 3),
    ("circular", (4, 1, 2, 2), 4),
    ("circular", (-1, 2, 1, 0, 3, 3), 5),
]


@pytest.mark.parametrize("mode, pad, ndim", PADS)
def test_pad(mode, pad, ndim):
    x = randn(*(2, 3, 4, 5, 6)[-ndim:], seed=ndim)
    _check(
        lambda v, **kw: F.pad(v, pad, mode, **kw), lambda v, **kw: TF.pad(v, pad, mode, **kw), x, {}
    )


def test_pad_constant_value_and_int_dtype():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = F.pad(jnp.asarray(x), (1, 1), value=7)
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(
        np.asarray(out), TF.pad(torch.from_numpy(x), (1, 1), value=7).numpy()
    )
    assert_close(
        F.pad(randn(2, 2), (0, 1, 1, 0), value=-2.5),
        TF.pad(to_torch(randn(2, 2)), (0, 1, 1, 0), value=-2.5),
    )


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (1, 1, 1)),
            RuntimeError,
            "Padding length must be divisible by 2",
        ),
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (5, 5, 1, 1), mode="reflect"),
            RuntimeError,
            "Padding size should be less than the corresponding input dimension, but got: padding \\(5, 5\\) at "
            "dimension 3 of input \\[1, 4, 5, 5\\]",
        ),
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (6, 5, 1, 1), mode="circular"),
            RuntimeError,
            "Padding value causes wrapping around more than once",
        ),
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (1, 1), mode="reflect"),
            NotImplementedError,
            "Padding size 2 is not supported for 4D input tensor",
        ),
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (1, 1), mode="foo"),
            NotImplementedError,
            "Unrecognised padding mode foo",
        ),
        (
            lambda: F.pad(jnp.ones((1, 4, 5, 5)), (1, 1, 1, 1), mode="reflect", value=1.0),
            RuntimeError,
            'Padding mode "reflect" doesn\'t take in value argument',
        ),
        (
            lambda: F.pad(jnp.ones((4, 5)), (1,) * 6),
            RuntimeError,
            "Padding length should be less than or equal to two times the input dimension",
        ),
    ],
)
def test_pad_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# (input shape, mode, align_corners, size/scale spec): exercises torch's float32 index formulas,
# its copy/double shortcuts (2D nearest, linear), recompute_scale_factor and the bicubic borders.
INTERP = [
    ((2, 3, 5), "nearest", None, dict(size=8)),
    ((2, 3, 5), "nearest", None, dict(scale_factor=1.3)),
    ((2, 3, 5), "nearest", None, dict(scale_factor=0.7, recompute_scale_factor=True)),
    ((1, 2, 3, 5), "nearest", None, dict(scale_factor=(2.1, 1.3))),
    ((1, 2, 3, 5), "nearest-exact", None, dict(scale_factor=(2.1, 0.6))),
    ((1, 2, 2, 3, 4), "nearest", None, dict(size=(3, 6, 3))),
    ((2, 3, 5), "linear", False, dict(scale_factor=2.5)),
    ((2, 3, 5), "linear", True, dict(size=9)),
    ((2, 3, 5), "linear", False, dict(scale_factor=1.1)),
    ((1, 2, 4, 5), "bilinear", False, dict(size=(7, 3))),
    ((1, 2, 4, 5), "bilinear", True, dict(scale_factor=(1.5, 2))),
    ((1, 2, 4, 5), "bilinear", True, dict(size=(1, 3))),
    ((1, 2, 4, 5), "bicubic", False, dict(size=(9, 7))),
    ((1, 2, 4, 5), "bicubic", True, dict(scale_factor=(0.6, 1.7))),
    ((1, 2, 4, 5), "bicubic", False, dict(scale_factor=3, recompute_scale_factor=True)),
    ((1, 2, 2, 3, 4), "trilinear", False, dict(scale_factor=(2, 1.5, 0.75))),
    ((1, 2, 2, 3, 4), "trilinear", True, dict(size=(3, 5, 2))),
    ((2, 3, 7), "area", None, dict(size=3)),
    ((1, 2, 7, 6), "area", None, dict(scale_factor=0.5)),
    ((1, 2, 3, 4, 5), "area", None, dict(size=(2, 2, 3))),
]


@pytest.mark.parametrize("shape, mode, align_corners, spec", INTERP)
def test_interpolate(shape, mode, align_corners, spec):
    _check(
        F.interpolate,
        TF.interpolate,
        randn(*shape, seed=3),
        dict(mode=mode, align_corners=align_corners, **spec),
    )


@pytest.mark.parametrize(
    "mode, align_corners, spec",
    [
        ("bilinear", False, dict(size=(3, 4))),
        ("bilinear", True, dict(scale_factor=(0.5, 1.7))),
        ("bicubic", False, dict(scale_factor=0.3)),
        ("bicubic", True, dict(size=(16, 5))),
    ],
)
def test_interpolate_antialias(mode, align_corners, spec):
    _check(
        F.interpolate,
        TF.interpolate,
        randn(2, 3, 10, 8, seed=6),
        dict(mode=mode, align_corners=align_corners, antialias=True, **spec),
    )


def test_interpolate_many_sizes_forward():
    """A sweep of sizes and scales (forward only, one trace each, small arrays)."""
    x = randn(1, 1, 5, 3, seed=4)
    for mode, ac in [
        ("nearest", None),
        ("nearest-exact", None),
        ("bilinear", False),
        ("bilinear", True),
        ("bicubic", False),
    ]:
        for out in itertools.product((1, 2, 4, 6, 10), (1, 3, 7)):
            kw = dict(size=out, mode=mode, align_corners=ac)
            assert_close(F.interpolate(x, **kw), TF.interpolate(to_torch(x), **kw), atol=1e-5)


def test_interpolate_half_precision_and_jit():
    x = randn(1, 2, 4, 4, seed=5)
    out = jax.jit(lambda v: F.interpolate(v, scale_factor=2, mode="bilinear"))(
        jnp.asarray(x, jnp.bfloat16)
    )
    expected = TF.interpolate(to_torch(x).bfloat16(), scale_factor=2, mode="bilinear")
    assert out.dtype == jnp.bfloat16
    assert_close(out, expected, rtol=1e-2, atol=1e-2)  # bfloat16 rounding of the result


def test_upsample_aliases_warn():
    x = randn(1, 1, 3, 3)
    with pytest.warns(UserWarning, match="upsample_bilinear` is deprecated"):
        out = F.upsample_bilinear(x, scale_factor=2)
    assert_close(
        out, TF.interpolate(to_torch(x), scale_factor=2, mode="bilinear", align_corners=True)
    )
    with pytest.warns(UserWarning, match="upsample` is deprecated"):
        F.upsample(x, size=4)
    with pytest.warns(UserWarning, match="upsample_nearest` is deprecated"):
        F.upsample_nearest(x, size=4)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, scale_factor=2),
            ValueError,
            "only one of size or scale_factor should be defined",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4))),
            ValueError,
            "either size or scale_factor should be defined",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, align_corners=True),
            ValueError,
            "align_corners option can only be set with the interpolating modes",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, mode="linear"),
            NotImplementedError,
            "Got 4D input, but linear mode needs 3D input",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, mode="foo"),
            NotImplementedError,
            "Input Error: Only 3D, 4D and 5D input Tensors supported \\(got 4D\\)",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=(3, 3, 3)),
            ValueError,
            "Input and output must have the same number of spatial dimensions",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4)), size=3, mode="linear", antialias=True),
            ValueError,
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, mode="lanczos", antialias=True),
            NotImplementedError,
            "`mode='lanczos'` is not implemented",
        ),
        (
            lambda: F.interpolate(jnp.ones((1, 1, 4, 4)), size=3, recompute_scale_factor=True),
            ValueError,
            "recompute_scale_factor is not meaningful with an explicit size",
        ),
    ],
)
def test_interpolate_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("shape, r", [((2, 8, 3, 3), 2), ((3, 2, 9, 2, 2), 3), ((18, 1, 2), 3)])
def test_pixel_shuffle_roundtrip(shape, r):
    x = randn(*shape, seed=1)
    _check(lambda v: F.pixel_shuffle(v, r), lambda v: TF.pixel_shuffle(v, r), x, {})
    y = np.asarray(TF.pixel_shuffle(to_torch(x), r))
    _check(lambda v: F.pixel_unshuffle(v, r), lambda v: TF.pixel_unshuffle(v, r), y, {})


@pytest.mark.parametrize("shape, g", [((2, 6, 3, 3), 2), ((2, 6, 4), 3), ((1, 8, 2, 2, 2), 4)])
def test_channel_shuffle(shape, g):
    x = randn(*shape, seed=1)
    _check(lambda v: F.channel_shuffle(v, g), lambda v: TF.channel_shuffle(v, g), x, {})
    assert_close(F.native_channel_shuffle(x, g), TF.native_channel_shuffle(to_torch(x), g))


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.pixel_shuffle(jnp.ones((2, 5, 3, 3)), 2),
            "input.size\\(-3\\)=5 is not divisible by 4",
        ),
        (lambda: F.pixel_shuffle(jnp.ones((5, 3)), 2), "at least 3 dimensions"),
        (
            lambda: F.pixel_unshuffle(jnp.ones((2, 5, 3, 4)), 2),
            "input.size\\(-2\\)=3 is not divisible by 2",
        ),
        (lambda: F.channel_shuffle(jnp.ones((2, 5, 3, 3)), 2), "Got 5 channels and 2 groups"),
        (
            lambda: F.channel_shuffle(jnp.ones((2, 6)), 2),
            "channel_shuffle expects input with > 2 dims",
        ),
    ],
)
def test_shuffle_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


@pytest.mark.parametrize(
    "size, theta_shape, align_corners",
    [
        ((2, 3, 4, 5), (2, 2, 3), False),
        ((2, 3, 4, 5), (2, 2, 3), True),
        ((1, 2, 3, 4, 5), (1, 3, 4), False),
    ],
)
def test_affine_grid(size, theta_shape, align_corners):
    theta = randn(*theta_shape, seed=1)
    _check(
        lambda t: F.affine_grid(t, size, align_corners=align_corners),
        lambda t: TF.affine_grid(t, size, align_corners=align_corners),
        theta,
        {},
    )


GRID_CASES = [
    (2, "bilinear", "zeros", False),
    (2, "bilinear", "border", True),
    (2, "nearest", "reflection", True),
    (2, "bicubic", "zeros", False),
    (2, "bicubic", "reflection", True),
    (3, "bilinear", "reflection", False),
    (3, "nearest", "border", False),
]


@pytest.mark.parametrize("nd, mode, padding_mode, align_corners", GRID_CASES)
def test_grid_sample(nd, mode, padding_mode, align_corners):
    x = randn(2, 3, *((5, 6) if nd == 2 else (3, 4, 5)), seed=1)
    grid = randn(2, *((4, 7) if nd == 2 else (2, 3, 4)), nd, seed=2) * 1.3  # some points outside
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    tx, tg = to_torch(x, requires_grad=True), to_torch(grid, requires_grad=True)
    t_out = TF.grid_sample(tx, tg, **kw)
    ct = randn(*t_out.shape, seed=3)
    (t_out * to_torch(ct)).sum().backward()
    assert_close(F.grid_sample(x, grid, **kw), t_out, atol=1e-5)
    gx, gg = jax.grad(lambda a, b: (F.grid_sample(a, b, **kw) * ct).sum(), argnums=(0, 1))(
        jnp.asarray(x), jnp.asarray(grid)
    )
    assert_close(gx, tx.grad, atol=1e-5)
    # the grid gradient sums 4-16 cancelling terms per point: float32 rounding in either library
    # is ~1e-5 away from a float64 reference, so compare at that level
    assert_close(gg, tg.grad, rtol=1e-4, atol=5e-5)


def test_spatial_transformer_pipeline_jit_and_identity():
    x = randn(2, 3, 5, 6, seed=4)
    identity = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (2, 1, 1))

    @jax.jit
    def warp(v, theta):
        grid = F.affine_grid(theta, v.shape, align_corners=False)
        return F.grid_sample(v, grid, align_corners=False)

    assert_close(warp(x, identity), x, atol=1e-5)  # the identity transform samples pixel centres


def test_grid_sample_warns_and_errors():
    x, grid = jnp.ones((1, 1, 3, 3)), jnp.zeros((1, 2, 2, 2))
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.grid_sample(x, grid)
    with pytest.raises(ValueError, match="expected mode to be 'bilinear', 'nearest' or 'bicubic'"):
        F.grid_sample(x, grid, mode="area", align_corners=False)
    with pytest.raises(
        ValueError, match="expected padding_mode to be 'zeros', 'border', or 'reflection'"
    ):
        F.grid_sample(x, grid, padding_mode="wrap", align_corners=False)
    with pytest.raises(RuntimeError, match="bicubic interpolation only supports 4D input"):
        F.grid_sample(
            jnp.ones((1, 1, 2, 2, 2)),
            jnp.zeros((1, 1, 1, 1, 3)),
            mode="bicubic",
            align_corners=False,
        )
    with pytest.raises(ValueError, match="Expected a batch of 2D affine matrices of shape Nx2x3"):
        F.affine_grid(jnp.zeros((1, 3, 4)), (1, 1, 2, 2), align_corners=False)
