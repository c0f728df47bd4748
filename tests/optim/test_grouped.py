"""Every optimizer against torch with two param groups (different lr and weight_decay) and a
StepLR, eager and under `jaxmodule.compile`: the group-level step counts (one vector per group,
`Optimizer._scalar_state`) must give torch's trajectory and torch's per-parameter state, also
when only some parameters of a group have a gradient."""

from __future__ import annotations

import jax.numpy as jnp
import jaxmodule
import pytest
import torch
from jaxmodule import optim
from jaxmodule.optim import lr_scheduler

from tests.helpers import assert_close
from tests.optim._common import (
    assert_params_close,
    jm_params,
    set_jm_grads,
    set_torch_grads,
    torch_params,
)
from tests.optim.test_optimizers import _TorchLion

CASES = [
    ("SGD", {"momentum": 0.9}, 0.05),
    ("SGD", {"momentum": 0.9, "nesterov": True}, 0.05),
    ("SGD", {"momentum": 0.9, "dampening": 0.3}, 0.05),
    ("Adam", {}, 0.01),
    ("Adam", {"amsgrad": True}, 0.01),
    ("AdamW", {}, 0.01),
    ("Adamax", {}, 0.01),
    ("NAdam", {"momentum_decay": 0.01}, 0.01),
    ("RAdam", {"betas": (0.9, 0.99)}, 0.05),
    ("RMSprop", {"centered": True, "momentum": 0.5}, 0.01),
    ("Adagrad", {"lr_decay": 0.1}, 0.1),
    ("Adadelta", {}, 0.5),
    ("Lion", {}, 0.01),
]
IDS = [f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)]
STEPS = 20


def _make(lib: str, name: str, kwargs: dict, lr: float, params: list) -> tuple:
    """The optimizer (two groups: weights at `lr`, the bias at `lr / 2` with weight decay 0.1)
    and a StepLR halving every 5 steps, in jaxmodule or torch."""
    groups = [
        {"params": [params[0]], "lr": lr},
        {"params": [params[1]], "lr": lr / 2, "weight_decay": 0.1},
    ]
    if lib == "torch":
        cls, sched = (
            (_TorchLion if name == "Lion" else getattr(torch.optim, name)),
            torch.optim.lr_scheduler,
        )
    else:
        cls, sched = getattr(optim, name), lr_scheduler
    opt = cls(groups, **kwargs)
    return opt, sched.StepLR(opt, step_size=5, gamma=0.5)


def _assert_state_matches(jo, to) -> None:
    """Same torch-layout state: keys (and their order) and values, per parameter."""
    js, ts = jo.state_dict()["state"], to.state_dict()["state"]
    assert sorted(js) == sorted(ts)
    for k, entry in ts.items():
        assert list(js[k]) == list(entry), f"state[{k}] keys"
        for key, v in entry.items():
            assert_close(js[k][key], v)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name,kwargs,lr", CASES, ids=IDS)
def test_two_groups_with_scheduler_match_torch(name, kwargs, lr, compiled):
    jp, tp = jm_params(), torch_params()
    jo, jsched = _make("jm", name, kwargs, lr, jp)
    to, tsched = _make("torch", name, kwargs, lr, tp)
    step = jaxmodule.compile(lambda opt: opt.step()) if compiled else (lambda opt: opt.step())
    for k in range(STEPS):
        set_jm_grads(jp, k)
        set_torch_grads(tp, k)
        step(jo)
        to.step()
        jsched.step()
        tsched.step()
        assert_params_close(jp, tp, f"step {k}")
    assert jo.param_groups[0]["lr"] == pytest.approx(to.param_groups[0]["lr"])
    if compiled:
        assert step.trace_count == 1  # the scheduler's lr changes never recompile
    if name != "Lion":
        _assert_state_matches(jo, to)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize(
    "name,kwargs,lr",
    [c for c in CASES if c[0] in ("Adam", "NAdam", "RAdam", "Adagrad")],
    ids=[i for i, c in zip(IDS, CASES) if c[0] in ("Adam", "NAdam", "RAdam", "Adagrad")],
)
def test_parameters_stepped_apart_keep_their_own_counts(name, kwargs, lr, compiled):
    """One group; on every third step the bias has no gradient, so torch's per-parameter steps
    part ways: the group's vector keeps each parameter's own count (and NAdam's mu_product)."""
    jp, tp = jm_params(), torch_params()
    jo, to = (
        getattr(optim, name)(jp, lr=lr, **kwargs),
        getattr(torch.optim, name)(tp, lr=lr, **kwargs),
    )
    step = jaxmodule.compile(lambda opt: opt.step()) if compiled else (lambda opt: opt.step())
    for k in range(12):
        set_jm_grads(jp, k)
        set_torch_grads(tp, k)
        if k % 3 == 1:
            jp[1].grad, tp[1].grad = None, None
        step(jo)
        to.step()
        assert_params_close(jp, tp, f"step {k}")
    _assert_state_matches(jo, to)
    assert float(jo.state[jp[0]]["step"]) == 12 and float(jo.state[jp[1]]["step"]) == 8


@pytest.mark.parametrize(
    "name,kwargs,lr",
    [c for c in CASES if c[0] in ("Adam", "NAdam")],
    ids=[i for i, c in zip(IDS, CASES) if c[0] in ("Adam", "NAdam")],
)
def test_torch_state_dict_with_unequal_steps_loads_and_continues(name, kwargs, lr):
    """A torch state_dict whose parameters have different step counts loads into the group
    vectors and the trajectory continues as torch's; bad 0-d entries are refused by name."""
    jp, tp = jm_params(), torch_params()
    to = getattr(torch.optim, name)(tp, lr=lr, **kwargs)
    for k in range(5):
        set_torch_grads(tp, k)
        if k % 2:
            tp[1].grad = None
        to.step()
    for a, b in zip(jp, tp):
        a.data = jnp.asarray(b.detach().numpy())
    jo = getattr(optim, name)(jp, lr=lr, **kwargs)
    sd = to.state_dict()
    bad = {
        "state": {0: dict(sd["state"][0], step=torch.zeros(2)), 1: sd["state"][1]},
        "param_groups": sd["param_groups"],
    }
    with pytest.raises(
        ValueError, match=r"state\[0\]: state entry 'step' has shape \(2,\), expected \(\)"
    ):
        jo.load_state_dict(bad)
    jo.load_state_dict(sd)
    _assert_state_matches(jo, to)
    for k in range(5, 10):
        set_jm_grads(jp, k)
        set_torch_grads(tp, k)
        jo.step()
        to.step()
        assert_params_close(jp, tp, f"step {k}")
    _assert_state_matches(jo, to)
