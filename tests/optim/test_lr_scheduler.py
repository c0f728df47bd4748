"""Scheduler lr (and momentum) sequences against torch.optim.lr_scheduler, step by step."""

from __future__ import annotations

import jaxmodule.optim as jo
import pytest
import torch
from jaxmodule.optim import lr_scheduler as jsched

from tests.optim._common import (
    jm_params,
    run_and_compare,
    torch_params,
)

tsched = torch.optim.lr_scheduler


def _optimizers(kind: str = "SGD"):
    """Two param groups with different lrs, in both libraries."""
    jp, tp = jm_params(), torch_params()
    kw = {"momentum": 0.9} if kind == "SGD" else {}
    jopt = getattr(jo, kind)([{"params": [jp[0]]}, {"params": [jp[1]], "lr": 0.5}], lr=1.0, **kw)
    topt = getattr(torch.optim, kind)(
        [{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.5}], lr=1.0, **kw
    )
    return jopt, topt


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 7, 7, 12], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=8),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.95**e),
    "LambdaLR-list": lambda m, o: m.LambdaLR(o, [lambda e: 0.95**e, lambda e: 1 / (1 + e)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.99),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.0),
    "WarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
    "WarmRestarts-1": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "CyclicLR": lambda m, o: m.CyclicLR(
        o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=4, mode="triangular2"
    ),
    "CyclicLR-exp": lambda m, o: m.CyclicLR(
        o, 0.01, 0.1, step_size_up=3, step_size_down=5, mode="exp_range", gamma=0.97
    ),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=31),
    "OneCycleLR-3": lambda m, o: m.OneCycleLR(
        o,
        max_lr=2.0,
        epochs=3,
        steps_per_epoch=11,
        anneal_strategy="linear",
        three_phase=True,
        pct_start=0.25,
    ),
    "Sequential": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, 0.1, total_iters=5), m.ExponentialLR(o, 0.9)], milestones=[5]
    ),
    "Sequential-3": lambda m, o: m.SequentialLR(
        o,
        [m.ConstantLR(o, 0.5, total_iters=3), m.CosineAnnealingLR(o, T_max=6), m.StepLR(o, 2, 0.5)],
        milestones=[4, 12],
    ),
    "Chained": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, 0.5, total_iters=4), m.ExponentialLR(o, 0.9)]
    ),
}


# SGD for every scheduler; Adam (beta1 cycling) only where the scheduler touches momentum.
PAIRS = [(n, "SGD") for n in CASES] + [
    (n, "Adam") for n in CASES if n.startswith(("OneCycle", "Cyclic"))
]


@pytest.mark.parametrize("name,kind", PAIRS)
def test_lr_sequence_matches_torch(name, kind):
    jopt, topt = _optimizers(kind)
    js, ts = CASES[name](jsched, jopt), CASES[name](tsched, topt)
    assert js.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    for _ in range(30):
        jopt.step()
        topt.step()
        js.step()
        ts.step()
        assert js.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
        assert [g["lr"] for g in jopt.param_groups] == pytest.approx(
            [g["lr"] for g in topt.param_groups], rel=1e-12, abs=1e-15
        )
        assert _momenta(jopt) == pytest.approx(_momenta(topt), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "patience": 1, "factor": 0.5},
        {
            "threshold_mode": "abs",
            "threshold": 0.05,
            "patience": 0,
            "cooldown": 2,
            "min_lr": [0.3, 0.01],
        },
        {"mode": "max", "threshold_mode": "abs", "patience": 2, "min_lr": 0.2, "eps": 0.1},
    ],
)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [5.0, 4.0, 4.0, 3.99, 4.2, 3.0, 3.0, 3.0, 3.0, 2.99, 2.0] * 3
    jopt, topt = _optimizers()
    js = jsched.ReduceLROnPlateau(jopt, **kwargs)
    ts = tsched.ReduceLROnPlateau(topt, **kwargs)
    for m in metrics:
        js.step(m)
        ts.step(m)
        assert js.get_last_lr() == ts.get_last_lr()
        assert js.num_bad_epochs == ts.num_bad_epochs and js.best == ts.best


@pytest.mark.parametrize(
    "name", ["StepLR", "CosineAnnealingLR", "OneCycleLR", "Sequential", "CyclicLR"]
)
def test_state_dict_round_trip(name):
    jopt, topt = _optimizers()
    js, ts = CASES[name](jsched, jopt), CASES[name](tsched, topt)
    for _ in range(7):
        for opt, sched in ((jopt, js), (topt, ts)):
            opt.step()
            sched.step()
    sd = js.state_dict()
    assert set(sd) == set(ts.state_dict())
    jopt2, _ = _optimizers()
    js2 = CASES[name](jsched, jopt2)
    js2.load_state_dict(sd)
    jopt2.load_state_dict(jopt.state_dict())
    for _ in range(10):
        for opt, sched in ((jopt, js), (jopt2, js2)):
            opt.step()
            sched.step()
        assert js2.get_last_lr() == js.get_last_lr()
        assert [g["lr"] for g in jopt2.param_groups] == js.get_last_lr()


def test_lambda_state_dict_keeps_callable_objects_state():
    class Fn:
        def __init__(self):
            self.k = 0.5

        def __call__(self, e):
            return self.k**e

    jopt, _ = _optimizers()
    s = jsched.LambdaLR(jopt, Fn())
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"k": 0.5}, {"k": 0.5}]
    s.lr_lambdas[0].k = 0.1
    s.load_state_dict(sd)
    assert s.lr_lambdas[0].k == 0.5


@pytest.mark.parametrize(
    "kind,make",
    [
        ("Adam", lambda m, o: m.OneCycleLR(o, max_lr=0.05, total_steps=20)),
        ("SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    ],
)
def test_optimizer_with_scheduler_trajectory(kind, make):
    jp, tp = jm_params(), torch_params()
    kw = {"lr": 0.01, "momentum": 0.9} if kind == "SGD" else {"lr": 0.01}
    jopt, topt = getattr(jo, kind)(jp, **kw), getattr(torch.optim, kind)(tp, **kw)
    js, ts = make(jsched, jopt), make(tsched, topt)
    run_and_compare(jopt, topt, jp, tp, 20, then=(js, ts))


def test_errors_and_warnings():
    jopt, _ = _optimizers()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        jsched.StepLR(object(), 1)
    with pytest.raises(ValueError, match="Constant multiplicative factor"):
        jsched.ConstantLR(jopt, factor=2.0)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        jsched.LinearLR(jopt, start_factor=0.0)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        jsched.ReduceLROnPlateau(jopt, factor=1.0)
    with pytest.raises(ValueError, match="mode foo is unknown"):
        jsched.ReduceLROnPlateau(jopt, mode="foo")
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        jsched.CosineAnnealingWarmRestarts(jopt, T_0=0)
    with pytest.raises(ValueError, match="You must define either total_steps"):
        jsched.OneCycleLR(jopt, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        jsched.LambdaLR(jopt, [lambda e: 1.0])
    with pytest.raises(KeyError, match="initial_lr"):
        jsched.StepLR(jopt, 1, last_epoch=3)
    s = jsched.OneCycleLR(jopt, max_lr=1.0, total_steps=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        s.step()
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        jsched.SequentialLR(jopt, [jsched.ReduceLROnPlateau(jopt)], milestones=[])
    with pytest.raises(ValueError, match="number of milestones"):
        jsched.SequentialLR(jopt, [jsched.StepLR(jopt, 1)], milestones=[2])
    with pytest.warns(UserWarning, match="get_last_lr"):
        jsched.StepLR(jopt, 1).get_lr()
