"""Tests of the dropout layers: torch's repr and errors, eval identity, training statistics."""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import randn

LAYERS = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]
SHAPES = {"Dropout1d": (40, 50, 3), "Dropout3d": (20, 50, 2, 2, 2)}


def x_for(name):
    return jnp.asarray(randn(*SHAPES.get(name, (40, 50, 2, 2))))


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("kwargs", [dict(), dict(p=0.2, inplace=True)])
def test_repr_and_empty_state_match_torch(name, kwargs):
    jm, tm = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(jm) == repr(tm)
    assert list(jm.state_dict()) == [] and list(jm.parameters()) == []


@pytest.mark.parametrize("name", LAYERS)
def test_eval_is_identity(name):
    m = getattr(nn, name)(0.5).eval()
    x = x_for(name)
    assert m(x) is x
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda mod, v: mod(v))(m, x)), np.asarray(x))


@pytest.mark.parametrize("name", LAYERS)
def test_training_drops_about_p(name):
    m = getattr(nn, name)(0.3)
    x = x_for(name)
    out = np.asarray(m(x))
    if "Alpha" in name:
        # Dropped elements take one negative value (alpha dropout's image of SELU's saturation).
        level = np.unique(np.asarray(nn.functional.alpha_dropout(jnp.zeros(64), 0.3, True))).min()
        dropped = out == level
    else:
        dropped = out == 0
    if name in ("Dropout", "AlphaDropout"):
        assert abs(dropped.mean() - 0.3) < 0.02
        if name == "AlphaDropout":
            assert abs(out.mean()) < 0.02 and abs(out.var() - 1) < 0.05
    else:  # whole channels: 2000 channels, std of the fraction ~ 0.01
        chan = dropped.reshape(out.shape[0], out.shape[1], -1)
        assert np.all(chan == chan[..., :1])
        assert abs(chan[..., 0].mean() - 0.3) < 0.05


def test_masks_follow_the_global_seed():
    m = nn.Dropout(0.5)
    x = jnp.ones((32, 32))
    jaxmodule.manual_seed(11)
    a = np.asarray(m(x))
    b = np.asarray(m(x))
    jaxmodule.manual_seed(11)
    np.testing.assert_array_equal(np.asarray(m(x)), a)
    assert (a != b).any()


def test_scaling_matches_torch():
    out = np.asarray(nn.Dropout(0.25)(jnp.ones((64, 64))))
    tout = torch.nn.Dropout(0.25)(torch.ones(64, 64)).numpy()
    np.testing.assert_array_equal(np.unique(out), np.unique(tout))


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("p", [-0.5, 1.2])
def test_invalid_p(name, p):
    with pytest.raises(
        ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"
    ):
        getattr(nn, name)(p)


def test_grad_through_dropout_module():
    m = nn.Dropout(0.5)
    x = jnp.asarray(randn(16, 16)) + 5.0
    jaxmodule.manual_seed(4)
    g = jax.grad(lambda v: m(v).sum())(x)
    jaxmodule.manual_seed(4)
    out = m(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(out / x), rtol=1e-6)
