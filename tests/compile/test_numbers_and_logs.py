"""Python numbers in compiled steps (floats traced, ints/bools/strings static) and the
recompile log (`JAXMODULE_LOGS=recompiles` / `jaxmodule.set_logs`)."""

import logging

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn


def lm_pair():
    tm = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    jm = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    jm.load_state_dict(tm.state_dict())
    return tm, jm


@pytest.mark.parametrize("as_keyword", [False, True])
def test_five_float_learning_rates_match_torch_with_at_most_two_traces(as_keyword):
    """word_language_model's loop: a manual SGD update with a float lr annealed every epoch."""
    tm, jm = lm_pair()
    criterion, tcriterion = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    @jaxmodule.compile
    def train_step(x, y, lr):
        jm.zero_grad()
        loss = jaxmodule.backward(lambda: criterion(jm(x), y))
        for p in jm.parameters():
            p.data.add_(p.grad, alpha=-lr)
        return loss

    lr = 20.0
    for epoch in range(5):
        x = randn(8, 6, seed=epoch)
        y = np.random.default_rng(epoch).integers(0, 3, 8)
        tm.zero_grad()
        tl = tcriterion(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        with torch.no_grad():
            for p in tm.parameters():
                p.add_(p.grad, alpha=-lr)
        jl = (
            train_step(jnp.asarray(x), jnp.asarray(y), lr=lr)
            if as_keyword
            else train_step(jnp.asarray(x), jnp.asarray(y), lr)
        )
        assert_close(jl, tl)
        lr /= 4.0
    for tv, jv in zip(tm.state_dict().values(), jm.state_dict().values()):
        assert_close(jv, tv, rtol=1e-5, atol=1e-5)  # 5 steps at lr up to 20: absolute error grows
    assert train_step.trace_count <= 2


def test_ints_bools_and_strings_stay_static():
    lin = nn.Linear(4, 4)
    traced = []

    @jaxmodule.compile
    def f(x, n, flag, mode):
        traced.append((n, flag, mode))
        for _ in range(n):  # an int decides Python control flow
            x = lin(x)
        return x.sum() if mode == "sum" else x

    x = jnp.ones((2, 4))
    expected = lin(lin(x)).sum()
    assert_close(f(x, 2, True, "sum"), expected)
    assert_close(f(x, 2, True, "sum"), expected)
    assert f(x, 3, True, "none").shape == (2, 4)
    assert traced == [(2, True, "sum"), (3, True, "none")]


@pytest.fixture
def recompile_logs(caplog):
    jaxmodule.set_logs(recompiles=True)
    caplog.set_level(logging.INFO, logger="jaxmodule.compile")
    yield caplog
    jaxmodule.set_logs(recompiles=False)


def messages(caplog, level=logging.INFO):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "jaxmodule.compile" and r.levelno == level
    ]


def test_log_for_a_new_batch_shape(recompile_logs):
    model = nn.Linear(784, 10)
    step = jaxmodule.compile(lambda m, x: m(x).sum())
    step(model, jnp.ones((32, 784)))
    assert messages(recompile_logs) == []  # the first trace is not a recompile
    step(model, jnp.ones((16, 784)))
    (msg,) = messages(recompile_logs)
    assert "<lambda>" in msg and "argument 1: shape (32, 784) -> (16, 784)" in msg


def test_log_for_a_train_eval_switch(recompile_logs):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 2)))
    step = jaxmodule.compile(lambda m, x: m(x))
    step(model, jnp.ones((2, 4)))
    model[1].eval()
    step(model, jnp.ones((2, 4)))
    (msg,) = messages(recompile_logs)
    assert "module `1`: train -> eval" in msg and "module `1.0`: train -> eval" in msg
    assert "module `0`" not in msg


def test_log_for_a_changed_static_value_and_a_captured_global(recompile_logs):
    lin = nn.Linear(3, 3)

    def f(x, n=3):
        for _ in range(n):
            x = lin(x)
        return x

    step = jaxmodule.compile(f)
    step(jnp.ones((1, 3)), n=3)
    step(jnp.ones((1, 3)), n=4)
    (msg,) = messages(recompile_logs)
    assert "static argument `n`: 3 -> 4" in msg and "f" in msg


def test_warning_after_nine_traces_even_without_the_flag(caplog):
    caplog.set_level(logging.WARNING, logger="jaxmodule.compile")
    step = jaxmodule.compile(lambda x, n: x * n)
    for n in range(9):
        step(jnp.ones(2), n)
    assert step.trace_count == 9
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "traced 9 times" in warnings[0]
    assert messages(caplog) == []  # no INFO records without the flag
    step(jnp.ones(2), 9)
    assert len(messages(caplog, logging.WARNING)) == 1  # warned once


def test_environment_variable_turns_the_log_on(monkeypatch):
    from jaxmodule._compile import _log  # the variable is read at import; set_logs changes it later

    monkeypatch.setenv("JAXMODULE_LOGS", "graph_breaks,recompiles")
    assert _log._Settings().recompiles
    monkeypatch.setenv("JAXMODULE_LOGS", "")
    assert not _log._Settings().recompiles


def test_float_deciding_control_flow_gets_a_hint():
    lin = nn.Linear(2, 2)

    @jaxmodule.compile
    def f(x, p):
        return lin(x) if p > 0.5 else x

    with pytest.raises(jax.errors.ConcretizationTypeError) as info:
        f(jnp.ones((1, 2)), 0.7)
    assert "traces Python floats (argument 1)" in "".join(getattr(info.value, "__notes__", []))
