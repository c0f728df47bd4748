"""Reached state is live state: models, optimizers, schedulers and scalers that a compiled step
reaches through closures, globals, defaults or a holder object train exactly as torch does eagerly.

Each case runs the same steps in torch (eager) and in jaxmodule (compiled) and compares losses,
parameters, buffers (BatchNorm statistics) and optimizer state after every step.
"""

from typing import Any

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn, optim

from tests.helpers import assert_close, randn

OPTIMIZERS = {
    "sgd_momentum": (
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    ),
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01), lambda p: optim.Adam(p, lr=0.01)),
}


def pair(opt_name="sgd_momentum"):
    # no bias before BatchNorm: its gradient is zero up to rounding, and Adam's normalised update
    # would turn that rounding noise into lr-sized differences
    tm = torch.nn.Sequential(
        torch.nn.Linear(4, 8, bias=False),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 2),
    )
    jm = nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    jm.load_state_dict(tm.state_dict())
    make_t, make_j = OPTIMIZERS[opt_name]
    return tm, jm, make_t(tm.parameters()), make_j(jm.parameters())


def batch(i, n=16):
    return randn(n, 4, seed=i), randn(n, 2, seed=100 + i)


def torch_step(tm, topt, x, y):
    topt.zero_grad()
    loss = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
    loss.backward()
    topt.step()
    return loss


def assert_same_state(tm, jm, topt, jopt):
    for (k, tv), (k2, jv) in zip(tm.state_dict().items(), jm.state_dict().items()):
        assert k == k2
        assert_close(jv, tv)
    tstate, jstate = topt.state_dict()["state"], jopt.state_dict()["state"]
    assert tstate.keys() == jstate.keys()
    for i in tstate:
        for name, tv in tstate[i].items():
            assert_close(jstate[i][name], tv)


def run_both(tm, jm, topt, jopt, jstep, steps=4, between=None):
    for i in range(steps):
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        jl = jstep(jnp.asarray(x), jnp.asarray(y))
        assert_close(jl, tl)
        if between is not None:
            between(i)
        assert_same_state(tm, jm, topt, jopt)


def make_step(model, optimizer, after=lambda x: None):
    """The torch habit: the model and optimizer are closure variables; `after(x)` runs after the
    update (a scheduler step, or an error)."""

    def train_step(x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: ((model(x) - y) ** 2).mean())
        optimizer.step()
        after(x)
        return loss

    return train_step


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_closure_captured_model_and_optimizer_match_torch(opt_name):
    tm, jm, topt, jopt = pair(opt_name)
    step = jaxmodule.compile(make_step(jm, jopt))
    run_both(tm, jm, topt, jopt, step)
    assert step.trace_count == 1


# module-level state, as a torch script keeps it
model = optimizer = scheduler = None


@jaxmodule.compile
def global_step(x, y):
    optimizer.zero_grad()
    loss = jaxmodule.backward(lambda: ((model(x) - y) ** 2).mean())
    optimizer.step()
    return loss


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_global_model_optimizer_and_scheduler_match_torch(opt_name):
    global model, optimizer, scheduler
    tm, model, topt, optimizer = pair(opt_name)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.5)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    def step_schedulers(i):
        tsched.step()
        scheduler.step()

    traces = global_step.trace_count  # (shared by the parametrised cases: count from here)
    run_both(tm, model, topt, optimizer, global_step, steps=5, between=step_schedulers)
    assert global_step.trace_count <= traces + 1  # a new lr is a new value, not a new program

    # rebinding the globals to new objects is seen (guarded), and the program is reused
    tm2, model, topt2, optimizer = pair(opt_name)
    before = global_step.trace_count
    run_both(tm2, model, topt2, optimizer, global_step, steps=2)
    assert global_step.trace_count == before


