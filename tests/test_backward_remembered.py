"""Zero-argument `jaxmodule.backward`, eagerly: the parameters a loss read are remembered per loss
function, later calls take one pass and check that nothing else was read (`_autograd.py`).

Each case is compared with torch's `loss.backward()` on the same weights: gradients, which
`.grad` stay None, and how often the loss function's Python body runs.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import jaxmodule
import numpy as np
import pytest
import torch
from jaxmodule import _autograd, nn
from jaxmodule.nn.modules._eager import set_eager_jit

from tests.helpers import assert_close


@pytest.fixture(autouse=True)
def _eager_autodiff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This file is about the eager-autodiff path (remembered parameters, one pass); the eager
    cache's traced replay of the loss (on by default) has its own tests in
    test_backward_replay.py. Each test starts with nothing remembered."""
    monkeypatch.setattr(_autograd, "_LAST_READ", type(_autograd._LAST_READ)())
    previous = set_eager_jit(False)
    yield
    set_eager_jit(previous)


def _pair(seed: int = 0) -> tuple[nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return model, ref


X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
C = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)


def _grads(module) -> list:
    return [None if p.grad is None else np.asarray(p.grad) for p in module.parameters()]


@pytest.mark.parametrize("replay", [False, True])
def test_repeated_calls_accumulate_like_torch_and_run_the_body_once_after_the_first(
    replay: bool,
) -> None:
    model, ref = _pair()
    runs = []
    previous = set_eager_jit(replay)  # off: the eager-autodiff path this file is about
    try:
        _repeat(model, ref, runs)
    finally:
        set_eager_jit(previous)
    for g, p in zip(_grads(model), ref.parameters()):
        assert_close(g, p.grad.numpy())
    if replay:  # the loss traced once per call, the first included (`_replay.py`)
        assert runs == [0, 1, 2]
    else:  # the first call probes, then differentiates; later ones: one pass
        assert runs == [0, 0, 1, 2]


def _repeat(model: nn.Module, ref: torch.nn.Module, runs: list) -> None:
    for step in range(3):

        def loss_fn(step: int = step) -> jnp.ndarray:
            runs.append(step)
            return (model(jnp.asarray(X)) ** 2).sum()

        jaxmodule.backward(loss_fn)
        (ref(torch.from_numpy(X)) ** 2).sum().backward()


def test_a_loss_that_starts_reading_another_parameter_is_redone() -> None:
    model, ref = _pair()
    use_second = [False]

    def loss_fn():
        h = model[0](jnp.asarray(X))
        out = model[2](jnp.tanh(h)) if use_second[0] else h
        return out.sum()

    jaxmodule.backward(loss_fn)
    assert model[2].weight.grad is None  # not read: stays None, as in torch
    use_second[0] = True
    model.zero_grad()
    ref.zero_grad()
    jaxmodule.backward(loss_fn)
    ref(torch.from_numpy(X)).sum().backward()
    for g, p in zip(_grads(model), ref.parameters()):
        assert_close(g, p.grad.numpy())


def test_a_remembered_parameter_not_read_keeps_grad_none() -> None:
    model, _ = _pair()
    use_second = [True]

    def loss_fn():
        h = model[0](jnp.asarray(X))
        return (model[2](jnp.tanh(h)) if use_second[0] else h).sum()

    jaxmodule.backward(loss_fn)
    use_second[0] = False
    model.zero_grad()
    jaxmodule.backward(loss_fn)  # one pass over the remembered set, which includes model[2]
    assert model[2].weight.grad is None and model[2].bias.grad is None
    assert model[0].weight.grad is not None


def test_frozen_and_written_state_follow_torch() -> None:
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    for step in range(3):
        if step == 1:
            model[0].bias.requires_grad_(False)
            ref[0].bias.requires_grad_(False)
        # a random projection: sum(BN(x) ** 2) would be constant, its gradient rounding noise
        jaxmodule.backward(lambda: (model(jnp.asarray(X)) * jnp.asarray(C)).sum())
        (ref(torch.from_numpy(X)) * torch.from_numpy(C)).sum().backward()
        if step == 0:
            bias_grad = np.asarray(model[0].bias.grad)
    assert_close(model[1].running_mean, ref[1].running_mean.numpy())
    assert_close(model[1].running_var, ref[1].running_var.numpy())
    assert int(model[1].num_batches_tracked) == 3
    assert_close(model[0].weight.grad, ref[0].weight.grad.numpy())
    # frozen after step 0: its grad is step 0's (a bias before BatchNorm has a zero gradient in
    # exact arithmetic, so its value is rounding noise and is not compared with torch's)
    assert np.array_equal(np.asarray(model[0].bias.grad), bias_grad)


def test_the_table_holds_no_parameter_alive() -> None:
    def train() -> weakref.ref:
        model, _ = _pair()
        for _ in range(2):
            jaxmodule.backward(lambda: model(jnp.asarray(X)).sum())
        return weakref.ref(model[0].weight)

    probe = train()
    gc.collect()
    assert probe() is None
    assert len(_autograd._LAST_READ) <= _autograd._LAST_READ_SIZE


def test_a_loss_that_raises_halfway_changes_nothing_and_the_next_call_works() -> None:
    """torch: an exception before `.backward()` leaves `.grad` and buffers as they were."""
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    fail = [False]

    def loss_fn():
        out = model(jnp.asarray(X))  # updates BatchNorm's running statistics
        if fail[0]:
            raise ValueError("halfway")
        return (out * jnp.asarray(C)).sum()

    for _ in range(2):  # the second call takes the one-pass path
        jaxmodule.backward(loss_fn)
        (ref(torch.from_numpy(X)) * torch.from_numpy(C)).sum().backward()
    grads = _grads(model)
    stats = {k: np.asarray(v) for k, v in model.state_dict().items()}
    fail[0] = True
    with pytest.raises(ValueError, match="halfway"):
        jaxmodule.backward(loss_fn)
    for g, want in zip(_grads(model), grads):
        assert np.array_equal(g, want)
    for k, v in model.state_dict().items():
        assert np.array_equal(np.asarray(v), stats[k]), k
    assert all(not isinstance(p._value, jax.core.Tracer) for p in model.parameters())
    fail[0] = False
    jaxmodule.backward(loss_fn)
    (ref(torch.from_numpy(X)) * torch.from_numpy(C)).sum().backward()
    assert_close(model[0].weight.grad, ref[0].weight.grad.numpy())
    assert_close(model[1].running_mean, ref[1].running_mean.numpy())
    assert int(model[1].num_batches_tracked) == 3
