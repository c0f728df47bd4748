"""`linear` and `bilinear`: torch.nn.functional's affine maps."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ...amp.autocast_mode import autocast_inputs
from ._utils import unwrap

__all__ = ["linear", "bilinear"]


def linear(input: Any, weight: Any, bias: Any = None) -> jax.Array:
    """`input @ weight.T + bias` with weight of shape (out_features, in_features). Mirrors torch.

    Shape:
        input (*, in), weight (out, in), bias (out) -> (*, out)
    """
    x, w, b = autocast_inputs(unwrap(input), unwrap(weight), unwrap(bias))
    out = jnp.matmul(x, w.T)
    if b is not None:
        out = out + b
    return out


def bilinear(input1: Any, input2: Any, weight: Any, bias: Any = None) -> jax.Array:
    """`y_k = x1^T W_k x2 + b_k` with weight (out, in1, in2). Mirrors `torch.nn.functional.bilinear`."""
    x1, w, x2, b = autocast_inputs(unwrap(input1), unwrap(weight), unwrap(input2), unwrap(bias))
    out = jnp.einsum("...i,kij,...j->...k", x1, w, x2)
    if b is not None:
        out = out + b
    return out
