"""Full backward hooks and backward pre-hooks against torch, eagerly and compiled."""

import warnings

import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn

from tests.helpers import assert_close, randn, to_numpy


def build(kind):
    if kind == "linear":
        t, j, shape = torch.nn.Linear(4, 3), nn.Linear(4, 3), (5, 4)
    elif kind == "conv":
        t, j, shape = (
            torch.nn.Conv2d(2, 3, 3, padding=1),
            nn.Conv2d(2, 3, 3, padding=1),
            (2, 2, 5, 5),
        )
    elif kind == "relu":
        t, j, shape = torch.nn.ReLU(), nn.ReLU(), (4, 6)
    else:
        t = torch.nn.Sequential(
            torch.nn.Linear(4, 5), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(5, 2))
        )
        j = nn.Sequential(nn.Linear(4, 5), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
        shape = (3, 4)
    j.load_state_dict(t.state_dict())
    return t, j, shape


def recorder(log, scale=None):
    def hook(module, grad_input, grad_output):
        log.append(
            (
                [None if g is None else to_numpy(g) for g in grad_input],
                [to_numpy(g) for g in grad_output],
            )
        )
        if scale is not None:
            return tuple(None if g is None else g * scale for g in grad_input)
        return None

    return hook


def compare_logs(tlog, jlog):
    assert len(tlog) == len(jlog) > 0
    for (tgi, tgo), (jgi, jgo) in zip(tlog, jlog):
        assert [g is None for g in tgi] == [g is None for g in jgi]
        for a, b in zip(jgi, tgi):
            if b is not None:
                assert_close(a, b)
        assert len(tgo) == len(jgo)
        for a, b in zip(jgo, tgo):
            assert_close(a, b)


def hooked_targets(t, j, kind):
    if kind == "sequential":
        return [(t, j), (t[1], j[1]), (t[1][0], j[1][0])]
    return [(t, j)]


def run_torch(t, x, requires_grad=True):
    xt = torch.tensor(x, requires_grad=requires_grad)
    (t(xt) ** 2).sum().backward()
    return xt.grad


@pytest.mark.parametrize("kind", ["linear", "conv", "relu", "sequential"])
@pytest.mark.parametrize("compiled", [False, True])
def test_full_backward_hook_arguments_equal_torch(kind, compiled):
    t, j, shape = build(kind)
    tlog, jlog = [], []
    for tm, jm in hooked_targets(t, j, kind):
        tm.register_full_backward_hook(recorder(tlog))
        jm.register_full_backward_hook(recorder(jlog))
    x = randn(*shape)
    run_torch(t, x)

    def loss(model, x):
        return (model(x) ** 2).sum()

    fn = jaxmodule.grad(loss, argnums=(0, 1))
    if compiled:
        fn = jaxmodule.compile(fn)
    fn(j, jnp.asarray(x))
    compare_logs(tlog, jlog)


@pytest.mark.parametrize("compiled", [False, True])
def test_rescaling_grad_input_changes_upstream_parameter_grads_as_torch(compiled):
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    j = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    j.load_state_dict(t.state_dict())
    t[2].register_full_backward_hook(recorder([], scale=3.0))
    j[2].register_full_backward_hook(recorder([], scale=3.0))
    x = randn(6, 3)
    (t(torch.tensor(x)) ** 2).sum().backward()
    step = lambda m: jaxmodule.backward(lambda m: (m(jnp.asarray(x)) ** 2).sum(), m)  # noqa: E731
    if compiled:
        step = jaxmodule.compile(step, keep_grads=True)
    step(j)
    for tp, jp in zip(t.parameters(), j.parameters()):
        assert_close(jp.grad, tp.grad)


@pytest.mark.parametrize("compiled", [False, True])
def test_backward_pre_hook_replaces_grad_output(compiled):
    t, j, shape = build("linear")
    seen_t, seen_j = [], []

    def pre(log):
        def hook(module, grad_output):
            log.append(to_numpy(grad_output[0]))
            return (grad_output[0] * 0.5,)

        return hook

    t.register_full_backward_pre_hook(pre(seen_t))
    j.register_full_backward_pre_hook(pre(seen_j))
    x = randn(*shape)
    xg_t = run_torch(t, x)
    fn = jaxmodule.grad(lambda m, x: (m(x) ** 2).sum(), argnums=(0, 1))
    if compiled:
        fn = jaxmodule.compile(fn)
    gm, gx = fn(j, jnp.asarray(x))
    assert_close(seen_j[0], seen_t[0])
    assert_close(gx, xg_t)
    assert_close(gm.weight._value, t.weight.grad)


def test_hook_on_module_whose_input_needs_no_grad_gets_none_and_warns():
    t, j, shape = build("linear")
    tlog, jlog = [], []
    t.register_full_backward_hook(recorder(tlog))
    j.register_full_backward_hook(recorder(jlog))
    x = randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_torch(t, x, requires_grad=False)
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        jaxmodule.grad(lambda m: (m(jnp.asarray(x)) ** 2).sum())(j)
    compare_logs(tlog, jlog)
    assert jlog[0][0] == [None]


def test_removed_hook_is_not_called_and_wrong_length_raises():
    _, j, shape = build("linear")
    calls = []
    h = j.register_full_backward_hook(lambda m, gi, go: calls.append(1))
    h.remove()
    jaxmodule.grad(lambda m, x: m(x).sum(), argnums=(0, 1))(j, jnp.ones(shape))
    assert calls == []
    j.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="invalid number of grad_input"):
        jaxmodule.grad(lambda m, x: m(x).sum(), argnums=(0, 1))(j, jnp.ones(shape))


def test_mixing_legacy_and_full_hooks_raises_like_torch():
    t, j = torch.nn.Linear(2, 2), nn.Linear(2, 2)
    t.register_full_backward_hook(lambda *a: None)
    j.register_full_backward_hook(lambda *a: None)
    with pytest.raises(RuntimeError) as te:
        t.register_backward_hook(lambda *a: None)
    with pytest.raises(RuntimeError) as je:
        j.register_backward_hook(lambda *a: None)
    assert str(je.value) == str(te.value)


def test_observing_hook_sees_real_values_under_compile():
    _, j, shape = build("linear")
    norms = []
    j.register_full_backward_hook(lambda m, gi, go: norms.append(float(jnp.linalg.norm(go[0]))))
    step = jaxmodule.compile(
        lambda m, x: jaxmodule.grad(lambda m, x: (m(x) ** 2).sum(), argnums=(0, 1))(m, x)
    )
    x = jnp.asarray(randn(*shape))
    step(j, x)
    step(j, x)
    expected = float(jnp.linalg.norm(2 * j(x)))
    assert len(norms) == 2
    np.testing.assert_allclose(norms, [expected, expected], rtol=1e-5)
