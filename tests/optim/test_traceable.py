"""step() under jax.jit: the state round-trips through _jm_state_get/_jm_state_set, and
scheduler changes to group options reach the compiled step without retracing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from jaxmodule import nn, optim
from jaxmodule.optim import lr_scheduler

from tests.helpers import assert_close
from tests.optim._common import jm_params, set_jm_grads


def _compiled_step(opt, params):
    """A pure wrapper like jaxmodule.compile's: install state and values, step, read back."""
    traces = []

    @jax.jit
    def pure(state, values, grads):
        traces.append(1)
        opt._jm_state_set(state)
        for p, v, g in zip(params, values, grads):
            p._value, p.grad = v, g
        opt.step()
        return opt._jm_state_get(), [p._value for p in params]

    def step(grads):
        state, values = pure(opt._jm_state_get(), [p._value for p in params], grads)
        opt._jm_state_set(state)
        for p, v in zip(params, values):
            p._value, p.grad = v, None

    return step, traces


@pytest.mark.parametrize(
    "name,kwargs,make_sched",
    [
        (
            "Adam",
            {"lr": 0.01, "amsgrad": True},
            lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12),
        ),
        (
            "SGD",
            {"lr": 0.05, "momentum": 0.9},
            lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=12),
        ),
        ("RMSprop", {"lr": 0.01, "centered": True}, lambda o: lr_scheduler.StepLR(o, 2, 0.5)),
    ],
)
def test_jitted_step_matches_eager_without_retracing(name, kwargs, make_sched):
    jp, ep = jm_params(), jm_params()
    jopt, eopt = getattr(optim, name)(jp, **kwargs), getattr(optim, name)(ep, **kwargs)
    jsched, esched = make_sched(jopt), make_sched(eopt)
    step, traces = _compiled_step(jopt, jp)
    for k in range(10):
        set_jm_grads(ep, k)
        grads = [p.grad for p in ep]
        eopt.step()
        step(grads)
        jsched.step()
        esched.step()
        for a, b in zip(jp, ep):
            assert_close(a._value, b._value)
    assert len(traces) == 1
    assert sorted(jopt.state_dict()["state"]) == [0, 1]
    js, es = jopt.state_dict()["state"], eopt.state_dict()["state"]
    for k in es:
        for key in es[k]:
            assert_close(js[k][key], es[k][key])


def test_state_get_is_cheap_when_nothing_changed():
    jp = jm_params()
    opt = optim.Adam(jp, lr=0.01)
    a, b = opt._jm_state_get(), opt._jm_state_get()
    assert all(x is y for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    opt.param_groups[0]["lr"] = 0.02
    c = opt._jm_state_get()
    assert float(c["hp"][0]["lr"]) == pytest.approx(0.02)
    assert c["hp"][0]["eps"] is a["hp"][0]["eps"]  # only changed options are transferred
    assert jax.tree.structure(a) == jax.tree.structure(c)


def test_generic_optax_optimizer():
    """Any optax transformation: same trajectory as optax itself; 'lr' scales the update."""
    jp = jm_params()
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01))
    opt = optim.Optimizer(jp, tx)
    raw = [p._value for p in jp]
    st = tx.init(raw)
    for k in range(5):
        set_jm_grads(jp, k)
        u, st = tx.update([p.grad for p in jp], st, raw)
        raw = optax.apply_updates(raw, u)
        opt.step()
        for a, b in zip(jp, raw):
            assert_close(a._value, b)
    sd = opt.state_dict()
    assert list(sd["state"]) == ["optax_state"] and sd["param_groups"][0]["lr"] == 1.0
    jp2 = [nn.Parameter(p._value) for p in jp]
    opt2 = optim.Optimizer(jp2, tx)
    opt2.load_state_dict(sd)
    for o, ps in ((opt, jp), (opt2, jp2)):
        o.param_groups[0]["lr"] = 0.5
        set_jm_grads(ps, 5)
        ps[1].grad = None  # skipped: keeps its value
        o.step()
    np.testing.assert_array_equal(np.asarray(jp[0]._value), np.asarray(jp2[0]._value))
    np.testing.assert_array_equal(np.asarray(jp[1]._value), np.asarray(raw[1]))
    assert repr(opt).startswith("Optimizer (\nParameter Group 0\n    lr: 0.5")
    bad = dict(sd, state={})
    with pytest.raises(ValueError, match="no 'optax_state' for parameter group 0"):
        opt2.load_state_dict(bad)


def test_with_linear_module_against_torch():
    torch_lin = torch.nn.Linear(3, 2)
    lin = nn.Linear(3, 2)
    lin.load_state_dict(torch_lin.state_dict())
    x, y = (
        np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32),
        np.ones((4, 2), np.float32),
    )
    jopt = optim.AdamW(lin.parameters(), lr=0.05)
    topt = torch.optim.AdamW(torch_lin.parameters(), lr=0.05)
    grad = jax.jit(jax.grad(lambda w, b: jnp.mean((x @ w.T + b - y) ** 2), argnums=(0, 1)))
    for _ in range(10):
        lin.weight.grad, lin.bias.grad = grad(lin.weight._value, lin.bias._value)
        topt.zero_grad()
        ((torch_lin(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        jopt.step()
        topt.step()
        assert_close(lin.weight._value, torch_lin.weight)
        assert_close(lin.bias._value, torch_lin.bias)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
        ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ],
)
def test_jaxmodule_compile_with_scheduler_against_torch(name, kwargs):
    """A compiled torch-style step (backward + step) with OneCycleLR changing lr and momentum
    every step: one trace, torch's trajectory."""
    import jaxmodule

    torch_lin = torch.nn.Linear(3, 2)
    lin = nn.Linear(3, 2)
    lin.load_state_dict(torch_lin.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.ones((4, 2), np.float32)
    jopt, topt = (
        getattr(optim, name)(lin.parameters(), **kwargs),
        getattr(torch.optim, name)(torch_lin.parameters(), **kwargs),
    )
    jsched = lr_scheduler.OneCycleLR(jopt, max_lr=0.1, total_steps=10)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=10)

    def train_step(model, opt, x, y):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m: jnp.mean((m(x) - y) ** 2), model)
        opt.step()
        return loss

    step = jaxmodule.compile(train_step)
    for _ in range(10):
        step(lin, jopt, jnp.asarray(x), jnp.asarray(y))
        topt.zero_grad()
        ((torch_lin(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        topt.step()
        jsched.step()
        tsched.step()
        assert_close(lin.weight._value, torch_lin.weight)
        assert_close(lin.bias._value, torch_lin.bias)
    assert step.trace_count == 1
    for k, entry in topt.state_dict()["state"].items():
        for key, v in entry.items():
            assert_close(jopt.state_dict()["state"][k][key], v)
