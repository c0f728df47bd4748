"""`RMSprop`. Mirrors `torch.optim.RMSprop`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["RMSprop"]


def scale_by_torch_rms(
    alpha: jax.Array,
    one_minus_alpha: jax.Array,
    eps: jax.Array,
    momentum: jax.Array,
    centered: bool,
    has_momentum: bool,
) -> optax.GradientTransformation:
    """torch's RMSprop direction: eps added after the square root, momentum applied to the
    scaled gradient (optax.rmsprop adds eps inside the root)."""

    def init(params: Any) -> dict[str, Any]:
        s = {"square_avg": jnp.zeros_like(params)}
        if has_momentum:
            s["momentum_buffer"] = jnp.zeros_like(params)
        if centered:
            s["grad_avg"] = jnp.zeros_like(params)
        return s

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        sq = state["square_avg"] * alpha + one_minus_alpha * g * g
        new = {"square_avg": sq}
        if centered:
            ga = new["grad_avg"] = state["grad_avg"] + one_minus_alpha * (g - state["grad_avg"])
            avg = jnp.sqrt(sq - ga * ga) + eps
        else:
            avg = jnp.sqrt(sq) + eps
        out = g / avg
        if has_momentum:
            out = new["momentum_buffer"] = state["momentum_buffer"] * momentum + out
        return out, new

    return optax.GradientTransformation(init, update)


class RMSprop(Optimizer):
    """RMSprop. Mirrors `torch.optim.RMSprop`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by the estimated variance of the gradient.
        maximize: maximize the objective.

    State per parameter: 'step', 'square_avg' (+ 'momentum_buffer' when momentum > 0,
    + 'grad_avg' when centered).

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = RMSprop([w], lr=0.01)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.1]
    """

    _array_options = ("lr", "alpha", "eps", "weight_decay", "momentum")
    _complement_options = ("alpha",)
    _scalar_state = {"step": 0.0}

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check_nonneg(eps, "epsilon value")
        check_nonneg(momentum, "momentum value")
        check_nonneg(weight_decay, "weight_decay value")
        check_nonneg(alpha, "alpha value")
        check_flags(foreach, None, differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["centered"]), bool(group["maximize"]), group["momentum"] > 0)

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        centered, maximize, has_momentum = static
        return torch_chain(
            hp,
            scale_by_torch_rms(
                hp["alpha"], hp["1-alpha"], hp["eps"], hp["momentum"], centered, has_momentum
            ),
            maximize,
        )
