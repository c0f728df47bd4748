"""`parameters_to_vector` / `vector_to_parameters`. Mirrors `torch.nn.utils.convert_parameters`.

Difference from torch: there is no same-device check (torch raises TypeError for parameters on
different devices); JAX moves the pieces as `jnp.concatenate` needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._tensor import as_array, is_torch_tensor
from ..modules.module import typename
from ..parameter import _TensorCell

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Any]) -> jax.Array:
    """Flatten parameters (each row-major) and concatenate them into one vector.

    Args:
        parameters: an iterable of Parameters or arrays (typically `model.parameters()`).

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> parameters_to_vector(nn.Linear(3, 2).parameters()).shape
    (8,)
    """
    vec = [jnp.ravel(p._value if isinstance(p, _TensorCell) else p) for p in parameters]
    if not vec:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    return jnp.concatenate(vec)


def vector_to_parameters(vec: Any, parameters: Iterable[Any]) -> None:
    """Copy consecutive slices of `vec`, reshaped, into each parameter (`p.data = slice`).

    Mirrors `torch.nn.utils.vector_to_parameters`: as torch's `p.data = ...`, the parameter takes
    the vector's dtype.

    Args:
        vec: a 1-D array (jax, numpy or torch) holding all parameters' values.
        parameters: an iterable of Parameters.
    """
    if not isinstance(vec, (jax.Array, np.ndarray, _TensorCell)) and not is_torch_tensor(vec):
        raise TypeError(
            "vector_to_parameters: expected `vec` to be an array (jax.Array, numpy.ndarray or "
            f"torch.Tensor), but got: {typename(vec)}"
        )
    vec = as_array(vec)
    pointer = 0
    for param in parameters:
        n = int(np.prod(param.shape))
        piece = vec[pointer : pointer + n]
        if piece.size != n:
            raise RuntimeError(
                f"shape '{list(param.shape)}' is invalid for input of size {piece.size}"
            )
        param._value = piece.reshape(param.shape)
        pointer += n
