"""torch's Optimizer API: param groups, frozen/None-grad params, state_dict, errors, repr."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jaxmodule import optim
from jaxmodule.nn import Buffer, Parameter

from tests.helpers import assert_close
from tests.optim._common import (
    assert_params_close,
    jm_params,
    run_and_compare,
    set_jm_grads,
    set_torch_grads,
    torch_params,
)

GROUP_CASES = [
    (
        "SGD",
        {"lr": 0.01},
        [{"momentum": 0.9, "weight_decay": 0.1}, {"lr": 0.05, "nesterov": True, "momentum": 0.5}],
    ),
    (
        "Adam",
        {"lr": 0.01},
        [{"amsgrad": True}, {"lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.1}],
    ),
    ("RMSprop", {"lr": 0.01}, [{"centered": True}, {"momentum": 0.5, "alpha": 0.8}]),
]


@pytest.mark.parametrize("name,defaults,groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_param_groups_with_different_options(name, defaults, groups):
    jp, tp = jm_params(), torch_params()
    jo = getattr(optim, name)(
        [dict(groups[0], params=[jp[0]]), dict(groups[1], params=[jp[1]])], **defaults
    )
    to = getattr(torch.optim, name)(
        [dict(groups[0], params=[tp[0]]), dict(groups[1], params=[tp[1]])], **defaults
    )
    run_and_compare(jo, to, jp, tp, 20)
    assert str(jo) == str(to)


def test_frozen_and_gradless_params_untouched():
    jp, tp = jm_params(), torch_params()
    jfrozen, jnograd = Parameter(jnp.ones(3), requires_grad=False), Parameter(jnp.full(2, 2.0))
    tfrozen, tnograd = (
        torch.nn.Parameter(torch.ones(3), requires_grad=False),
        torch.nn.Parameter(torch.full((2,), 2.0)),
    )
    jo = optim.Adam(jp + [jfrozen, jnograd], lr=0.01, weight_decay=0.1)
    to = torch.optim.Adam(tp + [tfrozen, tnograd], lr=0.01, weight_decay=0.1)
    for k in range(5):
        set_jm_grads(jp, k)
        set_torch_grads(tp, k)
        jfrozen.grad = jnp.ones(3)  # a frozen parameter is never updated, even with a grad
        jo.step()
        to.step()
        assert_params_close(jp, tp, f"step {k}")
    assert jfrozen.tolist() == [1.0, 1.0, 1.0] and jnograd.tolist() == [2.0, 2.0]
    assert sorted(jo.state_dict()["state"]) == sorted(to.state_dict()["state"]) == [0, 1]
    assert set(jo.state) == {jp[0], jp[1]}


STATE_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("Adamax", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1}),
    ("Adadelta", {}),
]


def _compare_state_dicts(jsd, tsd):
    assert list(jsd["state"]) == list(tsd["state"])
    for k in tsd["state"]:
        assert list(jsd["state"][k]) == list(tsd["state"][k])
        for key, tv in tsd["state"][k].items():
            assert_close(jsd["state"][k][key], tv)
            assert np.asarray(jsd["state"][k][key]).dtype == tv.numpy().dtype
    assert jsd["param_groups"] == tsd["param_groups"]


@pytest.mark.parametrize(
    "name,kwargs", STATE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(STATE_CASES)]
)
def test_state_dict_layout_and_round_trip(name, kwargs):
    jp, tp = jm_params(), torch_params()
    jo, to = getattr(optim, name)(jp, **kwargs), getattr(torch.optim, name)(tp, **kwargs)
    _compare_state_dicts(jo.state_dict(), to.state_dict())  # before any step (Adagrad has state)
    run_and_compare(jo, to, jp, tp, 4)
    _compare_state_dicts(jo.state_dict(), to.state_dict())

    # Saved after 4 steps, loaded into fresh optimizers: jaxmodule's own dict and torch's dict.
    jp2, jp3 = [Parameter(p._value) for p in jp], [Parameter(p._value) for p in jp]
    jo2, jo3 = getattr(optim, name)(jp2, lr=123.0), getattr(optim, name)(jp3, lr=123.0)
    jo2.load_state_dict(jo.state_dict())
    jo3.load_state_dict(to.state_dict())
    for k in range(4, 8):
        for ps in (jp, jp2, jp3):
            set_jm_grads(ps, k)
        set_torch_grads(tp, k)
        for o in (jo, jo2, jo3, to):
            o.step()
        assert_params_close(jp, tp, f"step {k}")
        assert_params_close(jp3, tp, f"step {k} (loaded from torch)")
        for a, b in zip(jp2, jp):  # a reloaded jaxmodule state continues bit for bit
            np.testing.assert_array_equal(np.asarray(a._value), np.asarray(b._value))


def test_load_state_dict_validates_and_changes_nothing_on_failure():
    jp = jm_params()
    jo = optim.Adam(jp, lr=0.01)
    set_jm_grads(jp, 0)
    jo.step()
    before = jo.state_dict()
    bad = jo.state_dict()
    bad["param_groups"] = bad["param_groups"] + [dict(bad["param_groups"][0], params=[])]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        jo.load_state_dict(bad)
    bad = jo.state_dict()
    bad["param_groups"][0]["params"] = [0]
    with pytest.raises(ValueError, match="doesn't match the size"):
        jo.load_state_dict(bad)
    bad = jo.state_dict()
    bad["param_groups"][0]["lr"] = 5.0
    bad["state"][1] = dict(bad["state"][1], exp_avg=jnp.zeros(7))
    with pytest.raises(ValueError, match=r"state\[1\]: state entry 'exp_avg' has shape \(7,\)"):
        jo.load_state_dict(bad)
    bad["state"][1] = {"step": 1.0, "exp_avg": jnp.zeros(4)}
    with pytest.raises(ValueError, match="missing state entry 'exp_avg_sq'"):
        jo.load_state_dict(bad)
    bad["state"][1] = dict(before["state"][1], foo=jnp.zeros(4))
    with pytest.raises(ValueError, match=r"unexpected state entries \['foo'\]"):
        jo.load_state_dict(bad)
    after = jo.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for k in before["state"]:
        for key in before["state"][k]:
            np.testing.assert_array_equal(
                np.asarray(after["state"][k][key]), np.asarray(before["state"][k][key])
            )


def test_named_params_and_add_param_group():
    jp, tp = jm_params(), torch_params()
    jo = optim.SGD([("w", jp[0])], lr=0.1)
    to = torch.optim.SGD([("w", tp[0])], lr=0.1)
    jo.add_param_group({"params": [("b", jp[1])], "lr": 0.2, "momentum": 0.5})
    to.add_param_group({"params": [("b", tp[1])], "lr": 0.2, "momentum": 0.5})
    assert jo.state_dict()["param_groups"] == to.state_dict()["param_groups"]
    run_and_compare(jo, to, jp, tp, 3)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        jo.add_param_group({"params": [("w2", jp[0])]})
    with pytest.raises(ValueError, match="all optimizer param groups should be with/without names"):
        jo.add_param_group({"params": [Parameter(jnp.ones(1))]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        jo.add_param_group([Parameter(jnp.ones(1))])
    with pytest.raises(TypeError, match="ordered collections"):
        jo.add_param_group({"params": {Parameter(jnp.ones(1))}})
    with pytest.raises(ValueError, match="Some param names are missing"):
        optim.SGD([("a", Parameter(jnp.ones(1))), Parameter(jnp.ones(1))])


def test_constructor_errors():
    p = [Parameter(jnp.ones(2))]
    for name in [
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "NAdam",
        "RAdam",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Lion",
    ]:
        with pytest.raises(ValueError, match=r"^Invalid learning rate: -0.1$"):
            getattr(optim, name)(p, lr=-0.1)
        with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
            getattr(optim, name)([])
    for name in ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Lion"]:
        with pytest.raises(ValueError, match=r"Invalid beta parameter at index 1: 1.0"):
            getattr(optim, name)(p, betas=(0.9, 1.0))
    for name in ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta"]:
        with pytest.raises(ValueError, match=r"Invalid epsilon value: -1"):
            getattr(optim, name)(p, eps=-1)
        with pytest.raises(ValueError, match=r"Invalid weight_decay value: -1"):
            getattr(optim, name)(p, weight_decay=-1)
        with pytest.raises(NotImplementedError, match="differentiable"):
            getattr(optim, name)(p, differentiable=True)
    with pytest.raises(
        ValueError, match="Nesterov momentum requires a momentum and zero dampening"
    ):
        optim.SGD(p, nesterov=True)
    with pytest.raises(ValueError, match="Invalid momentum value: -0.5"):
        optim.SGD(p, momentum=-0.5)
    with pytest.raises(ValueError, match="Invalid rho value: 1.5"):
        optim.Adadelta(p, rho=1.5)
    with pytest.raises(ValueError, match="Invalid alpha value: -1"):
        optim.RMSprop(p, alpha=-1)
    with pytest.raises(ValueError, match="Invalid lr_decay value: -1"):
        optim.Adagrad(p, lr_decay=-1)
    with pytest.raises(ValueError, match="Invalid momentum_decay value: -1"):
        optim.NAdam(p, momentum_decay=-1)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        optim.Adam(p, fused=True, foreach=True)
    with pytest.raises(TypeError, match="should be an iterable of Parameters or dicts"):
        optim.SGD(p[0])
    with pytest.raises(TypeError, match="optimizer can only optimize Parameters"):
        optim.SGD([Buffer(jnp.ones(2))])
    with pytest.raises(TypeError, match="optimizer can only optimize Parameters"):
        optim.SGD([jnp.ones(2)])
    with pytest.raises(ValueError, match="duplicate parameters"):
        optim.SGD(p + p)
    with pytest.raises(NotImplementedError, match="complex parameters are not supported"):
        optim.SGD([Parameter(jnp.ones(2, jnp.complex64))])
    o = optim.SGD(p)
    p[0].grad = jnp.ones(3)
    with pytest.raises(
        RuntimeError, match=r"parameter 0 has shape \(2,\) but its grad has shape \(3,\)"
    ):
        o.step()


@pytest.mark.parametrize(
    "name", ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta"]
)
def test_repr_and_defaults_match_torch(name):
    jo = getattr(optim, name)([Parameter(jnp.ones(2))])
    to = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))])
    assert repr(jo) == repr(to)
    assert jo.defaults == to.defaults


def test_zero_grad_and_closure():
    jp = jm_params()
    jo = optim.SGD(jp, lr=0.1)
    set_jm_grads(jp, 0)
    jo.zero_grad(set_to_none=False)
    assert all(float(jnp.abs(p.grad).sum()) == 0.0 for p in jp)
    jo.zero_grad()
    assert all(p.grad is None for p in jp)

    def closure():
        set_jm_grads(jp, 0)
        return 3.0

    before = np.asarray(jp[0]._value)
    assert jo.step(closure) == 3.0
    assert not np.array_equal(before, np.asarray(jp[0]._value))


def test_structural_option_change_rebuilds_state_like_torch():
    """Turning momentum on after some steps: torch starts the buffer from the next gradient."""
    jp, tp = jm_params(), torch_params()
    jo, to = optim.SGD(jp, lr=0.05), torch.optim.SGD(tp, lr=0.05)
    run_and_compare(jo, to, jp, tp, 3)
    for o in (jo, to):
        o.param_groups[0]["momentum"] = 0.9
        o.param_groups[0]["dampening"] = 0.5
    run_and_compare(jo, to, jp, tp, 5, start=3)
    _compare_state_dicts(jo.state_dict(), to.state_dict())


@pytest.mark.parametrize(
    "name,kwargs,changes",
    [
        (
            "SGD",
            {"lr": 0.05, "momentum": 0.9},
            [{"dampening": 0.5}, {"dampening": 0.0, "weight_decay": 0.1}],
        ),
        (
            "SGD",
            {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
            [{"dampening": 0.0}, {"weight_decay": 0.0}],
        ),
        ("Adam", {"lr": 0.05}, [{"weight_decay": 0.2}, {"weight_decay": 0.0}]),
        ("AdamW", {"lr": 0.05, "weight_decay": 0.0}, [{"weight_decay": 0.1}]),
        ("RMSprop", {"lr": 0.01, "momentum": 0.5}, [{"weight_decay": 0.1}, {"weight_decay": 0.0}]),
    ],
)
def test_zero_options_switching_mid_training_match_torch(name, kwargs, changes):
    """weight_decay / dampening of 0 drop their term (as torch's `if weight_decay != 0`); switching
    between zero and non-zero mid-training keeps the state and matches torch step for step."""
    jp, tp = jm_params(), torch_params()
    jo, to = getattr(optim, name)(jp, **kwargs), getattr(torch.optim, name)(tp, **kwargs)

    def run(start):  # both sides get the same gradient arrays: only the optimizer math differs
        for k in range(start, start + 3):
            set_jm_grads(jp, k)
            for a, b in zip(jp, tp):
                b.grad = torch.tensor(np.asarray(a.grad))
            jo.step()
            to.step()
            assert_params_close(jp, tp, f"step {k}")

    run(0)
    for i, change in enumerate(changes):
        for o in (jo, to):
            o.param_groups[0].update(change)
        run(3 + 3 * i)
    _compare_state_dicts(jo.state_dict(), to.state_dict())


def test_low_precision_params_keep_dtype():
    p = Parameter(jnp.ones(3, jnp.bfloat16))
    o = optim.Adam([p], lr=0.1)
    p.grad = jnp.ones(3, jnp.bfloat16)
    o.step()
    assert p.dtype == jnp.bfloat16 and o.state[p]["exp_avg"].dtype == jnp.bfloat16
    assert o.state[p]["step"].dtype == jnp.float32


def test_hooks():
    from jaxmodule.optim.optimizer import register_optimizer_step_pre_hook

    jp = jm_params()
    o = optim.SGD(jp, lr=0.1)
    calls = []
    h1 = o.register_step_pre_hook(lambda opt, a, k: calls.append(("pre", a)))
    h2 = o.register_step_post_hook(lambda opt, a, k: calls.append(("post", a)))
    g = register_optimizer_step_pre_hook(lambda opt, a, k: calls.append(("global", a)))
    o.register_state_dict_post_hook(lambda opt, sd: dict(sd, extra=1))
    o.register_load_state_dict_pre_hook(
        lambda opt, sd: {k: v for k, v in sd.items() if k != "extra"}
    )
    seen = []
    o.register_load_state_dict_post_hook(lambda opt: seen.append(True))
    set_jm_grads(jp, 0)
    o.step()
    assert [c[0] for c in calls] == ["global", "pre", "post"]
    for h in (h1, h2, g):
        h.remove()
    o.step()
    assert len(calls) == 3
    sd = o.state_dict()
    assert sd["extra"] == 1
    o.load_state_dict(sd)
    assert seen == [True]
    o.register_step_pre_hook(lambda opt, a, k: "bad")
    with pytest.raises(
        RuntimeError, match="must return None or a tuple of \\(new_args, new_kwargs\\)"
    ):
        o.step()
