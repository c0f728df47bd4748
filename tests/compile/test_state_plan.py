"""How optimizer (and other `Stateful`) state travels through a compiled step
(`jaxmodule/_compile/_states.py`): only the leaves a step writes are donated and returned, the
fast path keeps the leaves of its last call while the object's value version stands still, and
every change of an optimizer's options between steps (new state, a static option, a new group,
a loaded state_dict, a scheduler's new learning rate) is seen, as torch sees it. (Options torch itself cannot toggle once state exists, such as `amsgrad`, are not
cases.)

Each differential case runs the same steps with torch (eager) and jaxmodule (compiled), changes
the optimizers the same way between steps, and compares losses, parameters, buffers and optimizer
state after every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxmodule
import pytest
import torch
from jaxmodule import nn, optim
from jaxmodule._compile import CompiledFunction
from jaxmodule._stateful import Stateful

from tests.compile.test_captured_state import assert_same_state, batch, make_step, torch_step
from tests.helpers import assert_close


def _pair(opt: str, **kw):
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    jm = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    jm.load_state_dict(tm.state_dict())
    return (
        tm,
        jm,
        getattr(torch.optim, opt)(tm.parameters(), **kw),
        getattr(optim, opt)(jm.parameters(), **kw),
    )


def _compiled(jm, jopt):
    return jaxmodule.compile(make_step(jm, jopt))


def _set(name, value):
    def change(topt, jopt, tm, jm):
        for o in (topt, jopt):
            o.param_groups[0][name] = value

    return change


def _load_torch_state(topt, jopt, tm, jm):
    jopt.load_state_dict(topt.state_dict())


CHANGES = {
    "momentum 0 -> 0.9 (new state)": ("SGD", {"lr": 0.1}, _set("momentum", 0.9)),
    "nesterov on": ("SGD", {"lr": 0.1, "momentum": 0.9}, _set("nesterov", True)),
    "weight_decay 0 -> 0.1": ("Adam", {"lr": 0.01}, _set("weight_decay", 0.1)),
    "lr 0.01 -> 0.003 (a value)": ("Adam", {"lr": 0.01}, _set("lr", 0.003)),
    "maximize on": ("Adam", {"lr": 0.01}, _set("maximize", True)),
    "dampening 0 -> 0.5": ("SGD", {"lr": 0.1, "momentum": 0.9}, _set("dampening", 0.5)),
    "rmsprop alpha 0.99 -> 0.9": ("RMSprop", {"lr": 0.01}, _set("alpha", 0.9)),
    "load_state_dict from torch": ("Adam", {"lr": 0.01}, _load_torch_state),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_an_option_changed_between_compiled_steps_takes_effect_as_in_torch(name):
    opt, kw, change = CHANGES[name]
    tm, jm, topt, jopt = _pair(opt, **kw)
    step = _compiled(jm, jopt)
    for i in range(5):
        if i == 2:
            change(topt, jopt, tm, jm)
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        jl = step(jnp.asarray(x), jnp.asarray(y))
        assert_close(jl, tl)
        assert_same_state(tm, jm, topt, jopt)


def test_a_param_group_added_between_compiled_steps_is_stepped_as_in_torch():
    """The optimizer starts with the first layer only; the last layer joins as a second group
    with its own lr after two compiled steps."""
    tm, jm, _, _ = _pair("SGD", lr=0.1)
    topt = torch.optim.SGD(tm[0].parameters(), lr=0.1, momentum=0.9)
    jopt = optim.SGD(jm[0].parameters(), lr=0.1, momentum=0.9)
    step = _compiled(jm, jopt)
    for i in range(5):
        if i == 2:
            topt.add_param_group({"params": list(tm[2].parameters()), "lr": 0.05})
            jopt.add_param_group({"params": list(jm[2].parameters()), "lr": 0.05})
        x, y = batch(i)
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), torch_step(tm, topt, x, y))
        assert_same_state(tm, jm, topt, jopt)


@pytest.mark.parametrize("opt", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_state_a_step_only_reads_is_neither_donated_nor_replaced(opt):
    """A learning rate the step reads stays the very array the optimizer holds (not donated, not
    returned); the moments it writes are new arrays after every call."""
    kw = {"lr": 0.01, "momentum": 0.9} if opt == "SGD" else {"lr": 0.01}
    _, jm, _, jopt = _pair(opt, **kw)
    step = _compiled(jm, jopt)
    x, y = (jnp.asarray(a) for a in batch(0))
    step(x, y)
    for _ in range(3):
        before = jax.tree_util.tree_leaves(jopt._jm_state_get())
        lr_before = jopt._hp[0]["lr"]
        step(x, y)
        after = jax.tree_util.tree_leaves(jopt._jm_state_get())
        assert jopt._hp[0]["lr"] is lr_before and not lr_before.is_deleted()
        plan = step._entries[0].program.states
        assert plan.written, "the step writes moments or step counts"
        assert all(after[g] is not before[g] for g in plan.written)
        assert all(after[g] is before[g] for g in plan.read)
        assert all(not before[g].is_deleted() for g in plan.read)
    assert step.trace_count == 1


class _Counter(Stateful):
    """A user's own Stateful object: no `_jm_state_version`, so the fast path flattens it."""

    def __init__(self) -> None:
        self.state = {"n": jnp.zeros(())}

    def _jm_state_get(self):
        return dict(self.state)

    def _jm_state_set(self, state):
        self.state = dict(state)


