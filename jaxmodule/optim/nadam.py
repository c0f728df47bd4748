"""`NAdam`: Adam with Nesterov momentum and momentum decay. Mirrors `torch.optim.NAdam`."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import bias_correction, check_betas, check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["NAdam"]

_LOG_096 = math.log(0.96)


def nadam_prelude(
    hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """The group's steps and `mu_product`s advanced, and the update's per-parameter factors
    (vectors): the gradient's and the average's coefficients and `1 / bc2`."""
    b1 = hp["betas"][0]
    step = scalars["step"] + 1
    decay = hp["momentum_decay"] * _LOG_096
    mu = b1 * (1.0 - 0.5 * jnp.exp(step * decay))
    mu_next = b1 * (1.0 - 0.5 * jnp.exp((step + 1) * decay))
    mu_product = scalars["mu_product"] * mu
    derived = {
        "c_grad": (1.0 - mu) / (1.0 - mu_product),
        "c_avg": mu_next / (1.0 - mu_product * mu_next),
        "inv_bc2": 1 / bias_correction(step, hp["1-betas"][1]),
    }
    return {"step": step, "mu_product": mu_product}, derived


def scale_by_torch_nadam(
    betas: tuple, one_minus: tuple, eps: jax.Array, derived: dict[str, Any]
) -> optax.GradientTransformation:
    """torch's NAdam direction with the `mu_product` schedule (optax.nadam has no momentum
    decay); `derived` holds this parameter's entries of `nadam_prelude`'s factors."""
    b2 = betas[1]
    omb1, omb2 = one_minus

    def init(params: Any) -> dict[str, Any]:
        return {"exp_avg": jnp.zeros_like(params), "exp_avg_sq": jnp.zeros_like(params)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        m = state["exp_avg"] + omb1 * (g - state["exp_avg"])
        v = state["exp_avg_sq"] * b2 + omb2 * g * g
        denom = jnp.sqrt(v * derived["inv_bc2"]) + eps
        out = g * derived["c_grad"] / denom + m * derived["c_avg"] / denom
        return out, {"exp_avg": m, "exp_avg_sq": v}

    return optax.GradientTransformation(init, update)


class NAdam(Optimizer):
    """NAdam. Mirrors `torch.optim.NAdam`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running averages (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay (L2, or decoupled with `decoupled_weight_decay`).
        momentum_decay: momentum decay psi (default 4e-3).
        decoupled_weight_decay: decay the weights directly (NAdamW).
        maximize: maximize the objective.

    State per parameter: 'step', 'mu_product', 'exp_avg', 'exp_avg_sq'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = NAdam([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1056, 0.1056]
    """

    _array_options = ("lr", "betas", "eps", "weight_decay", "momentum_decay")
    _complement_options = ("betas",)
    _scalar_state = {"step": 0.0, "mu_product": 1.0}
    _prelude = staticmethod(nadam_prelude)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check_nonneg(eps, "epsilon value")
        check_betas(betas)
        check_nonneg(weight_decay, "weight_decay value")
        check_nonneg(momentum_decay, "momentum_decay value")
        check_flags(foreach, None, differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]), bool(group["decoupled_weight_decay"]))

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        maximize, decoupled = static
        return torch_chain(
            hp, scale_by_torch_nadam(hp["betas"], hp["1-betas"], hp["eps"], hp), maximize, decoupled
        )
