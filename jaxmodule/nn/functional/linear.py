"""`linear` and `bilinear`: torch.nn.functional's affine maps."""

from __future__ import annotations

import math
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
    try:
        out = jnp.matmul(x, w.T)
    except TypeError as e:
        raise _shape_mismatch(x, w) or e from None
    if b is not None:
        out = out + b
    return out


def _shape_mismatch(x: Any, w: Any) -> RuntimeError | None:
    """torch's error for an input whose last dimension is not the weight's in_features (error path
    only), or None when that is not what went wrong."""
    xs, ws = getattr(x, "shape", None), getattr(w, "shape", None)
    if xs is None or ws is None or len(ws) != 2 or not xs or xs[-1] == ws[1]:
        return None
    rows = math.prod(xs[:-1])
    return RuntimeError(
        f"mat1 and mat2 shapes cannot be multiplied ({rows}x{xs[-1]} and {ws[1]}x{ws[0]})"
    )


def bilinear(input1: Any, input2: Any, weight: Any, bias: Any = None) -> jax.Array:
    """`y_k = x1^T W_k x2 + b_k` with weight (out, in1, in2). Mirrors `torch.nn.functional.bilinear`."""
    x1, w, x2, b = autocast_inputs(unwrap(input1), unwrap(weight), unwrap(input2), unwrap(bias))
    out = jnp.einsum("...i,kij,...j->...k", x1, w, x2)
    if b is not None:
        out = out + b
    return out
