"""`Adamax`: Adam with the infinity norm. Mirrors `torch.optim.Adamax`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import bias_correction, check_betas, check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["Adamax"]


def adamax_prelude(
    hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """The group's steps advanced and `1 / bc1` (vectors; see `adam.adam_prelude`)."""
    step = scalars["step"] + 1
    return {"step": step}, {"inv_bc1": 1 / bias_correction(step, hp["1-betas"][0])}


def scale_by_torch_adamax(
    b2: jax.Array, omb1: jax.Array, eps: jax.Array, inv_bc1: jax.Array | None
) -> optax.GradientTransformation:
    """torch's Adamax direction `m / (bc1 * max(b2 * u, |g| + eps))` (optax adds eps after the max)."""

    def init(params: Any) -> dict[str, Any]:
        return {"exp_avg": jnp.zeros_like(params), "exp_inf": jnp.zeros_like(params)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        m = state["exp_avg"] + omb1 * (g - state["exp_avg"])
        u = jnp.maximum(state["exp_inf"] * b2, jnp.abs(g) + eps)
        return m / u * inv_bc1, {"exp_avg": m, "exp_inf": u}

    return optax.GradientTransformation(init, update)


class Adamax(Optimizer):
    """Adamax. Mirrors `torch.optim.Adamax`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running average and the infinity norm.
        eps: added to the norm (default 1e-8).
        weight_decay: L2 penalty (default 0).
        maximize: maximize the objective.

    State per parameter: 'step', 'exp_avg', 'exp_inf'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = Adamax([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.1]
    """

    _array_options = ("lr", "betas", "eps", "weight_decay")
    _complement_options = ("betas",)
    _scalar_state = {"step": 0.0}
    _prelude = staticmethod(adamax_prelude)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_lr(lr)
        check_nonneg(eps, "epsilon value")
        check_betas(betas)
        check_nonneg(weight_decay, "weight_decay value")
        check_flags(foreach, None, differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]),)

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        return torch_chain(
            hp,
            scale_by_torch_adamax(hp["betas"][1], hp["1-betas"][0], hp["eps"], hp.get("inv_bc1")),
            static[0],
        )
