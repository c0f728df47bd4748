"""`linear` and `bilinear`: torch.nn.functional's affine maps."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._utils import unwrap

__all__ = ["linear", "bilinear"]


def linear(input: Any, weight: Any, bias: Any = None) -> jax.Array:
    """`input @ weight.T + bias` with weight of shape (out_features, in_features). Mirrors torch.

    Shape:
        input (*, in), weight (out, in), bias (out) -> (*, out)
    """
    out = jnp.matmul(unwrap(input), unwrap(weight).T)
    if bias is not None:
        out = out + unwrap(bias)
    return out


def bilinear(input1: Any, input2: Any, weight: Any, bias: Any = None) -> jax.Array:
    """`y_k = x1^T W_k x2 + b_k` with weight (out, in1, in2). Mirrors `torch.nn.functional.bilinear`."""
    out = jnp.einsum("...i,kij,...j->...k", unwrap(input1), unwrap(weight), unwrap(input2))
    if bias is not None:
        out = out + unwrap(bias)
    return out
