"""`Lion` (EvoLved Sign Momentum) on `optax.scale_by_lion`. torch has no Lion; this follows the
published algorithm (Chen et al. 2023) and the common torch implementation's API."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import check_betas, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["Lion"]


def _scale_by_lion(b1: jax.Array, b2: jax.Array) -> optax.GradientTransformation:
    """`optax.scale_by_lion`'s update, without its step count (Lion never reads it, and a count
    per parameter is one more argument and kernel per parameter of a compiled step)."""

    def init(params: Any) -> dict[str, Any]:
        return {"exp_avg": jnp.zeros_like(params)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        m = state["exp_avg"]
        return jnp.sign((1.0 - b1) * g + b1 * m), {"exp_avg": (1.0 - b2) * g + b2 * m}

    return optax.GradientTransformation(init, update)


class Lion(Optimizer):
    """Lion: `p -= lr * (sign(b1 * m + (1 - b1) * g) + weight_decay * p)`, then
    `m = b2 * m + (1 - b2) * g`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-4).
        betas: interpolation and momentum coefficients (default (0.9, 0.99)).
        weight_decay: decoupled weight decay (default 0).
        maximize: maximize the objective.

    State per parameter: 'exp_avg'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = Lion([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.1]

    Not in torch: the API follows `lion-pytorch` (lr, betas, weight_decay).
    """

    _array_options = ("lr", "betas", "weight_decay")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        check_lr(lr)
        check_betas(betas)
        check_nonneg(weight_decay, "weight_decay value")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]),)

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        b1, b2 = hp["betas"]
        return torch_chain(hp, _scale_by_lion(b1, b2), static[0], decoupled=True)
