"""Tests of jaxmodule.nn.functional dropout functions.

Random masks cannot match torch's bit for bit, so these tests check what torch guarantees: the
drop fraction, the scaling of kept elements (compared with torch's value), channel-wise masks,
alpha dropout's mean/variance preservation and its two output levels, eval identity, errors.
"""

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from tests.helpers import assert_close, randn, to_numpy

# Binomial fractions over >= 20000 draws have std <= 0.0036; 0.02 is > 5 std.
FRACTION_TOL = 0.02


def gen(seed):
    return jaxmodule.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_fraction_and_scale_match_torch(p):
    x = jnp.ones((200, 100))
    out = np.asarray(F.dropout(x, p))
    dropped = out == 0
    assert abs(dropped.mean() - p) < FRACTION_TOL
    tout = TF.dropout(torch.ones(200, 100), p).numpy()
    kept_value = tout[tout != 0][0]  # torch's 1 * (1 / (1 - p)) in float32
    np.testing.assert_array_equal(out[~dropped], kept_value)


def test_dropout_values_are_input_times_mask_over_keep_prob():
    x = randn(50, 40)
    out = np.asarray(F.dropout(jnp.asarray(x), 0.3))
    kept = out != 0
    assert_close(out[kept], x[kept] * np.float32(1 / 0.7))


@pytest.mark.parametrize(
    "fn",
    [F.dropout, F.alpha_dropout, F.feature_alpha_dropout, F.dropout1d, F.dropout2d, F.dropout3d],
)
def test_eval_and_p0_are_identity_and_draw_no_key(fn):
    shape = {F.dropout1d: (2, 3, 4), F.dropout3d: (2, 3, 4, 5, 2)}.get(fn, (2, 3, 4, 5))
    x = jnp.asarray(randn(*shape))
    state = np.asarray(jaxmodule.get_rng_state())
    assert fn(x, 0.5, training=False) is x
    assert fn(x, 0.0, training=True) is x
    np.testing.assert_array_equal(np.asarray(jaxmodule.get_rng_state()), state)


@pytest.mark.parametrize("fn", [F.dropout, F.alpha_dropout, F.feature_alpha_dropout])
def test_p1_zeroes_like_torch_and_nan_propagates(fn):
    x = np.array([[1.0, -2.0], [np.nan, 3.0]], np.float32)
    tfn = getattr(TF, fn.__name__)
    np.testing.assert_array_equal(
        np.asarray(fn(jnp.asarray(x), 1.0, training=True)),
        tfn(torch.from_numpy(x), 1.0, training=True).numpy(),
    )


def test_torch_defaults_training_flags():
    x = jnp.ones((4, 4))
    assert F.alpha_dropout(x, 0.5) is x  # torch's default training=False
    assert F.feature_alpha_dropout(x, 0.5) is x
    assert (np.asarray(F.dropout(x, 0.5)) == 0).any()  # default training=True


def test_generator_controls_the_mask():
    x = jnp.ones((64, 64))
    a = F.dropout(x, 0.5, generator=gen(1))
    b = F.dropout(x, 0.5, generator=gen(1))
    c = F.dropout(x, 0.5, generator=gen(2))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (np.asarray(a) != np.asarray(c)).any()
    jaxmodule.manual_seed(3)
    d = F.dropout(x, 0.5)
    jaxmodule.manual_seed(3)
    np.testing.assert_array_equal(np.asarray(F.dropout(x, 0.5)), np.asarray(d))
    assert (np.asarray(F.dropout(x, 0.5)) != np.asarray(d)).any()  # the generator advanced


def test_dropout_gradient_is_the_scaled_mask():
    x = jnp.asarray(randn(8, 9)) + 5.0  # keep x away from 0
    g = jax.grad(lambda v: F.dropout(v, 0.4, generator=gen(5)).sum())(x)
    out = F.dropout(x, 0.4, generator=gen(5))
    assert_close(g, out / x)


