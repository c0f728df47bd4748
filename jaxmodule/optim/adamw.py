"""`AdamW`: Adam with decoupled weight decay. Mirrors `torch.optim.AdamW`."""

from __future__ import annotations

from .adam import Adam
from .optimizer import ParamsT

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam with decoupled weight decay (`p *= 1 - lr * weight_decay`). Mirrors `torch.optim.AdamW`.

    Args: as `Adam`, with `weight_decay` defaulting to 1e-2 and always decoupled.

    >>> import jax.numpy as jnp
    >>> from jaxmodule.nn import Parameter
    >>> w = Parameter(jnp.ones(2))
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = jnp.array([1.0, -1.0])
    >>> opt.step()
    >>> [round(x, 4) for x in w.tolist()]
    [0.85, 1.05]
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )
