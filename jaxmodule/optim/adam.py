"""`Adam` (with amsgrad and optional decoupled weight decay). Mirrors `torch.optim.Adam`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import bias_correction, check_betas, check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["Adam"]


def adam_prelude(
    hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """The group's steps advanced, and the reciprocals of their bias corrections `bc1` and
    `sqrt(bc2)` (vectors; XLA turns the division by a scalar into this multiplication anyway,
    and a reciprocal per parameter would be a kernel per parameter)."""
    step = scalars["step"] + 1
    omb1, omb2 = hp["1-betas"]
    return {"step": step}, {
        "inv_bc1": 1 / bias_correction(step, omb1),
        "inv_sqrt_bc2": 1 / jnp.sqrt(bias_correction(step, omb2)),
    }


def scale_by_torch_adam(
    betas: tuple,
    one_minus: tuple,
    eps: jax.Array,
    inv_bc1: jax.Array | None,
    inv_sqrt_bc2: jax.Array | None,
    amsgrad: bool,
) -> optax.GradientTransformation:
    """torch's Adam direction `m_hat / (sqrt(v) / sqrt(bc2) + eps)`; amsgrad keeps the running
    max of the raw `v` (optax.scale_by_adam puts eps differently and optax.scale_by_amsgrad
    maxes the bias-corrected `v`). The step count lives with the group (`adam_prelude`), which
    derives `inv_bc1` and `inv_sqrt_bc2`; they are None when the transformation is built only to
    `init` the state."""
    b2 = betas[1]
    omb1, omb2 = one_minus

    def init(params: Any) -> dict[str, Any]:
        s = {"exp_avg": jnp.zeros_like(params), "exp_avg_sq": jnp.zeros_like(params)}
        if amsgrad:
            s["max_exp_avg_sq"] = jnp.zeros_like(params)
        return s

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        assert inv_bc1 is not None and inv_sqrt_bc2 is not None, (
            "adam_prelude derives them for update"
        )
        m = state["exp_avg"] + omb1 * (g - state["exp_avg"])
        v = state["exp_avg_sq"] * b2 + omb2 * g * g
        new = {"exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            v = new["max_exp_avg_sq"] = jnp.maximum(state["max_exp_avg_sq"], v)
        denom = jnp.sqrt(v) * inv_sqrt_bc2 + eps
        return m / denom * inv_bc1, new

    return optax.GradientTransformation(init, update)


def adam_transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
    amsgrad, maximize, decoupled = static
    return torch_chain(
        hp,
        scale_by_torch_adam(
            hp["betas"],
            hp["1-betas"],
            hp["eps"],
            hp.get("inv_bc1"),
            hp.get("inv_sqrt_bc2"),
            amsgrad,
        ),
        maximize,
        decoupled,
    )


class Adam(Optimizer):
    """Adam. Mirrors `torch.optim.Adam`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (decoupled, as AdamW, when `decoupled_weight_decay`).
        amsgrad: use the running maximum of the second moment.
        maximize: maximize the objective.
        decoupled_weight_decay: apply weight decay to the weights directly (AdamW).

    State per parameter: 'step', 'exp_avg', 'exp_avg_sq' (+ 'max_exp_avg_sq' with amsgrad).

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = Adam([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.1]

    Differences from torch: `foreach`, `fused`, `capturable` change nothing;
    `differentiable=True` raises NotImplementedError.
    """

    _array_options = ("lr", "betas", "eps", "weight_decay")
    _complement_options = ("betas",)
    _scalar_state = {"step": 0.0}
    _prelude = staticmethod(adam_prelude)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_lr(lr)
        check_nonneg(eps, "epsilon value")
        check_betas(betas)
        check_nonneg(weight_decay, "weight_decay value")
        check_flags(foreach, fused, differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
        )

    _transformation = staticmethod(adam_transformation)
