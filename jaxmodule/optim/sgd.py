"""`SGD`: stochastic gradient descent with momentum, dampening and Nesterov. Mirrors `torch.optim.SGD`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["SGD"]


def _torch_momentum(
    momentum: jax.Array, one_minus_dampening: jax.Array | None, nesterov: bool
) -> optax.GradientTransformation:
    """torch's momentum buffer: the first step stores the gradient undampened; later steps
    `buf = momentum * buf + (1 - dampening) * g` (optax.trace has no dampening). With dampening
    0 (`one_minus_dampening` None) the zero-initialised buffer gives the first step exactly, so
    no first-step flag. `1 - dampening` comes from the host in float64, as torch's `alpha`."""

    def init(params: Any) -> dict[str, Any]:
        if one_minus_dampening is None:
            return {"momentum_buffer": jnp.zeros_like(params)}
        return {"momentum_buffer": jnp.zeros_like(params), "_started": jnp.zeros((), jnp.float32)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        buf = state["momentum_buffer"]
        if one_minus_dampening is None:
            buf = buf * momentum + g
            new_state = {"momentum_buffer": buf}
        else:
            buf = jnp.where(state["_started"] > 0, buf * momentum + one_minus_dampening * g, g)
            new_state = {"momentum_buffer": buf, "_started": jnp.ones((), jnp.float32)}
        return (g + momentum * buf if nesterov else buf), new_state

    return optax.GradientTransformation(init, update)


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum). Mirrors `torch.optim.SGD`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: enables Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing.

    State per parameter: 'momentum_buffer' (when momentum != 0).

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.ones(2))
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> w.grad = jnp.array([1.0, -1.0])
    >>> opt.step()
    >>> w.tolist()
    [0.8999999761581421, 1.100000023841858]

    Differences from torch: `foreach` and `fused` change nothing; `differentiable=True` raises
    NotImplementedError.
    """

    _array_options = ("lr", "momentum", "dampening", "weight_decay")
    _complement_options = ("dampening",)
    _zero_options = ("weight_decay", "dampening")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_nonneg(momentum, "momentum value")
        check_nonneg(weight_decay, "weight_decay value")
        check_flags(foreach, fused, differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["nesterov"]), bool(group["maximize"]), group["momentum"] != 0)

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        nesterov, maximize, has_momentum = static
        momentum = (
            _torch_momentum(hp["momentum"], hp.get("1-dampening"), nesterov)
            if has_momentum
            else None
        )
        return torch_chain(hp, momentum, maximize)