class Trainer:
    """A holder object whose method is compiled (the model and optimizer are attributes)."""

    def __init__(self, model, optimizer, scaler=None):
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler

    @jaxmodule.compile
    def step(self, x, y):
        self.optimizer.zero_grad()
        if self.scaler is None:
            loss = jaxmodule.backward(lambda: ((self.model(x) - y) ** 2).mean())
            self.optimizer.step()
            return loss
        scaled = jaxmodule.backward(lambda: self.scaler.scale(((self.model(x) - y) ** 2).mean()))
        loss = scaled / self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss


def test_trainer_method_with_attribute_state_matches_torch():
    tm, jm, topt, jopt = pair("adam")
    trainer = Trainer(jm, jopt)
    run_both(tm, jm, topt, jopt, trainer.step)
    bound = jaxmodule.compile(Trainer.step.fn.__get__(trainer))  # a bound method compiled directly
    x, y = batch(9)
    tl = torch_step(tm, topt, x, y)
    assert_close(bound(jnp.asarray(x), jnp.asarray(y)), tl)
    assert_same_state(tm, jm, topt, jopt)


def test_captured_grad_scaler_matches_torch():
    tm, jm, topt, jopt = pair("sgd_momentum")
    tscaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    jscaler = jaxmodule.amp.GradScaler(init_scale=1024.0, growth_interval=2)
    trainer = Trainer(jm, jopt, jscaler)
    for i in range(5):
        x, y = batch(i)
        topt.zero_grad()
        loss = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        tscaler.scale(loss).backward()
        tscaler.step(topt)
        tscaler.update()
        assert_close(trainer.step(jnp.asarray(x), jnp.asarray(y)), loss)
        assert float(jscaler.get_scale()) == float(tscaler.get_scale())
        assert_same_state(tm, jm, topt, jopt)


def test_mixed_passed_model_and_captured_optimizer_match_torch():
    tm, jm, topt, jopt = pair("sgd_momentum")

    @jaxmodule.compile
    def step(m, x, y):
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda mm: ((mm(x) - y) ** 2).mean(), m)
        jopt.step()
        return loss

    run_both(tm, jm, topt, jopt, lambda x, y: step(jm, x, y))
    assert step.trace_count == 1


def test_default_argument_and_module_level_config_are_reached():
    tm, jm, topt, jopt = pair("sgd_momentum")

    def step(x, y, m=jm, o=jopt):
        o.zero_grad()
        loss = jaxmodule.backward(lambda: ((m(x) - y) ** 2).mean())
        o.step()
        return loss

    run_both(tm, jm, topt, jopt, jaxmodule.compile(step))


def test_captured_python_number_and_array_are_guarded():
    """Plain values a step reads from globals or closures are constants of the program; rebinding
    them retraces instead of silently using the old value."""
    lin = nn.Linear(3, 2)
    scale = 2.0
    offset = jnp.ones(2)

    @jaxmodule.compile
    def f(x):
        return lin(x) * scale + offset

    x = jnp.ones((1, 3))
    assert_close(f(x), lin(x) * 2.0 + 1.0)
    scale = 3.0
    assert_close(f(x), lin(x) * 3.0 + 1.0)
    offset = jnp.zeros(2)
    assert_close(f(x), lin(x) * 3.0)
    assert f.trace_count == 3


class _Config:
    def __init__(self) -> None:
        self.scale = 2.0


@pytest.mark.parametrize("holder", ["dict", "object"])
def test_numbers_in_a_captured_config_without_state_are_guarded(holder):
    """A config dict or plain object that holds no model or optimizer, only numbers the step
    reads: changing a number between calls retraces (torch reads the new value), and a step
    with the unchanged config stays on its program."""
    lin = nn.Linear(3, 2)
    cfg: Any = {"scale": 2.0} if holder == "dict" else _Config()

    def put(v):
        if holder == "dict":
            cfg["scale"] = v
        else:
            cfg.scale = v

    @jaxmodule.compile
    def f(x):
        return lin(x) * (cfg["scale"] if holder == "dict" else cfg.scale)

    x = jnp.ones((1, 3))
    for v in (2.0, 2.0, 3.0, 3.0, 0.5):
        put(v)
        assert_close(f(x), lin(x) * v)
    assert f.trace_count == 3


