"""`Adagrad`. Mirrors `torch.optim.Adagrad`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["Adagrad"]


def adagrad_prelude(
    hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """The group's steps advanced and `1 / (1 + (step - 1) * lr_decay)` (vectors)."""
    step = scalars["step"] + 1
    return {"step": step}, {"inv_decay": 1 / (1 + (step - 1) * hp["lr_decay"])}


def scale_by_torch_adagrad(
    inv_decay: jax.Array | None, eps: jax.Array, initial_accumulator_value: float
) -> optax.GradientTransformation:
    """torch's Adagrad direction `g / (sqrt(sum) + eps) / (1 + (step - 1) * lr_decay)`
    (optax.scale_by_rss puts eps inside the root and has no lr decay); `inv_decay` is this
    parameter's entry of `adagrad_prelude`'s."""

    def init(params: Any) -> dict[str, Any]:
        return {"sum": jnp.full_like(params, initial_accumulator_value)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        total = state["sum"] + g * g
        return g / (jnp.sqrt(total) + eps) * inv_decay, {"sum": total}

    return optax.GradientTransformation(init, update)


class Adagrad(Optimizer):
    """Adagrad. Mirrors `torch.optim.Adagrad`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: initial value of the sum of squares (default 0).
        eps: added to the denominator (default 1e-10).
        maximize: maximize the objective.

    State per parameter (present from construction, as in torch): 'step', 'sum'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = Adagrad([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.1]
    """

    _array_options = ("lr", "lr_decay", "eps", "weight_decay")
    _scalar_state = {"step": 0.0}
    _prelude = staticmethod(adagrad_prelude)
    _state_at_init = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_nonneg(lr_decay, "lr_decay value")
        check_nonneg(weight_decay, "weight_decay value")
        check_nonneg(initial_accumulator_value, "initial_accumulator_value value")
        check_nonneg(eps, "epsilon value")
        check_flags(foreach, fused, differentiable)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]), float(group["initial_accumulator_value"]))

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        maximize, init_value = static
        return torch_chain(
            hp, scale_by_torch_adagrad(hp.get("inv_decay"), hp["eps"], init_value), maximize
        )
