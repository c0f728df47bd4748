"""`Flatten` and `Unflatten`."""

from __future__ import annotations

from typing import Any

import jax

from ..functional._utils import unwrap
from ._eager import register_pure_forward
from .module import Module

__all__ = ["Flatten", "Unflatten"]


class Flatten(Module):
    """Flatten dims `start_dim..end_dim` into one. Mirrors `torch.nn.Flatten`.

    >>> import jax.numpy as jnp
    >>> Flatten()(jnp.ones((32, 1, 5, 5))).shape
    (32, 25)
    """

    __constants__ = ["start_dim", "end_dim"]

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> jax.Array:
        x = unwrap(input)
        nd = x.ndim
        if nd == 0:
            return x.reshape(1)
        s = self.start_dim % nd
        e = self.end_dim % nd
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = x.shape[:s] + (-1 if 0 not in x.shape[s : e + 1] else 0,) + x.shape[e + 1 :]
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expand dim `dim` into `unflattened_size`. Mirrors `torch.nn.Unflatten`."""

    def __init__(self, dim: int | str, unflattened_size: Any) -> None:
        super().__init__()
        if isinstance(dim, str):
            raise NotImplementedError("Unflatten: named dimensions (dim as str) are not supported")
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(
                f"unflattened_size must be tuple of ints, but found type {type(unflattened_size).__name__}"
            )
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input: Any) -> jax.Array:
        x = unwrap(input)
        d = self.dim % x.ndim
        return x.reshape(x.shape[:d] + tuple(self.unflattened_size) + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# pure inside a declared-pure parent (see _eager.py); not cached alone: a reshape that changes
# nothing returns the input object itself, as torch's flatten does
register_pure_forward(Flatten, Unflatten, alone=False)