class _Trainer:
    """The torch habit: a trainer object with a compiled step method, a step counter the
    training loop moves, and an option a helper method reads inside the step."""

    def __init__(self, jm, jopt) -> None:
        self.model, self.opt = jm, jopt
        self.global_step = 0
        self.loss_scale = 1.0

    def scaled(self, loss):
        return loss * self.loss_scale

    @jaxmodule.compile
    def step(self, x, y):
        self.opt.zero_grad()
        loss = jaxmodule.backward(lambda: self.scaled(((self.model(x) - y) ** 2).mean()))
        self.opt.step()
        return loss

    def fit_one(self, x, y):
        loss = self.step(x, y)
        self.global_step += 1
        return loss


def test_a_trainer_counter_moved_outside_the_step_does_not_retrace_but_an_option_it_reads_does():
    """`global_step` changes every iteration but no code the step reaches names it: guarding it
    would retrace (and recompile) every step. `loss_scale`, read by a method the step calls,
    is guarded: changing it retraces and trains with the new value, as torch does."""
    tm, jm, topt, jopt = pair("sgd_momentum")
    trainer = _Trainer(jm, jopt)
    scale = 1.0
    for i in range(6):
        if i == 4:
            scale = trainer.loss_scale = 0.5
        x, y = batch(i)
        topt.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean() * scale
        tl.backward()
        topt.step()
        assert_close(trainer.fit_one(jnp.asarray(x), jnp.asarray(y)), tl)
    assert trainer.global_step == 6
    assert _Trainer.step.trace_count == 2
    assert_same_state(tm, jm, topt, jopt)


def test_structurally_identical_new_model_reuses_the_program():
    traced = []

    def step(m, opt, x, y):
        traced.append(1)
        opt.zero_grad()
        loss = jaxmodule.backward(lambda: ((m(x) - y) ** 2).mean())
        opt.step()
        return loss

    compiled = jaxmodule.compile(step)
    for seed in range(3):
        tm, jm, topt, jopt = pair("adam")
        x, y = batch(seed)
        assert_close(compiled(jm, jopt, jnp.asarray(x), jnp.asarray(y)), torch_step(tm, topt, x, y))
        assert_same_state(tm, jm, topt, jopt)
    assert len(traced) == 1 and compiled.trace_count == 1


def test_a_stream_of_new_models_is_not_kept_alive():
    import gc
    import weakref

    compiled = jaxmodule.compile(lambda m, x: m(x).sum())
    refs = []
    for _ in range(12):
        m = nn.Linear(3, 3)
        refs.append(weakref.ref(m))
        compiled(m, jnp.ones((2, 3)))
    del m
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive <= 5  # at most the few recent layouts the cache keeps
    assert compiled.trace_count == 1


def make_registry_step(model, optimizer, after=lambda x: None):
    """A step that reaches its model through a class attribute's function, a path the walk does
    not follow: only the cells and the optimizer reporting their use while tracing find it."""
    registry = type("Registry", (), {"get": staticmethod(lambda: (model, optimizer))})

    def step(x, y):
        m, o = registry.get()
        o.zero_grad()
        loss = jaxmodule.backward(lambda: ((m(x) - y) ** 2).mean())
        o.step()
        after(x)
        return loss

    return step


def test_state_reached_only_through_an_unwalked_path_is_found_while_tracing():
    tm, jm, topt, jopt = pair("sgd_momentum")
    step = jaxmodule.compile(make_registry_step(jm, jopt))
    run_both(tm, jm, topt, jopt, step, steps=3)


def test_no_tracer_is_left_in_captured_objects():
    _, jm, _, jopt = pair("adam")
    step = jaxmodule.compile(make_step(jm, jopt))
    x, y = batch(0)
    step(jnp.asarray(x), jnp.asarray(y))
    for m in jm.modules():
        for v in vars(m).values():
            assert not any(
                isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(v)
            )
    assert np.isfinite(np.asarray(jm[0].weight)).all()
    assert not any(
        isinstance(leaf, jax.core.Tracer)
        for leaf in jax.tree_util.tree_leaves(jopt.state_dict()["state"])
    )


