"""`jaxmodule.grad`, `value_and_grad` and `backward` against torch autograd."""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.fc2 = nn.Linear(6, 3)
        self.register_buffer("scale", jnp.full((3,), 2.0))
        self.register_buffer("steps", jnp.zeros((), jnp.int32))

    def forward(self, x):
        self.steps = self.steps + 1
        return self.fc2(jnp.tanh(self.fc1(x))) * self.scale


class TNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 6)
        self.fc2 = torch.nn.Linear(6, 3)
        self.register_buffer("scale", torch.full((3,), 2.0))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int32))

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))) * self.scale


def pair(freeze_fc1_bias=False):
    t, j = TNet(), Net()
    j.load_state_dict(t.state_dict())
    if freeze_fc1_bias:
        t.fc1.bias.requires_grad_(False)
        j.fc1.bias.requires_grad_(False)
    return t, j


@pytest.mark.parametrize("freeze", [False, True])
def test_value_and_grad_matches_torch_and_skips_frozen(freeze):
    t, j = pair(freeze)
    x = randn(5, 4)
    tl = (t(torch.tensor(x)) ** 2).sum()
    tl.backward()
    loss, g = jaxmodule.value_and_grad(lambda m, x: (m(x) ** 2).sum())(j, jnp.asarray(x))
    assert_close(loss, tl)
    assert type(g) is Net
    for name, tp in t.named_parameters():
        gp = g.get_parameter(name)
        if tp.grad is None:
            assert gp._value is None
        else:
            assert_close(gp._value, tp.grad)
    assert g.scale._value is None and g.steps._value is None  # buffers are constants
    assert int(j.steps) == 1  # the buffer written inside persists, as a concrete value
    assert not isinstance(j.steps._value, jax.core.Tracer)


def test_grad_argnums_with_plain_arrays_and_has_aux():
    t, j = pair()
    x = randn(2, 4)
    xt = torch.tensor(x, requires_grad=True)
    (t(xt).sum()).backward()
    (gm, gx), aux = jaxmodule.grad(lambda m, x: (m(x).sum(), "aux"), argnums=(0, 1), has_aux=True)(
        j, jnp.asarray(x)
    )
    assert aux == "aux"
    assert_close(gx, xt.grad)
    assert_close(gm.fc2.weight._value, t.fc2.weight.grad)


def test_backward_accumulates_like_torch_until_zero_grad():
    t, j = pair()
    x = randn(3, 4)
    for _ in range(2):
        (t(torch.tensor(x)).sum()).backward()
        jaxmodule.backward(lambda m: m(jnp.asarray(x)).sum(), j)
    for (_, tp), (_, jp) in zip(t.named_parameters(), j.named_parameters()):
        assert_close(jp.grad, tp.grad)
    j.zero_grad()
    assert all(p.grad is None for p in j.parameters())
    j.zero_grad(set_to_none=False)  # no grads: stays None, like torch
    assert all(p.grad is None for p in j.parameters())


def test_backward_inputs_restricts_parameters():
    _, j = pair()
    jaxmodule.backward(lambda m: m(jnp.ones((1, 4))).sum(), j, inputs=[j.fc2.weight])
    assert j.fc2.weight.grad is not None
    assert j.fc1.weight.grad is None and j.fc2.bias.grad is None


def test_tied_weights_get_one_summed_gradient():
    tl1, tl2 = torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False)
    tl2.weight = tl1.weight
    jl1, jl2 = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)
    jl2.weight = jl1.weight
    jl1.load_state_dict(tl1.state_dict())
    tmodel, jmodel = torch.nn.Sequential(tl1, tl2), nn.Sequential(jl1, jl2)
    x = randn(2, 3)
    (tmodel(torch.tensor(x)) ** 2).sum().backward()
    g = jaxmodule.grad(lambda m: (m(jnp.asarray(x)) ** 2).sum())(jmodel)
    assert g[0].weight is g[1].weight
    assert_close(g[0].weight._value, tl1.weight.grad)


def test_grad_works_under_jit():
    _, j = pair()
    f = jax.jit(lambda m, x: jaxmodule.grad(lambda m: m(x).sum())(m))
    g = f(j, jnp.ones((2, 4)))
    g_eager = jaxmodule.grad(lambda m: m(jnp.ones((2, 4))).sum())(j)
    assert_close(g.fc1.weight._value, g_eager.fc1.weight._value)


def test_argnums_out_of_range_is_a_type_error():
    with pytest.raises(TypeError, match="argnums"):
        jaxmodule.grad(lambda m: 0.0, argnums=2)(nn.Linear(1, 1))


def test_integer_buffers_and_frozen_params_unchanged_by_grad():
    _, j = pair(freeze_fc1_bias=True)
    before = np.asarray(j.fc1.bias)
    jaxmodule.backward(lambda m: m(jnp.ones((1, 4))).sum(), j)
    assert j.fc1.bias.grad is None
    np.testing.assert_array_equal(np.asarray(j.fc1.bias), before)
    assert j.steps.dtype == jnp.int32


def test_writes_to_differentiated_parameters_persist_like_torch():
    """Embedding(max_norm) renormalises the rows it looks up, inside the differentiated call."""
    t = torch.nn.Embedding(6, 4, max_norm=0.5)
    j = nn.Embedding(6, 4, max_norm=0.5)
    j.load_state_dict(t.state_dict())
    idx = np.array([1, 3, 3])
    (t(torch.tensor(idx)) ** 2).sum().backward()
    g = jaxmodule.grad(lambda m: (m(jnp.asarray(idx)) ** 2).sum())(j)
    assert_close(j.weight._value, t.weight.detach())
    assert_close(g.weight._value, t.weight.grad)
