"""Differential tests of BatchNorm1d/2d/3d, LazyBatchNorm*d and SyncBatchNorm against torch 2.13."""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
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

GRAD_TOL = dict(rtol=1e-4, atol=1e-5)  # batch-norm backward sums over the batch


def compare(jm, tm, x, training, rtol=1e-5, atol=1e-6):
    """Forward and gradients (input and every parameter) of jm vs tm on x."""
    jm.train(training)
    tm.train(training)
    assert_forward_and_grads_match(jm, tm, x, rtol, atol, GRAD_TOL)


CASES = [
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3)),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 2, 3)),
    (nn.BatchNorm3d, torch.nn.BatchNorm3d, (2, 3, 2, 2, 3)),
]
CONFIGS = [
    dict(),
    dict(affine=False),
    dict(bias=False),
    dict(track_running_stats=False),
    dict(momentum=None, eps=1e-3),
]


@pytest.mark.parametrize("jcls, tcls, shape", CASES)
@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_grads_match_torch(jcls, tcls, shape, kwargs, training):
    tm = randomize(tcls(3, **kwargs))
    jm = jcls(3, **kwargs)
    jm.load_state_dict(tm.state_dict())
    compare(jm, tm, randn(*shape), training)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_state_dict_keys_shapes_and_repr_match_torch(kwargs):
    tm, jm = torch.nn.BatchNorm2d(5, **kwargs), nn.BatchNorm2d(5, **kwargs)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert repr(jm) == repr(tm)
    for v, tv in zip(jm.state_dict().values(), tm.state_dict().values()):
        assert_close(v, tv)  # the initial values (ones, zeros, 0 batches)


def test_num_batches_tracked_dtype():
    nbt = nn.BatchNorm1d(2).num_batches_tracked
    # torch.long; int32 while JAX's x64 mode is off (documented in batchnorm.py).
    assert nbt.dtype == (jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    assert nbt.shape == ()


@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
def test_running_stats_after_several_steps_match_torch(momentum):
    tm = randomize(torch.nn.BatchNorm2d(3, momentum=momentum))
    jm = nn.BatchNorm2d(3, momentum=momentum)
    jm.load_state_dict(tm.state_dict())
    for step in range(4):
        x = randn(4, 3, 2, 2, seed=step) * (step + 1) + step
        assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)
    assert int(jm.num_batches_tracked) == int(tm.num_batches_tracked) == 4
    jm.eval()
    tm.eval()
    x = randn(4, 3, 2, 2, seed=9)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))  # eval uses the running statistics
    assert int(jm.num_batches_tracked) == 4


def test_buffers_are_replaced_in_their_cells_not_reregistered():
    jm = nn.BatchNorm1d(3)
    cells = [jm._buffers[n] for n in ("running_mean", "running_var", "num_batches_tracked")]
    jm(jnp.asarray(randn(4, 3)))
    assert [jm._buffers[n] for n in ("running_mean", "running_var", "num_batches_tracked")] == cells
    assert int(cells[2]) == 1


def test_track_running_stats_false_uses_batch_stats_in_eval():
    jm = nn.BatchNorm1d(3, track_running_stats=False).eval()
    tm = torch.nn.BatchNorm1d(3, track_running_stats=False).eval()
    x = randn(5, 3)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert jm.running_mean is None and jm.num_batches_tracked is None
    assert list(jm.state_dict()) == ["weight", "bias"]


def test_stateful_update_under_jit_returns_the_updated_module():
    # A plain jax.jit sees a copy of the module: the updated state comes back in the output.
    step = jax.jit(lambda m, x: (m(x), m))
    jm = nn.BatchNorm1d(3, momentum=None)
    eager = nn.BatchNorm1d(3, momentum=None)
    for i in range(3):
        x = jnp.asarray(randn(4, 3, seed=i) + i)
        out, jm = step(jm, x)
        assert_close(out, eager(x))
    assert_close(jm.running_mean, eager.running_mean)
    assert_close(jm.running_var, eager.running_var)
    assert int(jm.num_batches_tracked) == int(eager.num_batches_tracked) == 3


def test_eval_mode_under_jit_and_vmap():
    jm = nn.BatchNorm1d(3)
    jm.load_state_dict(randomize(torch.nn.BatchNorm1d(3)).state_dict())
    jm.eval()
    x = jnp.asarray(randn(2, 4, 3))
    per_slice = jnp.stack([jm(x[0]), jm(x[1])])
    assert_close(jax.vmap(jm)(x), per_slice)
    assert_close(jax.jit(lambda m, v: m(v))(jm, x[0]), per_slice[0])


def test_jaxmodule_grad_matches_torch_backward_and_updates_buffers():
    # jaxmodule.grad runs the forward once, like torch's forward + backward: the gradients and
    # the running-statistics update both match.
    tm = randomize(torch.nn.BatchNorm1d(3, momentum=None))
    jm = nn.BatchNorm1d(3, momentum=None)
    jm.load_state_dict(tm.state_dict())
    x = randn(5, 3)
    g = jaxmodule.grad(lambda m, v: (m(v) ** 3).sum())(jm, jnp.asarray(x))
    (tm(to_torch(x)) ** 3).sum().backward()
    assert_close(g.weight, tm.weight.grad, **GRAD_TOL)
    assert_close(g.bias, tm.bias.grad, **GRAD_TOL)
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)
    assert int(jm.num_batches_tracked) == 1
    # A plain jax.grad over the module sees the integer counter as an input: it needs allow_int.
    jg = jax.grad(lambda m, v: (m(v) ** 3).sum(), allow_int=True)(jm, jnp.asarray(x))
    assert jg.weight.shape == (3,)