@pytest.mark.parametrize("sched", ["step", "onecycle"])
def test_scheduler_stepped_inside_the_compiled_step_matches_torch(sched):
    """Per-batch schedulers (OneCycleLR) step inside the training step in torch code."""
    tm, jm, topt, jopt = pair("sgd_momentum")
    if sched == "step":
        ts = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.3)
        js = optim.lr_scheduler.StepLR(jopt, step_size=2, gamma=0.3)
    else:
        ts = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.5, total_steps=10)
        js = optim.lr_scheduler.OneCycleLR(jopt, max_lr=0.5, total_steps=10)

    step = jaxmodule.compile(make_step(jm, jopt, after=lambda x: js.step()))
    for i in range(6):
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        ts.step()
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), tl)
        assert js.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-6)
        assert_same_state(tm, jm, topt, jopt)
    assert step.trace_count == 1


def test_scheduler_in_the_step_survives_train_eval_switches_and_notices_a_rebinding():
    """A program whose scheduler step is deferred is reused after `model.train()` (no retrace,
    fast path kept), and a new scheduler bound to the same global name is the one stepped."""
    tm, jm, topt, jopt = pair("sgd_momentum")
    ts = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.3)
    scheds = {"current": optim.lr_scheduler.StepLR(jopt, step_size=2, gamma=0.3)}

    def train_step(x, y):
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        jopt.step()
        scheds["current"].step()
        return loss

    step = jaxmodule.compile(train_step)
    for i in range(6):
        jm.train()  # a structural no-op that re-plans the layout: the program is reused
        tm.train()
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        ts.step()
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), tl)
        assert jopt.param_groups[0]["lr"] == pytest.approx(ts.get_last_lr()[0], rel=1e-6)
    assert step.trace_count == 1 and step._fast is not None
    old = scheds["current"]
    scheds["current"] = optim.lr_scheduler.ExponentialLR(jopt, gamma=0.5)
    lr = jopt.param_groups[0]["lr"]
    x, y = batch(7)
    step(jnp.asarray(x), jnp.asarray(y))
    assert jopt.param_groups[0]["lr"] == pytest.approx(lr * 0.5, rel=1e-6)
    assert old.last_epoch == 6  # the replaced scheduler was not stepped again


def test_scheduler_stepped_before_the_optimizer_in_a_compiled_step_is_refused():
    _, jm, _, jopt = pair("sgd_momentum")
    js = optim.lr_scheduler.StepLR(jopt, step_size=1)

    @jaxmodule.compile
    def step(x, y):
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        js.step()
        jopt.step()
        return loss

    x, y = batch(0)
    with pytest.raises(
        RuntimeError, match=r"lr_scheduler.step\(\) was called before optimizer.step\(\)"
    ):
        step(jnp.asarray(x), jnp.asarray(y))
    assert js.last_epoch == 0 and jopt.param_groups[0]["lr"] == 0.1


def test_compiling_a_module_object_as_torch_compile_does():
    """`model = jaxmodule.compile(model)`, torch's habit: the module is compiled in place and
    returned, trains with BatchNorm statistics written back, and keeps its state_dict keys."""
    tm, jm, topt, jopt = pair("sgd_momentum")
    compiled = jaxmodule.compile(jm)
    assert compiled is jm
    for i in range(3):
        x, y = batch(i)
        torch_step(tm, topt, x, y)
        jopt.zero_grad()
        jaxmodule.backward(
            lambda m, x, y: ((m(x) - y) ** 2).mean(), compiled, jnp.asarray(x), jnp.asarray(y)
        )
        jopt.step()
        assert_same_state(tm, jm, topt, jopt)
    assert list(jm.state_dict()) == list(tm.state_dict())
