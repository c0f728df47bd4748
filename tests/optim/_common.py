"""Shared fixtures for optimizer tests: a small two-parameter model run in jaxmodule and torch."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxmodule.nn import Parameter
from tests.helpers import assert_close, randn

X = randn(6, 3, seed=1)
Y = randn(6, 4, seed=2)
W0 = randn(3, 4, seed=3)
B0 = randn(4, seed=4)


def _loss(w: Any, b: Any, x: Any, y: Any) -> Any:
    return jnp.mean((jnp.tanh(x @ w) + b - y) ** 2)


_grad = jax.jit(jax.grad(_loss, argnums=(0, 1)))


def jm_params() -> list[Parameter]:
    return [Parameter(jnp.asarray(W0)), Parameter(jnp.asarray(B0))]


def torch_params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(W0)), torch.nn.Parameter(torch.tensor(B0))]


def set_jm_grads(params: list[Parameter], k: int) -> None:
    """Gradients of the loss at the current values (data varies with the step `k`)."""
    x, y = X * (1 + 0.1 * k), Y
    gw, gb = _grad(params[0]._value, params[1]._value, x, y)
    params[0].grad, params[1].grad = gw, gb


def set_torch_grads(params: list[torch.Tensor], k: int) -> None:
    x, y = torch.tensor(X * (1 + 0.1 * k)), torch.tensor(Y)
    for p in params:
        p.grad = None
    loss = ((torch.tanh(x @ params[0]) + params[1] - y) ** 2).mean()
    loss.backward()


def assert_params_close(jm: list[Parameter], tp: list[torch.Tensor], where: str = "") -> None:
    for i, (a, b) in enumerate(zip(jm, tp)):
        try:
            assert_close(a._value, b)
        except AssertionError as e:  # pragma: no cover - failure path adds context
            raise AssertionError(f"{where} param {i}: {e}") from None


def to_np(x: Any) -> np.ndarray:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