def test_an_unversioned_stateful_object_is_checked_by_structure_each_call():
    c = _Counter()

    @jaxmodule.compile
    def step(x):
        c.state = {**c.state, "n": c.state["n"] + x.sum()}
        return c.state["n"]

    x = jnp.ones(3)
    for i in range(3):
        assert float(step(x)) == 3.0 * (i + 1)
    assert step.trace_count == 1
    c.state = {**c.state, "m": jnp.zeros(())}  # a new leaf: the step must see the new structure
    assert float(step(x)) == 12.0 and set(c.state) == {"n", "m"}
    assert step.trace_count == 2


def test_a_retrace_that_writes_state_the_program_only_read_discovers_again():
    """Discovered on a small input the step only reads the counter; a bigger input (a retrace
    inside the same program) writes it, which the plan must not drop."""
    c = _Counter()

    @jaxmodule.compile
    def step(x):
        if x.shape[0] > 2:
            c.state = {"n": c.state["n"] + 1.0}
        return c.state["n"] * x.sum()

    assert float(step(jnp.ones(2))) == 0.0
    assert float(step(jnp.ones(4))) == 4.0 and float(c.state["n"]) == 1.0
    assert float(step(jnp.ones(4))) == 8.0 and float(c.state["n"]) == 2.0
    assert float(step(jnp.ones(2))) == 4.0 and float(c.state["n"]) == 2.0


@pytest.mark.parametrize("opt", ["SGD", "Adam", "Adagrad", "NAdam"])
def test_kept_and_flattened_state_reads_train_identically(opt, monkeypatch):
    """The fast path's two ways of reading state (leaves kept from the last call for an object
    with a value version, flatten and compare on every call otherwise) give the same training,
    with two param groups and a learning rate set between steps."""
    results = []
    for kept in (True, False):
        if not kept:
            monkeypatch.setattr(optim.Optimizer, "_jm_value_version", lambda self: None)
        torch.manual_seed(0)
        _, jm, _, _ = _pair(opt, lr=0.01)
        groups = [
            {"params": list(jm[0].parameters())},
            {"params": list(jm[2].parameters()), "lr": 0.02},
        ]
        jopt = getattr(optim, opt)(groups, lr=0.01)
        step = _compiled(jm, jopt)
        for i in range(4):
            step(*(jnp.asarray(a) for a in batch(i)))
            jopt.param_groups[1]["lr"] = 0.02 / (i + 2)
        assert step.trace_count == 1
        assert ("global W0" in step._fast.__jm_source__) is kept
        results.append([jnp.asarray(v) for v in jm.state_dict().values()])
    for a, b in zip(*results):
        assert (a == b).all()


