"""Trajectory tests: every optimizer against torch.optim over 20 steps, several option sets."""

from __future__ import annotations

import pytest
import torch
from jaxmodule import optim

from tests.optim._common import (
    jm_params,
    run_and_compare,
    torch_params,
)

CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.1, "betas": (0.9, 0.9999)}),  # bias corrections at a large lr
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "maximize": True, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adamax", {"lr": 0.01}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.1, "betas": (0.9, 0.9999)}),  # the rectification at a large lr
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"momentum": 0.9, "lr": 0.001}),
    ("RMSprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.1, "alpha": 0.9}),
    ("RMSprop", {"maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1},
    ),
    ("Adagrad", {"maximize": True, "eps": 1e-5}),
    ("Adadelta", {}),
    ("Adadelta", {"rho": 0.5, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True, "lr": 0.5}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kwargs):
    jp, tp = jm_params(), torch_params()
    jo, to = getattr(optim, name)(jp, **kwargs), getattr(torch.optim, name)(tp, **kwargs)
    run_and_compare(jo, to, jp, tp, 20)


class _TorchLion(torch.optim.Optimizer):
    """The published Lion update, written with torch ops (torch has no Lion)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                st = self.state[p]
                m = st.setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - g["lr"] * g["weight_decay"])
                p.add_((m * b1 + p.grad * (1 - b1)).sign(), alpha=-g["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.5, "betas": (0.8, 0.9)}]
)
def test_lion_matches_published_formula(kwargs):
    jp, tp = jm_params(), torch_params()
    jo, to = optim.Lion(jp, **kwargs), _TorchLion(tp, **kwargs)
    run_and_compare(jo, to, jp, tp, 20)
    assert set(jo.state_dict()["state"][0]) == {"exp_avg"}