def test_load_old_checkpoint_without_num_batches_tracked():
    jm = nn.BatchNorm1d(3)
    jm(jnp.asarray(randn(4, 3)))
    sd = OrderedDict(
        (k, v)
        for k, v in torch.nn.BatchNorm1d(3).state_dict().items()
        if k != "num_batches_tracked"
    )
    sd._metadata = OrderedDict({"": {"version": 1}})
    jm.load_state_dict(sd)  # version < 2: the missing counter is filled from the module
    assert int(jm.num_batches_tracked) == 1
    sd._metadata = OrderedDict({"": {"version": 2}})
    with pytest.raises(
        RuntimeError, match='Missing key\\(s\\) in state_dict: "num_batches_tracked"'
    ):
        jm.load_state_dict(sd)


def test_load_torch_counter_and_reset():
    tm = torch.nn.BatchNorm1d(3)
    for i in range(3):
        tm(to_torch(randn(4, 3, seed=i)))
    jm = nn.BatchNorm1d(3)
    jm.load_state_dict(tm.state_dict())
    assert int(jm.num_batches_tracked) == 3
    jm.reset_running_stats()
    assert int(jm.num_batches_tracked) == 0
    assert_close(jm.running_mean, np.zeros(3))
    assert_close(jm.running_var, np.ones(3))


@pytest.mark.parametrize(
    "cls, bad, text",
    [
        (nn.BatchNorm1d, (2, 3, 4, 5), "expected 2D or 3D input \\(got 4D input\\)"),
        (nn.BatchNorm2d, (2, 3, 4), "expected 4D input \\(got 3D input\\)"),
        (nn.BatchNorm3d, (2, 3, 4, 4), "expected 5D input \\(got 4D input\\)"),
        (nn.SyncBatchNorm, (3,), "expected at least 2D input \\(got 1D input\\)"),
    ],
)
def test_input_dim_errors(cls, bad, text):
    with pytest.raises(ValueError, match=text):
        cls(3)(jnp.ones(bad))


def test_batch_of_one_raises_in_training_only():
    jm = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        jm(jnp.ones((1, 3)))
    assert jm.eval()(jnp.ones((1, 3))).shape == (1, 3)


def test_dtype_factory_kwarg():
    jm = nn.BatchNorm1d(3, dtype=jnp.bfloat16)
    assert jm.weight.dtype == jnp.bfloat16 and jm.running_mean.dtype == jnp.bfloat16
    out = jm(jnp.asarray(randn(4, 3), jnp.bfloat16))
    assert out.dtype == jnp.bfloat16 and jm.running_mean.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "jcls, tcls, shape",
    [
        (nn.LazyBatchNorm1d, torch.nn.LazyBatchNorm1d, (4, 3)),
        (nn.LazyBatchNorm2d, torch.nn.LazyBatchNorm2d, (4, 3, 2, 2)),
        (nn.LazyBatchNorm3d, torch.nn.LazyBatchNorm3d, (2, 3, 2, 2, 2)),
    ],
)
def test_lazy_batch_norm_materialises_like_torch(jcls, tcls, shape):
    jm, tm = jcls(), tcls()
    assert repr(jm) == repr(tm)
    x = randn(*shape)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert type(jm).__name__ == type(tm).__name__
    assert repr(jm) == repr(tm)
    assert state_dict_shapes(jm.state_dict()) == state_dict_shapes(tm.state_dict())
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)


def test_sync_batch_norm_behaves_as_batch_norm():
    tm = randomize(torch.nn.SyncBatchNorm(3))
    jm = nn.SyncBatchNorm(3)
    assert repr(jm) == repr(tm)
    jm.load_state_dict(tm.state_dict())
    # torch's SyncBatchNorm falls back to batch_norm without a process group, as on one device.
    compare(jm, tm, randn(4, 3, 5), True)  # jax.vjp runs a copy: jm's own state is unchanged
    jm.load_state_dict(tm.state_dict())
    x = randn(4, 3, 5, seed=2)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert_close(jm.running_mean, tm.running_mean)
    assert_close(jm.running_var, tm.running_var)
    with pytest.raises(
        ValueError, match="SyncBatchNorm number of input channels should be non-zero"
    ):
        jm(jnp.ones((2, 0, 3)))


def test_convert_sync_batchnorm_shares_state():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, momentum=0.3))
    bn = model[1]
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    sync = converted[1]
    assert isinstance(sync, nn.SyncBatchNorm)
    assert sync.weight is bn.weight and sync._buffers["running_mean"] is bn._buffers["running_mean"]
    assert sync.momentum == 0.3
    assert list(converted.state_dict()) == list(model.state_dict())


def test_lazy_batch_norm_loads_a_state_dict_before_its_first_call():
    tm = randomize(torch.nn.BatchNorm2d(3))
    jm = nn.LazyBatchNorm2d()
    jm.load_state_dict(tm.state_dict())
    x = randn(2, 3, 2, 2)
    assert_close(jm(jnp.asarray(x)), tm(to_torch(x)))
    assert type(jm) is nn.BatchNorm2d
    assert_close(jm.running_mean, tm.running_mean)
