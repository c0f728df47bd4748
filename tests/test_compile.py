"""`jaxmodule.compile` and `Module.compile`: write-back, recompilation, async dispatch, donation.

Differential parts compare compiled training against torch doing the same steps eagerly.
"""

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import nn, optim

from tests.helpers import assert_close, randn


class Counter(nn.Module):
    """A linear layer that also counts its calls in an integer buffer and keeps a float buffer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("calls", jnp.zeros((), jnp.int32))
        self.register_buffer("last_mean", jnp.zeros(()))

    def forward(self, x):
        y = self.fc(x)
        self.calls = self.calls + 1
        self.last_mean = y.mean()
        return y


def mse_step(model, opt, x, y):
    opt.zero_grad()
    loss = jaxmodule.backward(lambda m: ((m(x) - y) ** 2).mean(), model)
    opt.step()
    return loss


def torch_pair(momentum=0.9):
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    jm = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    jm.load_state_dict(tm.state_dict())
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-3)
    jopt = optim.SGD(jm.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-3)
    return tm, jm, topt, jopt


def test_compiled_batchnorm_training_matches_torch():
    tm, jm, topt, jopt = torch_pair()
    step = jaxmodule.compile(mse_step)
    for i in range(5):
        x, y = randn(16, 4, seed=i), randn(16, 2, seed=100 + i)
        topt.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        tl.backward()
        topt.step()
        jl = step(jm, jopt, jnp.asarray(x), jnp.asarray(y))
        assert_close(jl, tl)
    assert step.trace_count == 1
    tsd, jsd = tm.state_dict(), jm.state_dict()
    assert list(tsd) == list(jsd)
    for k in tsd:
        assert_close(jsd[k], tsd[k])
    # optimizer state (momentum buffers) written back too
    jstate = jopt.state_dict()["state"]
    for i, tp in enumerate(tm.parameters()):
        assert_close(jstate[i]["momentum_buffer"], topt.state[tp]["momentum_buffer"])


def test_compiled_weight_decay_switched_on_mid_training_matches_torch():
    """weight_decay 0 is no term at all (torch's `if weight_decay != 0`); turning it on changes
    the optimizer state's structure, so the compiled step retraces once and matches torch."""
    tm, jm, topt, jopt = torch_pair()
    for o in (topt, jopt):
        o.param_groups[0]["weight_decay"] = 0.0
    step = jaxmodule.compile(mse_step)
    for i in range(6):
        if i == 3:
            for o in (topt, jopt):
                o.param_groups[0]["weight_decay"] = 0.05
        x, y = randn(16, 4, seed=i), randn(16, 2, seed=100 + i)
        topt.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        tl.backward()
        topt.step()
        assert_close(step(jm, jopt, jnp.asarray(x), jnp.asarray(y)), tl)
    assert step.trace_count == 2
    for tv, jv in zip(tm.state_dict().values(), jm.state_dict().values()):
        assert_close(jv, tv)


def test_writes_back_assigned_buffers_and_generator():
    model = Counter()
    drop_model = nn.Sequential(model, nn.Dropout(0.5))
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = jaxmodule.compile(mse_step)
    key0 = np.asarray(jaxmodule.default_generator.get_state())
    x = jnp.ones((4, 3))
    step(drop_model, opt, x, jnp.zeros((4, 2)))
    expected_mean = float(model.fc(x).mean())  # the forward of the next step sees these weights
    step(drop_model, opt, x, jnp.zeros((4, 2)))
    assert int(model.calls) == 2
    assert model.calls.dtype == jnp.int32
    assert float(model.last_mean) == pytest.approx(expected_mean, rel=1e-5)
    assert not np.array_equal(np.asarray(jaxmodule.default_generator.get_state()), key0)


def test_compiled_equals_eager_with_dropout():
    """Same seed, same steps: compiled and eager training give the same parameters."""
    results = []
    for compiled in (False, True):
        jaxmodule.manual_seed(3)
        model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.3), nn.Linear(16, 1))
        opt = optim.Adam(model.parameters(), lr=1e-2)
        step = jaxmodule.compile(mse_step) if compiled else mse_step
        for i in range(4):
            step(model, opt, jnp.asarray(randn(8, 5, seed=i)), jnp.asarray(randn(8, 1, seed=9)))
        results.append({k: np.asarray(v) for k, v in model.state_dict().items()})
    for k in results[0]:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-5, atol=1e-6)


def test_recompiles_on_mode_structure_hook_and_dtype_change_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.2), nn.Linear(4, 1))
    fwd = jaxmodule.compile(lambda m, x: m(x))
    x = jnp.ones((2, 3))
    fwd(model, x)
    fwd(model, x)
    assert fwd.trace_count == 1
    nn.Linear(2, 2)  # an unrelated structural change elsewhere: no retrace
    fwd(model, x)
    assert fwd.trace_count == 1
    model.eval()
    out_eval = fwd(model, x)
    assert fwd.trace_count == 2
    np.testing.assert_allclose(out_eval, model[2](model[0](x)), rtol=1e-5)
    handle = model.register_forward_hook(lambda m, a, o: o * 0)
    assert np.all(np.asarray(fwd(model, x)) == 0)
    assert fwd.trace_count == 3
    handle.remove()
    fwd(model, x)
    assert fwd.trace_count == 3  # back to a structure already compiled
    model[2] = nn.Linear(4, 2)
    assert fwd(model, x).shape == (2, 2)
    assert fwd.trace_count == 4
    model.half()
    assert fwd(model, x.astype(jnp.float16)).dtype == jnp.float16


def test_async_dispatch_returns_before_the_work_ends():
    class Slow(nn.Module):
        def forward(self, x):
            return jax.lax.fori_loop(0, 60, lambda i, a: jnp.tanh(a @ a), x)

    fwd = jaxmodule.compile(lambda m, x: m(x))
    x = jnp.eye(1000) * 0.5
    fwd(Slow(), x).block_until_ready()  # compile
    out = fwd(Slow(), x)
    assert not out.is_ready()  # the call returned while the device is still computing
    out.block_until_ready()
    assert out.is_ready()


def test_donation_and_no_donation():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = jaxmodule.compile(mse_step)
    x, y = jnp.ones((2, 3)), jnp.zeros((2, 1))
    step(model, opt, x, y)
    old = model.weight._value
    step(model, opt, x, y)
    assert old.is_deleted()
    assert not model.weight._value.is_deleted()
    step2 = jaxmodule.compile(mse_step, donate=False)
    old = model.weight._value
    step2(model, opt, x, y)
    assert not old.is_deleted()


def test_forward_only_compile_does_not_donate_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    w = model[0].weight._value
    model.compile()
    x = jnp.asarray(randn(8, 3))
    y = model(x)
    y2 = model(x)
    assert not w.is_deleted()
    assert int(model[1].num_batches_tracked) == 2
    model.eval()
    ref = model[1](model[0](x))
    np.testing.assert_allclose(model(x), ref, rtol=1e-5, atol=1e-6)
    assert y.shape == y2.shape == (8, 4)


def test_module_compile_matches_torch_forward_and_buffers():
    tm = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6))
    jm = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    jm.load_state_dict(tm.state_dict())
    jm.compile()
    for i in range(3):
        x = randn(5, 4, seed=i)
        assert_close(jm(jnp.asarray(x)), tm(torch.tensor(x)))
    for k, v in tm.state_dict().items():
        assert_close(jm.state_dict()[k], v)


def test_keep_grads_and_accumulation():
    model = nn.Linear(3, 1)
    x = jnp.ones((2, 3))
    loss_fn = lambda m: m(x).sum()  # noqa: E731
    step = jaxmodule.compile(lambda m: jaxmodule.backward(loss_fn, m), keep_grads=True)
    step(model)
    assert_close(model.bias.grad, np.array([2.0]))
    step(model)  # gradients accumulate until zero_grad, as in torch
    assert_close(model.bias.grad, np.array([4.0]))
    model.zero_grad()
    assert model.bias.grad is None
    plain = jaxmodule.compile(lambda m: jaxmodule.backward(loss_fn, m))
    plain(model)
    assert model.bias.grad is None  # grads computed inside are not kept by default


def test_structure_change_inside_step_raises_and_keeps_state_concrete():
    model = nn.Linear(2, 2)
    before = {k: np.asarray(v) for k, v in model.state_dict().items()}

    def bad(m, x):
        m.extra = nn.Linear(2, 2)
        return m(x)

    with pytest.raises(RuntimeError, match="structure of a module changed inside a compiled step"):
        jaxmodule.compile(bad)(model, jnp.ones((1, 2)))
    for k in ("weight", "bias"):
        v = model.state_dict()[k]
        assert not isinstance(v, jax.core.Tracer)
        np.testing.assert_array_equal(np.asarray(v), before[k])
    assert not isinstance(jaxmodule.default_generator.get_state(), jax.core.Tracer)


def test_random_draw_inside_plain_jit_raises_with_the_fix():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with pytest.raises(RuntimeError, match=r"jaxmodule.compile\(lambda m, x: m\(x\)\)"):
        jax.jit(lambda m, x: m(x))(model, jnp.ones((1, 2)))
    assert not isinstance(jaxmodule.default_generator.get_state(), jax.core.Tracer)
    assert jaxmodule.compile(lambda m, x: m(x))(model, jnp.ones((1, 2))).shape == (1, 2)
    model.eval()
    assert jax.jit(lambda m, x: m(x))(model, jnp.ones((1, 2))).shape == (1, 2)


def test_python_values_are_static_and_retrace_when_they_change():
    calls = []

    def fn(m, x, scale, use_tanh=False, mode="sum"):
        calls.append(1)
        y = m(x) * scale
        if use_tanh:  # Python control flow on a flag, as in torch code
            y = jnp.tanh(y)
        return y.sum() if mode == "sum" else y.mean()

    model = nn.Linear(2, 2)
    step = jaxmodule.compile(fn)
    x = jnp.ones((3, 2))
    a = step(model, x, 2.0, use_tanh=True)
    np.testing.assert_allclose(a, jnp.tanh(model(x) * 2.0).sum(), rtol=1e-5)
    step(model, x, 2.0, use_tanh=True)
    assert step.trace_count == 1
    b = step(model, x, 3.0, use_tanh=False, mode="mean")
    np.testing.assert_allclose(b, (model(x) * 3.0).mean(), rtol=1e-5)
    assert step.trace_count == 2


def test_module_compile_with_keyword_flags():
    t = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    j = nn.MultiheadAttention(8, 2, batch_first=True)
    j.load_state_dict(t.state_dict())
    j.compile()
    q = randn(2, 3, 8)
    out, w = j(jnp.asarray(q), jnp.asarray(q), jnp.asarray(q), need_weights=False)
    tout, tw = t(torch.tensor(q), torch.tensor(q), torch.tensor(q), need_weights=False)
    assert w is None and tw is None
    assert_close(out, tout)
    out2, w2 = j(
        jnp.asarray(q),
        jnp.asarray(q),
        jnp.asarray(q),
        need_weights=True,
        average_attn_weights=False,
    )
    tout2, tw2 = t(
        torch.tensor(q),
        torch.tensor(q),
        torch.tensor(q),
        need_weights=True,
        average_attn_weights=False,
    )
    assert_close(w2, tw2)


def test_state_dicts_taken_before_a_donating_step_stay_valid():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = jaxmodule.compile(mse_step)
    x, y = jnp.asarray(randn(8, 3)), jnp.zeros((8, 4))
    step(model, opt, x, y)
    best_model = model.state_dict()
    best_opt = opt.state_dict()
    frozen = {k: np.asarray(v) for k, v in best_model.items()}
    step(model, opt, x, y)
    step(model, opt, x, y)
    for k, v in best_model.items():  # still readable, and still the old values (a snapshot)
        np.testing.assert_array_equal(np.asarray(v), frozen[k])
    assert all(not leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(best_opt["state"]))
    model.load_state_dict(best_model)
    step(model, opt, x, y)  # the loaded arrays are protected too
    np.testing.assert_array_equal(np.asarray(best_model["0.weight"]), frozen["0.weight"])