def _channel_constant(out):
    """Every (n, c) slice of out is all zero or all non-zero."""
    kept = np.asarray(out) != 0
    flat = kept.reshape(kept.shape[0], kept.shape[1], -1)
    return np.all(flat == flat[..., :1])


@pytest.mark.parametrize(
    "fn, shape",
    [(F.dropout1d, (40, 50, 3)), (F.dropout2d, (40, 50, 2, 2)), (F.dropout3d, (40, 50, 2, 1, 2))],
)
def test_channel_dropout_masks_whole_channels(fn, shape):
    x = jnp.asarray(np.abs(randn(*shape)) + 0.5)
    out = fn(x, 0.3)
    assert _channel_constant(out)
    dropped = np.asarray(out).reshape(shape[0], shape[1], -1)[..., 0] == 0
    assert abs(dropped.mean() - 0.3) < 0.05  # 2000 channels: std ~ 0.01
    kept = np.asarray(out)[np.asarray(out) != 0]
    assert_close(kept, np.asarray(x)[np.asarray(out) != 0] / 0.7)


@pytest.mark.parametrize("fn, shape", [(F.dropout1d, (30, 4)), (F.dropout3d, (30, 2, 2, 2))])
def test_unbatched_channel_dropout_masks_each_channel(fn, shape):
    x = jnp.ones(shape)
    out = np.asarray(fn(x, 0.5)).reshape(shape[0], -1)
    assert np.all(out == out[:, :1])
    assert 0 < (out[:, 0] == 0).sum() < shape[0]


def test_dropout2d_3d_input_warns_and_drops_n_c_like_torch():
    x = jnp.ones((20, 30, 4))
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        out = np.asarray(F.dropout2d(x, 0.5))
    assert np.all(out == out[..., :1])
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        F.dropout2d(jnp.ones((3, 4)), 0.5)
    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        out3 = np.asarray(F.dropout3d(jnp.ones((30, 4, 4)), 0.5))
    assert np.all(out3.reshape(30, -1) == out3.reshape(30, -1)[:, :1])  # unbatched: (C, ...)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_preserves_mean_and_variance(p):
    x = jnp.asarray(randn(400, 250))
    out = np.asarray(F.alpha_dropout(x, p, training=True))
    assert abs(out.mean()) < 0.02
    assert abs(out.var() - 1.0) < 0.03


@pytest.mark.parametrize("fn", [F.alpha_dropout, F.feature_alpha_dropout])
def test_alpha_dropout_levels_match_torch(fn):
    # On a zero input the output is +b (kept) or the dropped level; both must equal torch's.
    x = np.zeros((100, 80, 2), np.float32)
    out = np.unique(np.asarray(fn(jnp.asarray(x), 0.3, training=True)))
    tout = np.unique(getattr(TF, fn.__name__)(torch.from_numpy(x), 0.3, training=True).numpy())
    assert len(out) == 2
    assert_close(out, tout)


def test_feature_alpha_dropout_is_channel_wise():
    x = jnp.zeros((40, 50, 3))
    out = np.asarray(F.feature_alpha_dropout(x, 0.5, training=True))
    assert np.all(out == out[..., :1])


@pytest.mark.parametrize(
    "fn",
    [F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout],
)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_invalid_p_raises_value_error(fn, p):
    with pytest.raises(
        ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"
    ):
        fn(jnp.ones((2, 3, 4)), p)


def test_dim_errors():
    with pytest.raises(
        RuntimeError, match="dropout1d: Expected 2D or 3D input, but received a 1D input"
    ):
        F.dropout1d(jnp.ones(3))
    with pytest.raises(
        RuntimeError, match="Feature dropout requires at least 2 dimensions in the input"
    ):
        F.feature_alpha_dropout(jnp.ones(3), 0.5, True)


def test_dtype_is_kept():
    x = jnp.ones((16, 16), jnp.bfloat16)
    assert F.dropout(x, 0.5).dtype == jnp.bfloat16
    assert F.alpha_dropout(x, 0.5, True).dtype == jnp.bfloat16
    assert to_numpy(F.dropout(x, 0.5)).max() == 2.0
