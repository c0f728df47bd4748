"""Differential tests of nn.utils gradient clipping against torch.nn.utils."""

import math

import jax
import jax.numpy as jnp
import jaxmodule
import pytest
import torch
from jaxmodule import nn
from jaxmodule.nn import utils

from tests.helpers import assert_close, randn, to_torch

SHAPES = [(3, 4), (4,), (2, 2, 2)]


def _pair(scale=1.0, with_none=False):
    """Matching lists of torch and jaxmodule parameters holding the same gradients."""
    t_params, j_params = [], []
    for i, shape in enumerate(SHAPES):
        value, grad = randn(*shape, seed=i), randn(*shape, seed=10 + i) * scale
        tp = torch.nn.Parameter(to_torch(value))
        jp = nn.Parameter(jnp.asarray(value))
        if not (with_none and i == 1):
            tp.grad = to_torch(grad)
            jp.grad = jnp.asarray(grad)
        t_params.append(tp)
        j_params.append(jp)
    return t_params, j_params


def _same_grads(t_params, j_params):
    for tp, jp in zip(t_params, j_params):
        if tp.grad is None:
            assert jp.grad is None
        else:
            assert jp.grad.dtype == jnp.float32
            assert_close(jp.grad, tp.grad)


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    t_params, j_params = _pair()
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type=norm_type)
    j_total = utils.clip_grad_norm_(j_params, max_norm, norm_type=norm_type)
    assert isinstance(j_total, jax.Array) and j_total.shape == ()
    assert_close(j_total, t_total)
    _same_grads(t_params, j_params)


def test_clip_grad_norm_skips_missing_grads_and_takes_one_parameter():
    t_params, j_params = _pair(with_none=True)
    assert_close(
        utils.clip_grad_norm_(iter(j_params), 0.1),
        torch.nn.utils.clip_grad_norm_(iter(t_params), 0.1),
    )
    _same_grads(t_params, j_params)
    t_params, j_params = _pair()
    assert_close(
        utils.clip_grad_norm_(j_params[0], 0.2, 1.0),
        torch.nn.utils.clip_grad_norm_(t_params[0], 0.2, 1.0),
    )
    _same_grads(t_params[:1], j_params[:1])


def test_clip_grad_norm_of_a_model_after_jaxmodule_backward():
    t_model = torch.nn.Linear(4, 3)
    j_model = nn.Linear(4, 3)
    j_model.load_state_dict(t_model.state_dict())
    x = randn(5, 4)
    (t_model(to_torch(x)) ** 2).sum().backward()
    grads = jaxmodule.grad(lambda m: (m(jnp.asarray(x)) ** 2).sum())(j_model)
    for name, p in j_model.named_parameters():
        p.grad = getattr(grads, name)
    assert_close(
        utils.clip_grad_norm_(j_model.parameters(), 1.0),
        torch.nn.utils.clip_grad_norm_(t_model.parameters(), 1.0),
        rtol=1e-5,
        atol=1e-5,
    )
    _same_grads(list(t_model.parameters()), list(j_model.parameters()))


def test_empty_inputs():
    assert float(utils.get_total_norm([])) == float(torch.nn.utils.get_total_norm([])) == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        total = utils.clip_grad_norm_((p for p in []), 1.0)
    assert float(total) == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_error_if_nonfinite(bad):
    t_params, j_params = _pair()
    t_params[0].grad[0, 0] = bad
    j_params[0].grad = j_params[0].grad.at[0, 0].set(bad)
    with pytest.raises(RuntimeError) as t_err:
        torch.nn.utils.clip_grad_norm_(t_params, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped") as j_err:
        utils.clip_grad_norm_(j_params, 1.0, error_if_nonfinite=True)
    assert str(j_err.value) == str(t_err.value)
    # Without the flag both scale by the non-finite norm.
    t_total = torch.nn.utils.clip_grad_norm_(t_params, 1.0)
    j_total = utils.clip_grad_norm_(j_params, 1.0)
    assert_close(j_total, t_total)
    _same_grads(t_params, j_params)


def test_error_if_nonfinite_under_tracing_is_refused():
    with pytest.raises(NotImplementedError, match="error_if_nonfinite=True"):
        jax.jit(lambda g: utils.get_total_norm([g], error_if_nonfinite=True))(jnp.ones(3))


def test_clip_grad_norm_is_traceable():
    _, j_params = _pair()
    grads = [p.grad for p in j_params]
    t_params, _ = _pair()
    t_total = torch.nn.utils.clip_grad_norm_(t_params, 0.5)

    @jax.jit
    def step(gs):
        ps = [nn.Parameter(jnp.zeros_like(g)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = g
        total = utils.clip_grad_norm_(ps, 0.5)
        return total, [p.grad for p in ps]

    total, clipped = step(grads)
    assert_close(total, t_total)
    for c, tp in zip(clipped, t_params):
        assert_close(c, tp.grad)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_get_total_norm_and_clip_grads_with_norm(norm_type):
    t_params, j_params = _pair(scale=3.0)
    t_total = torch.nn.utils.get_total_norm([p.grad for p in t_params], norm_type)
    j_total = utils.get_total_norm([p.grad for p in j_params], norm_type)
    assert_close(j_total, t_total)
    torch.nn.utils.clip_grads_with_norm_(t_params, 2.0, t_total)
    utils.clip_grads_with_norm_(j_params, 2.0, j_total)
    _same_grads(t_params, j_params)


def test_gradient_dtype_is_kept():
    p = nn.Parameter(jnp.zeros(4, jnp.bfloat16))
    p.grad = jnp.full(4, 3.0, jnp.bfloat16)
    total = utils.clip_grad_norm_([p], 1.0)
    t = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    t.grad = torch.full((4,), 3.0, dtype=torch.bfloat16)
    t_total = torch.nn.utils.clip_grad_norm_([t], 1.0)
    assert p.grad.dtype == jnp.bfloat16 and total.dtype == jnp.bfloat16
    # bfloat16 has an 8-bit mantissa: compare at its resolution.
    assert_close(total, t_total, rtol=1e-2)
    assert_close(p.grad, t.grad, rtol=1e-2)


@pytest.mark.parametrize("clip_value", [0.3, 2])
def test_clip_grad_value_matches_torch(clip_value):
    t_params, j_params = _pair(with_none=True)
    torch.nn.utils.clip_grad_value_(t_params, clip_value)
    utils.clip_grad_value_(j_params, clip_value)
    _same_grads(t_params, j_params)
    t_params, j_params = _pair()
    torch.nn.utils.clip_grad_value_(t_params[2], clip_value)
    utils.clip_grad_value_(j_params[2], clip_value)
    _same_grads(t_params, j_params)


def test_deprecated_clip_grad_norm_warns():
    _, j_params = _pair()
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        utils.clip_grad_norm(j_params, 1.0)