def test_user_code_is_traced_once_per_plan_and_again_only_for_new_input_types():
    """The discovery trace is also the program: jit replays it, so Python side effects of the
    step run once per new plan, like plain jax.jit; a new batch shape traces the user code."""
    traced = []

    def step(model, opt, x, y):
        traced.append(x.shape)
        return mse_step(model, opt, x, y)

    tm, jm, topt, jopt = torch_pair()
    compiled = jaxmodule.compile(step)
    for i, n in enumerate((16, 16, 16, 5, 5, 16)):
        x, y = randn(n, 4, seed=i), randn(n, 2, seed=50 + i)
        topt.zero_grad()
        tl = ((tm(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
        tl.backward()
        topt.step()
        assert_close(compiled(jm, jopt, jnp.asarray(x), jnp.asarray(y)), tl)
    assert traced == [(16, 4), (5, 4)]
    assert compiled.trace_count == 2
    for tv, jv in zip(tm.state_dict().values(), jm.state_dict().values()):
        assert_close(jv, tv)


def test_generated_fast_path_matches_the_general_path_and_steps_aside(monkeypatch):
    """The per-plan generated fast path gives the same results as the general path, and any
    failed check (new array type, mode change, exported state, autocast) falls back to it."""

    def run(fast):
        if not fast:
            monkeypatch.setenv("JAXMODULE_FAST_PATH", "0")
        jaxmodule.manual_seed(0)
        torch.manual_seed(0)
        tm, jm, topt, jopt = torch_pair()
        model = nn.Sequential(jm, nn.Dropout(0.2))
        step = jaxmodule.compile(mse_step)
        losses = []
        for i in range(6):
            x, y = randn(16, 4, seed=i), randn(16, 2, seed=100 + i)
            if i == 2:
                x = np.asarray(x)  # a numpy array: not the fast path's exact type
            if i == 3:
                jopt.state_dict()  # exported state: must be copied before donation
            if i == 4:
                model.eval()
            with jaxmodule.amp.autocast("cpu", dtype=jnp.bfloat16, enabled=(i == 5)):
                losses.append(
                    np.asarray(step(model, jopt, x if i == 2 else jnp.asarray(x), jnp.asarray(y)))
                )
        assert (step._fast is not None) == fast
        monkeypatch.undo()
        return losses, {k: np.asarray(v) for k, v in model.state_dict().items()}

    fast_losses, fast_state = run(True)
    slow_losses, slow_state = run(False)
    for a, b in zip(fast_losses, slow_losses):
        np.testing.assert_array_equal(a, b)
    for k in slow_state:
        np.testing.assert_array_equal(fast_state[k], slow_state[k], err_msg=k)


def test_fast_path_for_many_cells_loops_and_matches_the_general_path(monkeypatch):
    from jaxmodule._compile import _fast_path

    def run(fast):
        if not fast:
            monkeypatch.setenv("JAXMODULE_FAST_PATH", "0")
        jaxmodule.manual_seed(1)
        model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(_fast_path.UNROLL_CELLS // 2 + 5)])
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
        step = jaxmodule.compile(mse_step)
        losses = [
            np.asarray(step(model, opt, jnp.asarray(randn(4, 3, seed=i)), jnp.zeros((4, 3))))
            for i in range(3)
        ]
        assert (step._fast is not None) == fast
        monkeypatch.undo()
        return losses, [np.asarray(p) for p in model.parameters()]

    (fl, fp), (sl, sp) = run(True), run(False)
    np.testing.assert_array_equal(np.array(fl), np.array(sl))
    for a, b in zip(fp, sp):
        np.testing.assert_array_equal(a, b)
