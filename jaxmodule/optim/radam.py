"""`RAdam`: rectified Adam. Mirrors `torch.optim.RAdam`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._utils import bias_correction, check_betas, check_flags, check_lr, check_nonneg, torch_chain
from .optimizer import Optimizer, ParamsT

__all__ = ["RAdam"]


def _rho_t(step: jax.Array, omb2: jax.Array) -> jax.Array:
    """RAdam's `rho_t = 2 / (1 - b2) - 1 - 2 t b2**t / (1 - b2**t)` without cancellation.

    With l = -log(b2) and u = t l: rho_t = 2 (A + B) / l - 1, A = l / (1 - b2) - 1 and
    B = 1 - u / expm1(u), both positive, each by its series where the direct form cancels.
    torch evaluates it in float64 on the host; the direct float32 form is off by ~1e-4.
    """
    ell = -jnp.log1p(-omb2)
    u = step * ell
    xs = jnp.minimum(omb2, 0.1)
    a_series = xs * (
        1 / 2
        + xs
        * (
            1 / 3
            + xs * (1 / 4 + xs * (1 / 5 + xs * (1 / 6 + xs * (1 / 7 + xs * (1 / 8 + xs / 9)))))
        )
    )
    a = jnp.where(omb2 <= 0.1, a_series, ell / omb2 - 1)
    us = jnp.minimum(u, 1.0)
    u2 = us * us
    b_series = us / 2 - u2 * (1 / 12 - u2 * (1 / 720 - u2 * (1 / 30240 - u2 / 1209600)))
    b = jnp.where(u <= 1.0, b_series, 1 - u / jnp.expm1(jnp.maximum(u, 1.0)))
    return 2 * (a + b) / ell - 1


def radam_prelude(
    hp: dict[str, Any], static: tuple, scalars: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """The group's steps advanced and the update's per-parameter factors (vectors): `1 / bc1`,
    whether the rectification is on, and `sqrt(bc2) * rect` (1 where it is off)."""
    omb1, omb2 = hp["1-betas"]
    step = scalars["step"] + 1
    rho_inf = 2.0 / omb2 - 1.0
    rho_t = _rho_t(step, omb2)
    on = rho_t > 5.0
    rt = jnp.where(on, rho_t, 6.0)  # keeps the unused branch finite
    rect = jnp.sqrt((rt - 4) * (rt - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rt))
    return {"step": step}, {
        "inv_bc1": 1 / bias_correction(step, omb1),
        "rect_on": on,
        "rect": jnp.sqrt(bias_correction(step, omb2)) * rect,
    }


def scale_by_torch_radam(
    betas: tuple, one_minus: tuple, eps: jax.Array, derived: dict[str, Any]
) -> optax.GradientTransformation:
    """torch's RAdam direction (optax.scale_by_radam places eps and the threshold differently);
    `derived` holds this parameter's entries of `radam_prelude`'s factors."""
    b2 = betas[1]
    omb1, omb2 = one_minus

    def init(params: Any) -> dict[str, Any]:
        return {"exp_avg": jnp.zeros_like(params), "exp_avg_sq": jnp.zeros_like(params)}

    def update(g: Any, state: dict[str, Any], params: Any = None) -> tuple[Any, dict[str, Any]]:
        m = state["exp_avg"] + omb1 * (g - state["exp_avg"])
        v = state["exp_avg_sq"] * b2 + omb2 * g * g
        m_hat = m * derived["inv_bc1"]
        out = jnp.where(derived["rect_on"], m_hat * derived["rect"] / (jnp.sqrt(v) + eps), m_hat)
        return out, {"exp_avg": m, "exp_avg_sq": v}

    return optax.GradientTransformation(init, update)


class RAdam(Optimizer):
    """RAdam. Mirrors `torch.optim.RAdam`.

    Args:
        params: parameters or param groups to optimize.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay (L2, or decoupled with `decoupled_weight_decay`).
        decoupled_weight_decay: decay the weights directly (RAdamW).
        maximize: maximize the objective.

    State per parameter: 'step', 'exp_avg', 'exp_avg_sq'.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.zeros(2))
    >>> opt = RAdam([w], lr=0.1)
    >>> w.grad = jnp.array([1.0, -2.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, 0.2]
    """

    _array_options = ("lr", "betas", "eps", "weight_decay")
    _complement_options = ("betas",)
    _scalar_state = {"step": 0.0}
    _prelude = staticmethod(radam_prelude)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
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
        check_flags(foreach, None, differentiable)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _static_options(self, group: dict[str, Any]) -> tuple:
        return (bool(group["maximize"]), bool(group["decoupled_weight_decay"]))

    @staticmethod
    def _transformation(hp: dict[str, Any], static: tuple) -> optax.GradientTransformation:
        maximize, decoupled = static
        return torch_chain(
            hp, scale_by_torch_radam(hp["betas"], hp["1-betas"], hp["eps"], hp), maximize, decoupled
        )