def _general_calls(monkeypatch) -> list:
    """Records each call that took the general path (not the generated fast path)."""
    calls: list = []
    run = CompiledFunction._run

    def counted(self, entry, args, kwargs):
        calls.append(entry)
        return run(self, entry, args, kwargs)

    monkeypatch.setattr(CompiledFunction, "_run", counted)
    return calls


SCHEDULED = {
    "SGD": ({"lr": 0.05, "momentum": 0.9}, True),
    "Adam": ({"lr": 0.01}, True),  # OneCycleLR cycles Adam's beta1
    "RMSprop": ({"lr": 0.01}, False),
    "Adagrad": ({"lr": 0.05}, False),
}


@pytest.mark.parametrize("opt", list(SCHEDULED))
def test_a_per_step_scheduler_keeps_the_fast_path_and_matches_torch(opt, monkeypatch):
    """OneCycleLR sets new options on both param groups after every step (inside the compiled
    step, as torch code does). 20 steps match torch, and every call after the first takes the
    fast path: a new learning rate is a new leaf the fast path reads, not a new plan."""
    kw, cycle = SCHEDULED[opt]
    tm, jm, _, _ = _pair(opt, **kw)
    optimizers = []
    for lib, m in ((torch.optim, tm), (optim, jm)):
        groups = [{"params": list(m[0].parameters())}, {"params": list(m[2].parameters())}]
        o = getattr(lib, opt)(groups, **kw)
        sched = lib.lr_scheduler.OneCycleLR(
            o, max_lr=[0.1, 0.05], total_steps=20, cycle_momentum=cycle
        )
        optimizers.append((o, sched))
    (topt, tsched), (jopt, jsched) = optimizers
    calls = _general_calls(monkeypatch)
    step = jaxmodule.compile(make_step(jm, jopt, after=lambda x: jsched.step()))
    for i in range(20):
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        tsched.step()
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), tl)
    assert len(calls) == 1 and step.trace_count == 1
    assert [g["lr"] for g in jopt.param_groups] == pytest.approx(tsched.get_last_lr(), rel=1e-6)
    assert_same_state(tm, jm, topt, jopt)  # hands arrays out: after the counted calls


def test_an_eager_step_between_compiled_steps_is_seen_as_in_torch():
    """An eager `optimizer.step()` replaces the state arrays the fast path kept: the next
    compiled step must start from the eager step's moments, not from the kept ones."""
    tm, jm, topt, jopt = _pair("Adam", lr=0.01)
    step = _compiled(jm, jopt)
    for i in range(6):
        x, y = batch(i)
        tl = torch_step(tm, topt, x, y)
        if i == 3:
            jopt.zero_grad()
            jx, jy = jnp.asarray(x), jnp.asarray(y)
            loss = jaxmodule.backward(lambda jx=jx, jy=jy: ((jm(jx) - jy) ** 2).mean())
            jopt.step()
        else:
            loss = step(jnp.asarray(x), jnp.asarray(y))
        assert_close(loss, tl)
    assert_same_state(tm, jm, topt, jopt)


class _Scale(Stateful):
    """A user's Stateful object with both versions: `set` replaces the value and moves the
    value version, as the protocol asks."""

    def __init__(self) -> None:
        self.value, self.values = jnp.ones(()), 0

    def set(self, v: float) -> None:
        self.value, self.values = jnp.asarray(v, jnp.float32), self.values + 1

    def _jm_state_get(self):
        return {"scale": self.value}

    def _jm_state_set(self, state):
        self.value = state["scale"]
        self.values += 1

    def _jm_state_install(self, state):
        self.value = state["scale"]
        self.values += 1
        return self.values

    def _jm_state_version(self):
        return 0

    def _jm_value_version(self):
        return self.values


