"""Shared fixtures for optimizer tests: a small two-parameter model run in jaxmodule and torch."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jaxmodule.nn import Parameter

from tests.helpers import assert_close, randn

# A separable quadratic pulling each entry towards a target 3 away, plus a small coupling term
# whose data changes with the step. Gradients stay away from zero for 20 steps: near a sign
# change, adaptive methods amplify rounding (even torch float32 vs float64 then part ways).
X = randn(6, 3, seed=1)
W0 = randn(3, 4, seed=3)
B0 = randn(4, seed=4)
SW = 0.5 + np.abs(randn(3, 4, seed=5)) % 1.0
SB = 0.5 + np.abs(randn(4, seed=6)) % 1.0
TW = W0 + 3.0 * np.sign(randn(3, 4, seed=7))
TB = B0 + 3.0 * np.sign(randn(4, seed=8))
Y = TW  # kept for the torch side's signature


def _loss(w: Any, b: Any, x: Any, y: Any) -> Any:
    return (
        jnp.sum(SW * (w - TW) ** 2)
        + jnp.sum(SB * (b - TB) ** 2)
        + 0.1 * jnp.mean(jnp.tanh(x @ w + b))
    )


_grad = jax.jit(jax.grad(_loss, argnums=(0, 1)))


def jm_params() -> list[Parameter]:
    return [Parameter(jnp.asarray(W0)), Parameter(jnp.asarray(B0))]


def torch_params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(W0)), torch.nn.Parameter(torch.tensor(B0))]


def set_jm_grads(params: list[Parameter], k: int) -> None:
    """Gradients of the loss at the current values (data varies with the step `k`)."""
    x, y = X * (1 + 0.1 * k), None
    gw, gb = _grad(params[0]._value, params[1]._value, x, y)
    params[0].grad, params[1].grad = gw, gb


def set_torch_grads(params: list[torch.Tensor], k: int) -> None:
    x = torch.tensor(X * (1 + 0.1 * k))
    for p in params:
        p.grad = None
    w, b = params[0], params[1]
    loss = (
        (torch.tensor(SW) * (w - torch.tensor(TW)) ** 2).sum()
        + (torch.tensor(SB) * (b - torch.tensor(TB)) ** 2).sum()
        + 0.1 * torch.tanh(x @ w + b).mean()
    )
    loss.backward()


def assert_params_close(jm: list[Parameter], tp: list[torch.Tensor], where: str = "") -> None:
    for i, (a, b) in enumerate(zip(jm, tp)):
        try:
            assert_close(a._value, b)
        except AssertionError as e:  # pragma: no cover - failure path adds context
            raise AssertionError(f"{where} param {i}: {e}") from None


def run_and_compare(
    jo: Any,
    to: Any,
    jp: list[Parameter],
    tp: list[torch.Tensor],
    steps: int,
    start: int = 0,
    then: tuple = (),
) -> None:
    """Step optimizers `jo` (on `jp`) and `to` (on `tp`) `steps` times with the gradients of steps
    `start`, `start + 1`, ..., then step each of `then` (schedulers); compare params each time."""
    for k in range(start, start + steps):
        set_jm_grads(jp, k)
        set_torch_grads(tp, k)
        jo.step()
        to.step()
        for s in then:
            s.step()
        assert_params_close(jp, tp, f"step {k}")


def to_np(x: Any) -> np.ndarray:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
