"""`Adadelta`. Mirrors `torch.optim.Adadelta`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["Adadelta"]


def scale_by_torch_adadelta(
    rho: jax.Array, one_minus_rho: jax.Array, eps: jax.Array
) -> optax.GradientTransformation:
    """torch's Adadelta direction (same as optax.scale_by_adadelta, with torch's state keys)."""

    def init(params: Any) -> dict[str, Any]:
        return {"square_avg": jnp.zeros_like(params), "acc_delta": jnp.zeros_like(params)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        sq = state["square_avg"] * rho + one_minus_rho * g * g
        delta = jnp.sqrt(state["acc_delta"] + eps) / jnp.sqrt(sq + eps) * g
        acc = state["acc_delta"] * rho + one_minus_rho * delta * delta
        return delta, {"square_avg": sq, "acc_delta": acc}

    return optax.GradientTransformation(init, update)


class Adadelta(Optimizer):
    """Adadelta. Mirrors `torch.optim.Adadelta`.

    Args:
        params: parameters or param groups to optimize.
        lr: coefficient scaling delta (default 1.0).
        rho: running average coefficient (default 0.9).
        eps: added inside the square roots (default 1e-6).
        weight_decay: L2 penalty (default 0).
        maximize: maximize the objective.

    State per parameter: 'step', 'square_avg', 'acc_delta'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = Adadelta([w], lr=1.0)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.0032, 0.0032]
    """

    _array_options = ("lr", "rho", "eps", "weight_decay")
    _complement_options = ("rho",)
    _scalar_state = {"step": 0.0}

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_nonneg(eps, "epsilon value")
        check_nonneg(weight_decay, "weight_decay value")
        check_flags(foreach, None, differentiable)
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]),)

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        return torch_chain(
            hp, scale_by_torch_adadelta(hp["rho"], hp["1-rho"], hp["eps"]), static[0]
        )
