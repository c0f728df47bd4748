"""The generated fast path is the compiled function's `__call__` (`CompiledFunction._use_fast`):
each compiled function gets a class of its own, so two compiled steps, a copy, a compiled
method on two instances and a call that misses never run one another's program."""

from __future__ import annotations

import copy

import jax.numpy as jnp
import jaxmodule
import numpy as np
from jaxmodule import nn, optim
from jaxmodule._compile import CompiledFunction

from tests.helpers import randn


def _model(seed: int) -> nn.Module:
    jaxmodule.manual_seed(seed)
    return nn.Linear(3, 2)


def _reference(seed: int, steps: int) -> list[np.ndarray]:
    """The same training without compile: the parameters after `steps` SGD steps."""
    m = _model(seed)
    opt = optim.SGD(m.parameters(), lr=0.1)
    for i in range(steps):
        x = jnp.asarray(randn(4, 3, seed=i))
        opt.zero_grad()
        jaxmodule.backward(lambda x=x: (m(x) ** 2).mean())
        opt.step()
    return [np.asarray(p) for p in m.parameters()]


def _step_for(m: nn.Module) -> CompiledFunction:
    opt = optim.SGD(m.parameters(), lr=0.1)

    @jaxmodule.compile
    def step(x):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda: (m(x) ** 2).mean())
        opt.step()
        return loss

    return step


def _assert_params(m: nn.Module, expected: list[np.ndarray]) -> None:
    for p, e in zip(m.parameters(), expected):
        np.testing.assert_allclose(np.asarray(p), e, rtol=1e-6, atol=1e-7)


def test_two_compiled_steps_called_in_turn_each_train_their_own_model():
    a, b = _model(0), _model(1)
    step_a, step_b = _step_for(a), _step_for(b)
    for i in range(4):
        x = jnp.asarray(randn(4, 3, seed=i))
        step_a(x)
        step_b(x)
    assert step_a._fast is not None and step_b._fast is not None
    assert type(step_a) is not type(step_b)
    assert isinstance(step_a, CompiledFunction) and type(step_a).__name__ == "CompiledFunction"
    _assert_params(a, _reference(0, 4))
    _assert_params(b, _reference(1, 4))


def test_a_copy_compiles_afresh_and_the_original_keeps_its_fast_path():
    m = _model(0)
    step = _step_for(m)
    for i in range(2):
        step(jnp.asarray(randn(4, 3, seed=i)))
    for twin in (copy.copy(step), copy.deepcopy(step)):
        assert twin.trace_count == 0 and twin._fast is None
        assert type(twin) is CompiledFunction and twin.__name__ == "step"
    twin = copy.copy(step)
    twin(jnp.asarray(randn(4, 3, seed=2)))  # the same captured model, its own program
    step(jnp.asarray(randn(4, 3, seed=3)))
    assert twin.trace_count == 1 and step.trace_count == 1
    _assert_params(m, _reference(0, 4))


def test_a_compiled_method_serves_each_instance():
    class Trainer:
        def __init__(self, seed: int) -> None:
            self.model = _model(seed)
            self.opt = optim.SGD(self.model.parameters(), lr=0.1)

        @jaxmodule.compile
        def step(self, x):
            self.opt.zero_grad()
            loss = jaxmodule.backward(lambda: (self.model(x) ** 2).mean())
            self.opt.step()
            return loss

    t0, t1 = Trainer(0), Trainer(1)
    for i in range(3):
        x = jnp.asarray(randn(4, 3, seed=i))
        t0.step(x)
        t1.step(x)
    _assert_params(t0.model, _reference(0, 3))
    _assert_params(t1.model, _reference(1, 3))


def test_a_miss_takes_the_general_path_and_the_fast_path_comes_back():
    """A call the fast path cannot serve (a numpy input, a changed module mode) runs on the
    general path with the same result; the next plain call is fast again."""
    m = _model(0)
    step = _step_for(m)
    step(jnp.asarray(randn(4, 3, seed=0)))
    fast = step._fast
    assert fast is not None and type(step).__call__ is fast
    step(randn(4, 3, seed=1))  # numpy: not the fast path's exact type
    m.eval()  # a structural change: the fast path's counters miss
    step(jnp.asarray(randn(4, 3, seed=2)))
    m.train()
    step(jnp.asarray(randn(4, 3, seed=3)))
    assert type(step).__call__ is step._fast
    _assert_params(m, _reference(0, 4))


def test_an_error_inside_the_general_path_is_raised_once_and_not_swallowed():
    """A guard fails (the captured global was rebound) and the general path then raises the
    user's error: it reaches the caller as raised, not retried or hidden by the fast path."""
    state = {"scale": 2.0}

    @jaxmodule.compile
    def f(x):
        if state["scale"] is None:
            raise ValueError("scale missing")
        return x * state["scale"]

    x = jnp.ones(2)
    f(x)
    f(x)
    state["scale"] = None
    try:
        f(x)
    except ValueError as e:
        assert "scale missing" in str(e)
    else:
        raise AssertionError("the user's error was not raised")
    state["scale"] = 3.0
    np.testing.assert_array_equal(np.asarray(f(x)), [3.0, 3.0])
