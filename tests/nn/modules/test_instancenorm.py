"""Differential tests of InstanceNorm1d/2d/3d and their lazy forms against torch 2.13."""

from collections import OrderedDict

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
    to_torch,
)
from tests.helpers import randomize_torch_module as randomize

GRAD_TOL = dict(rtol=1e-4, atol=1e-5)  # the backward sums over the spatial dims


CASES = [
    (nn.InstanceNorm1d, torch.nn.InstanceNorm1d, (2, 3, 5)),
    (nn.InstanceNorm1d, torch.nn.InstanceNorm1d, (3, 5)),
    (nn.InstanceNorm2d, torch.nn.InstanceNorm2d, (2, 3, 2, 3)),
    (nn.InstanceNorm2d, torch.nn.InstanceNorm2d, (3, 2, 3)),
    (nn.InstanceNorm3d, torch.nn.InstanceNorm3d, (2, 3, 2, 2, 2)),
]
CONFIGS = [
    dict(),
    dict(affine=True),
    dict(track_running_stats=True, momentum=0.3),
    dict(affine=True, bias=False, track_running_stats=True),
]


@pytest.mark.parametrize("jcls, tcls, shape", CASES)
@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_grads_match_torch(jcls, tcls, shape, kwargs, training):
    tm, jm = randomize(tcls(3, **kwargs)), jcls(3, **kwargs)
    jm.load_state_dict(tm.state_dict())
    jm.train(training)
    tm.train(training)
    assert_forward_and_grads_match(jm, tm, randn(*shape), grad_tol=GRAD_TOL)


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 4)])
def test_running_stats_after_several_steps_match_torch(shape):
    tm = randomize(torch.nn.InstanceNorm1d(3, track_running_stats=True, momentum=0.2))
    jm = nn.InstanceNorm1d(3, track_running_stats=True, momentum=0.2)
    jm.load_state_dict(tm.state_dict())
    for step in range(3):
        x = randn(*shape, seed=step) * (step + 1) + step
        assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)
    assert int(jm.num_batches_tracked) == int(tm.num_batches_tracked) == 0  # torch leaves it


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_state_dict_and_repr_match_torch(kwargs):
    tm, jm = torch.nn.InstanceNorm2d(4, **kwargs), nn.InstanceNorm2d(4, **kwargs)
    assert repr(jm) == repr(tm)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())


def test_errors_and_warning():
    with pytest.raises(ValueError, match="expected 2D or 3D input \\(got 4D input\\)"):
        nn.InstanceNorm1d(3)(jnp.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="expected 3D or 4D input \\(got 2D input\\)"):
        nn.InstanceNorm2d(3)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="expected 4D or 5D input \\(got 3D input\\)"):
        nn.InstanceNorm3d(3)(jnp.ones((2, 3, 4)))
    with pytest.raises(
        ValueError,
        match="expected input's size at dim=1 to match num_features \\(3\\), but got: 4.",
    ):
        nn.InstanceNorm1d(3, affine=True)(jnp.ones((2, 4, 5)))
    with pytest.warns(UserWarning, match="input's size at dim=1 does not match num_features"):
        nn.InstanceNorm1d(3)(jnp.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="Expected more than 1 spatial element when training"):
        nn.InstanceNorm1d(3)(jnp.ones((2, 3, 1)))


def test_old_checkpoint_with_running_stats_is_reported():
    jm = nn.InstanceNorm1d(3)
    sd = OrderedDict(running_mean=torch.zeros(3), running_var=torch.ones(3))
    sd._metadata = OrderedDict({"": {}})  # no version: saved before 0.4
    with pytest.raises(
        RuntimeError,
        match='Unexpected running stats buffer\\(s\\) "running_mean" and '
        '"running_var" for InstanceNorm1d',
    ):
        jm.load_state_dict(sd)
    tm = torch.nn.InstanceNorm1d(3)
    with pytest.raises(RuntimeError, match="Unexpected running stats buffer"):
        tm.load_state_dict(sd)


@pytest.mark.parametrize(
    "jcls, tcls, shape",
    [
        (nn.LazyInstanceNorm1d, torch.nn.LazyInstanceNorm1d, (2, 3, 4)),
        (nn.LazyInstanceNorm2d, torch.nn.LazyInstanceNorm2d, (2, 3, 2, 2)),
        (nn.LazyInstanceNorm3d, torch.nn.LazyInstanceNorm3d, (2, 3, 2, 2, 2)),
    ],
)
def test_lazy_instance_norm_materialises_like_torch(jcls, tcls, shape):
    jm, tm = jcls(), tcls()
    assert repr(jm) == repr(tm)
    x = randn(*shape)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert type(jm).__name__ == type(tm).__name__ and repr(jm) == repr(tm)
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)


def test_lazy_instance_norm_accepts_unbatched_input():
    # torch reads num_features from dim 1 even for an unbatched (C, L) input and then fails;
    # here the channel dim of an unbatched input (dim 0) is used.
    jm = nn.LazyInstanceNorm1d()
    x = randn(3, 5)
    out = jm(jnp.asarray(x))
    assert jm.num_features == 3
    assert_close(out, torch.nn.InstanceNorm1d(3)(to_torch(x)))


def test_under_jit_and_vmap():
    jm = nn.InstanceNorm2d(3, affine=True)
    x = jnp.asarray(randn(2, 3, 4, 4))
    assert_close(jax.jit(lambda m, v: m(v))(jm, x), jm(x))
    assert_close(jax.vmap(jm)(x), jm(x))  # unbatched (C, H, W) slices
