"""All or nothing: a compiled call that raises leaves every reached object exactly as before,
no tracer escapes into any user object, and the next correct call matches torch."""

import types

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn, optim

from tests.compile.test_captured_state import (
    assert_same_state,
    batch,
    make_registry_step,
    make_step,
    pair,
    torch_step,
)
from tests.helpers import assert_close


def snapshot(model, opt):
    """Everything observable about the model, its grads, the optimizer and the generator."""
    return {
        "model": {k: np.array(v) for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else np.array(p.grad) for p in model.parameters()],
        "classes": [type(p) for p in model.parameters()],
        # (derived caches such as the pytree plan `_jm_tree` may come and go)
        "attrs": [
            (type(m), sorted(k for k in vars(m) if k not in ("_jm_tree", "_compiled_call_impl")))
            for m in model.modules()
        ],
        "opt": jax.tree_util.tree_map(np.array, opt.state_dict()),
        "groups": [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups],
        "generator": np.array(jaxmodule.default_generator.get_state()),
    }


def assert_snapshot_equal(a, b):
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k], err_msg=k)
    for ga, gb in zip(a["grads"], b["grads"]):
        assert (ga is None) == (gb is None)
        if ga is not None:
            np.testing.assert_array_equal(ga, gb)
    assert a["classes"] == b["classes"] and a["attrs"] == b["attrs"] and a["groups"] == b["groups"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, a["opt"], b["opt"])
    np.testing.assert_array_equal(a["generator"], b["generator"])


def assert_no_tracer_anywhere(*objects):
    def leaves(x):
        return jax.tree_util.tree_leaves(x, is_leaf=lambda v: isinstance(v, jax.core.Tracer))

    for obj in objects:
        mods = obj.modules() if isinstance(obj, nn.Module) else [obj]
        for m in mods:
            for name, v in vars(m).items():
                assert not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves(v)), name
        if isinstance(obj, nn.Module):
            for p in [*obj.parameters(), *obj.buffers()]:
                assert not isinstance(p._value, jax.core.Tracer)
                assert not isinstance(p.grad, jax.core.Tracer)
                assert not any(isinstance(v, jax.core.Tracer) for v in vars(p).values())
    assert not isinstance(jaxmodule.default_generator.get_state(), jax.core.Tracer)


def then_train_correctly(tm, jm, topt, jopt, step):
    for i in range(2):
        x, y = batch(10 + i)
        assert_close(step(jnp.asarray(x), jnp.asarray(y)), torch_step(tm, topt, x, y))
        assert_same_state(tm, jm, topt, jopt)
    np.asarray(jm(jnp.ones((3, 4))))  # and eagerly


def raise_if(condition):
    def after(x):
        if condition(x):
            raise ValueError("user error after the update")

    return after


@pytest.mark.parametrize("when", ["first call", "retrace for a new shape"])
def test_step_that_updates_state_then_raises_changes_nothing(when):
    tm, jm, topt, jopt = pair("adam")
    fail_rows = 16 if when == "first call" else 5
    compiled = jaxmodule.compile(make_step(jm, jopt, raise_if(lambda x: x.shape[0] == fail_rows)))
    if when != "first call":
        x, y = batch(0)
        compiled(jnp.asarray(x), jnp.asarray(y))
        torch_step(tm, topt, x, y)
    before = snapshot(jm, jopt)
    x, y = batch(1, n=fail_rows)
    with pytest.raises(ValueError, match="user error after the update"):
        compiled(jnp.asarray(x), jnp.asarray(y))
    assert_snapshot_equal(before, snapshot(jm, jopt))
    assert_no_tracer_anywhere(jm, jopt)
    ok = jaxmodule.compile(make_step(jm, jopt))
    then_train_correctly(tm, jm, topt, jopt, ok)