def test_a_stateful_object_with_a_value_version_is_read_again_only_when_it_moves(monkeypatch):
    s = _Scale()
    calls = _general_calls(monkeypatch)

    @jaxmodule.compile
    def step(x):
        return (x * s.value).sum()

    x = jnp.ones(3)
    assert float(step(x)) == 3.0 and float(step(x)) == 3.0
    s.set(2.0)
    assert float(step(x)) == 6.0
    s.set(0.5)
    assert float(step(x)) == 1.5 and float(step(x)) == 1.5
    assert len(calls) == 1 and step.trace_count == 1


def test_two_compiled_steps_sharing_one_optimizer_each_see_the_others_update(monkeypatch):
    """Two compiled steps (two losses) step the same optimizer in turn: each fast path must
    start from the state the other installed, never from leaves it kept from its own last call
    (those were donated by the other step's call)."""
    tm, jm, topt, jopt = _pair("Adam", lr=0.01)

    def make(power):
        @jaxmodule.compile
        def step(x, y):
            jopt.zero_grad()
            loss = jaxmodule.backward(lambda: (jnp.abs(jm(x) - y) ** power).mean())
            jopt.step()
            return loss

        return step

    steps = {2: make(2), 3: make(3)}
    calls = _general_calls(monkeypatch)
    for i in range(8):
        power = 2 if i % 2 == 0 else 3
        x, y = batch(i)
        topt.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)).abs() ** power).mean()
        tl.backward()
        topt.step()
        assert_close(steps[power](jnp.asarray(x), jnp.asarray(y)), tl)
        if i == 3:
            settled = len(calls)  # discovering the second step moved the first's versions
    assert steps[2].trace_count == 1 and steps[3].trace_count == 1
    assert len(calls) == settled  # then both stay on their fast paths
    assert_same_state(tm, jm, topt, jopt)


def test_optimizer_state_read_between_compiled_steps_stays_valid():
    """`optimizer.state[p]` hands out the moment arrays: the next compiled step (which donates
    the state it replaces) must not delete the arrays the caller holds."""
    tm, jm, topt, jopt = _pair("SGD", lr=0.1, momentum=0.9)
    step = _compiled(jm, jopt)
    held = []
    for i in range(4):
        x, y = batch(i)
        torch_step(tm, topt, x, y)
        step(jnp.asarray(x), jnp.asarray(y))
        held.append(
            (
                jopt.state[jm[0].weight]["momentum_buffer"],
                topt.state[tm[0].weight]["momentum_buffer"].clone(),
            )
        )
    for j, t in held:
        assert_close(j, t)


def test_two_optimizers_in_one_step_each_get_their_own_packed_options(monkeypatch):
    """Adam on the first layer and RMSprop on the last, both stepped in one compiled step, with
    their learning rates changed between steps: each optimizer's scalar options travel as its
    own packed vector, so the two must never be mixed up (the rebuild order is per object)."""
    tm, jm, _, _ = _pair("SGD", lr=0.1)
    topts = [torch.optim.Adam(tm[0].parameters(), lr=0.01), torch.optim.RMSprop(tm[2].parameters())]
    jopts = [optim.Adam(jm[0].parameters(), lr=0.01), optim.RMSprop(jm[2].parameters())]
    calls = _general_calls(monkeypatch)

    @jaxmodule.compile
    def step(x, y):
        for o in jopts:
            o.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        for o in jopts:
            o.step()
        return loss

    for i in range(6):
        if i == 3:
            for group in (*topts[1].param_groups, *jopts[1].param_groups):
                group["lr"] = 0.003
        x, y = batch(i)
        for o in topts:
            o.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        tl.backward()
        for o in topts:
            o.step()
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), tl)
    plan = step._entries[0].program.states
    assert [len(p) for p in plan.packs] == [6, 5]  # Adam: lr, betas, 1-betas, eps; RMSprop: 5
    assert len(calls) == 1 and step.trace_count == 1
    for topt, jopt in zip(topts, jopts):
        assert_same_state(tm, jm, topt, jopt)
