"""Questions about a tensor: numel, is_floating_point, is_complex, is_nonzero."""

from __future__ import annotations

import builtins
import math
from typing import Any

import jax.numpy as jnp

from ._common import arr

__all__ = ["numel", "is_floating_point", "is_complex", "is_nonzero"]


def numel(input: Any) -> int:
    """Number of elements. Mirrors `torch.numel`."""
    return math.prod(arr(input).shape)


def is_floating_point(input: Any) -> bool:
    """True for floating dtypes (bfloat16 and float16 too). Mirrors `torch.is_floating_point`."""
    return builtins.bool(jnp.issubdtype(arr(input).dtype, jnp.floating))


def is_complex(input: Any) -> bool:
    """True for complex dtypes. Mirrors `torch.is_complex`."""
    return builtins.bool(jnp.issubdtype(arr(input).dtype, jnp.complexfloating))


def is_nonzero(input: Any) -> bool:
    """The truth value of a one-element tensor. Mirrors `torch.is_nonzero`."""
    x = arr(input)
    if x.size != 1:
        raise RuntimeError(
            f"Boolean value of Tensor with {'no values' if x.size == 0 else 'more than one value'} is ambiguous"
        )
    return builtins.bool(x.reshape(()))