def test_step_whose_tracing_fails_changes_nothing():
    tm, jm, topt, jopt = pair("sgd_momentum")
    jopt.zero_grad()
    jaxmodule.backward(lambda: jm(jnp.ones((2, 4))).sum())  # grads present before the call
    tm(torch.ones(2, 4)).sum().backward()  # (same BatchNorm statistics update in torch)
    torch_grads_before = [np.array(p.grad) for p in jm.parameters()]

    @jaxmodule.compile
    def step(x, y):
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())  # BatchNorm stats written
        jopt.step()
        return loss + jnp.ones(3) @ jnp.ones(4)  # a shape error while tracing

    before = snapshot(jm, jopt)
    x, y = batch(0)
    with pytest.raises(TypeError):
        step(jnp.asarray(x), jnp.asarray(y))
    assert_snapshot_equal(before, snapshot(jm, jopt))
    for p, g in zip(jm.parameters(), torch_grads_before):
        np.testing.assert_array_equal(np.asarray(p.grad), g)
    assert_no_tracer_anywhere(jm, jopt)
    jopt.zero_grad()
    topt.zero_grad()
    then_train_correctly(tm, jm, topt, jopt, jaxmodule.compile(make_step(jm, jopt)))


def test_refused_structural_change_changes_nothing():
    tm, jm, topt, jopt = pair("sgd_momentum")

    @jaxmodule.compile
    def step(x, y):
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        jopt.step()
        jm.extra = nn.Linear(2, 2)  # registering a submodule inside a compiled step
        return loss

    before = snapshot(jm, jopt)
    x, y = batch(0)
    with pytest.raises(
        RuntimeError,
        match=r"structure of a module changed inside a compiled step "
        r"\(Sequential._modules changed\)",
    ):
        step(jnp.asarray(x), jnp.asarray(y))
    assert "extra" not in jm._modules
    assert_snapshot_equal(before, snapshot(jm, jopt))
    assert_no_tracer_anywhere(jm, jopt)
    then_train_correctly(tm, jm, topt, jopt, jaxmodule.compile(make_step(jm, jopt)))


def test_lazy_module_in_a_compiled_step_is_refused_with_the_fix_and_changes_nothing():
    lazy = nn.Sequential(nn.LazyLinear(3), nn.ReLU())

    def step(x):
        return lazy(x)

    with pytest.raises(RuntimeError, match=r"`lazy.0.weight` is not initialized.*once eagerly"):
        jaxmodule.compile(step)(jnp.ones((2, 5)))
    assert isinstance(lazy[0].weight, nn.parameter.UninitializedParameter)
    assert_no_tracer_anywhere(lazy)
    assert lazy(jnp.ones((2, 5))).shape == (2, 3)


class MaskedLM(nn.Module):
    """word_language_model's habit: a mask computed in forward and cached on the module."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.src_mask = None

    def forward(self, x):
        n = x.shape[0]
        if self.src_mask is None or self.src_mask.shape[0] != n:
            self.src_mask = jnp.tril(jnp.ones((n, n)))
        return self.src_mask @ self.lin(x)


def test_array_attribute_cached_by_forward_works_and_ends_concrete():
    model = MaskedLM()
    compiled = jaxmodule.compile(lambda m, x: m(x))
    for n in (5, 5, 5, 3, 3):
        x = jnp.asarray(np.random.default_rng(n).standard_normal((n, 4)), jnp.float32)
        out = compiled(model, x)
        assert not isinstance(model.src_mask, jax.core.Tracer)
        np.testing.assert_array_equal(np.asarray(model.src_mask), np.tril(np.ones((n, n))))
        expected = np.tril(np.ones((n, n))) @ np.asarray(model.lin(x))
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)
    # per length: the trace that assigns the mask, then one that reads the cached mask (a new
    # length first retraces the old program, finds the assignment and discovers again)
    assert compiled.trace_count <= 5
    assert_no_tracer_anywhere(model)


def test_traced_value_stored_in_a_plain_object_is_refused_with_the_fix():
    _, jm, _, jopt = pair("sgd_momentum")
    log = types.SimpleNamespace(last_loss=None)
    history = []

    @jaxmodule.compile
    def step(x, y):
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        jopt.step()
        log.last_loss = loss
        return loss

    @jaxmodule.compile
    def step2(x, y):
        loss = ((jm(x) - y) ** 2).mean()
        history.append(loss)
        return loss

    before = snapshot(jm, jopt)
    x, y = batch(0)
    with pytest.raises(
        RuntimeError,
        match=r"stored a traced value in `SimpleNamespace.last_loss`.*"
        r"Return the value from the step",
    ):
        step(jnp.asarray(x), jnp.asarray(y))
    assert log.last_loss is None
    with pytest.raises(RuntimeError, match="stored a traced value in a list"):
        step2(jnp.asarray(x), jnp.asarray(y))
    assert history == []
    assert_snapshot_equal(before, snapshot(jm, jopt))
    assert_no_tracer_anywhere(jm, jopt)


def test_torch_checks_the_same_refusal_inputs():
    """The refused-step error names what changed, like torch's own structural errors do."""
    m = nn.Linear(2, 2)

    def bad(x):
        m.register_buffer("b", x)
        return m(x)

    with pytest.raises(RuntimeError, match=r"Linear._buffers changed"):
        jaxmodule.compile(bad)(jnp.ones((1, 2)))
    assert "b" not in m._buffers
    t = torch.nn.Linear(2, 2)  # torch accepts it eagerly; the compiled step refuses it honestly
    t.register_buffer("b", torch.ones(1, 2))
    assert "b" in dict(t.named_buffers())


def test_optimizer_reached_only_while_tracing_is_restored_when_the_step_fails():
    tm, jm, topt, jopt = pair("adam")
    step = jaxmodule.compile(make_registry_step(jm, jopt, raise_if(lambda x: x.shape[0] == 7)))

    before = snapshot(jm, jopt)
    x, y = batch(0, n=7)
    with pytest.raises(ValueError, match="user error after the update"):
        step(jnp.asarray(x), jnp.asarray(y))
    assert_snapshot_equal(before, snapshot(jm, jopt))
    assert_no_tracer_anywhere(jm, jopt)
    then_train_correctly(tm, jm, topt, jopt, step)


def test_failed_call_does_not_poison_the_next_one():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    calls = {"n": 0}

    @jaxmodule.compile
    def step(x):
        opt.zero_grad()
        loss = jaxmodule.backward(lambda: model(x).sum())
        opt.step()
        calls["n"] += 1  # a reached dict: rolled back with everything else
        if x.shape[0] == 1:
            raise KeyboardInterrupt  # even a non-Exception interruption rolls back
        return loss

    w = np.array(model.weight)
    with pytest.raises(KeyboardInterrupt):
        step(jnp.ones((1, 3)))
    np.testing.assert_array_equal(np.asarray(model.weight), w)
    assert calls == {"n": 0}
    step(jnp.ones((2, 3)))
    np.testing.assert_allclose(np.asarray(model.weight), w - 0.1 * 2.0, rtol=1e-6)


def test_traced_learning_rate_written_into_a_param_group_is_refused_with_the_fix():
    _, jm, _, jopt = pair("sgd_momentum")

    @jaxmodule.compile
    def step(x, y, lr):
        for g in jopt.param_groups:
            g["lr"] = lr
        jopt.zero_grad()
        loss = jaxmodule.backward(lambda: ((jm(x) - y) ** 2).mean())
        jopt.step()
        return loss

    before = snapshot(jm, jopt)
    x, y = batch(0)
    with pytest.raises(
        RuntimeError, match=r"\['lr'\] was set to a traced value.*outside the compiled step"
    ):
        step(jnp.asarray(x), jnp.asarray(y), 0.05)
    assert_snapshot_equal(before, snapshot(jm, jopt))
    assert jopt.param_groups[0]["lr"] == 0.1


def test_a_detached_parameter_outlives_a_donating_compiled_step() -> None:
    """`before = p.detach()` then compiled steps: torch's `before` stays readable (it shares
    memory); here it keeps the values of the moment (arrays are immutable) instead of being a
    donated, deleted buffer. Compared with torch through the values after one step."""

    torch.manual_seed(0)
    ref = torch.nn.Linear(3, 2)
    model = jaxmodule.nn.Linear(3, 2)
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    opt = jaxmodule.optim.SGD(model.parameters(), lr=0.1)
    topt = torch.optim.SGD(ref.parameters(), lr=0.1)

    @jaxmodule.compile
    def step(x):
        opt.zero_grad()
        jaxmodule.backward(lambda: model(x).sum())
        opt.step()

    x = np.ones((4, 3), np.float32)
    step(jnp.asarray(x))
    topt.zero_grad()
    ref(torch.from_numpy(x)).sum().backward()
    topt.step()
    before = model.weight.detach()
    want = ref.weight.detach().numpy().copy()
    step(jnp.asarray(x))
    step(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(before), want, rtol=1e-6)
    assert not np.allclose(np.asarray(model.weight), want)
