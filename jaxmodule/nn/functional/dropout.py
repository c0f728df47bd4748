"""Dropout functions: element-wise, channel-wise (1d/2d/3d) and alpha dropout.

Mirrors the dropout part of `torch.nn.functional`, with the same signatures and defaults plus a
keyword-only `generator` (a `jaxmodule.Generator`; the global one by default) that supplies the
PRNG key. Random masks cannot match torch's bit for bit; their distribution and scaling do.

Differences from torch, for every function here:
- `inplace=True` is accepted but cannot modify the input (JAX arrays are immutable): use the
  returned array, which holds the result.
- A key is drawn from the generator only when a mask is actually sampled (training and
  0 < p < 1), as torch only advances its generator then. Drawing advances the generator, so
  compiled training steps belong in `jaxmodule.compile`, which threads the key through the
  program; a plain `jax.jit` would leave a tracer in the generator.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from ..._random import Generator, next_key
from ._utils import unwrap

__all__ = [
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
]

Array = jax.Array

# SELU's negative saturation value: -scale * alpha of `F.selu`.
_SELU_SATURATION = 1.7580993408473766


def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _warn_unusual_rank(ndim: int, spatial: int) -> None:
    """torch's deprecation warning of `dropout{spatial}d` for ranks other than spatial + 1, + 2."""
    if ndim not in (spatial + 1, spatial + 2):
        warnings.warn(
            f"dropout{spatial}d: Received a {ndim}-D input to dropout{spatial}d, which is "
            "deprecated and will result in an error in a future release. To retain the behavior "
            f"and silence this warning, please use dropout instead. Note that dropout{spatial}d "
            f"exists to provide channel-wise dropout on inputs with {spatial} spatial dimensions, "
            "a channel dimension, and an optional batch dimension (i.e. "
            f"{spatial + 1}D or {spatial + 2}D inputs).",
            stacklevel=3,
        )


def _dropout_impl(
    x: Array, p: float, training: bool, feature: bool, alpha: bool, generator: Generator | None
) -> Array:
    """torch's `_dropout_impl`: the shared body of all six functions."""
    if p == 0 or not training or x.size == 0:
        return x
    if p == 1:
        return x * jnp.zeros((), x.dtype)
    if feature:
        if x.ndim < 2:
            raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
        noise_shape = x.shape[:2] + (1,) * (x.ndim - 2)
    else:
        noise_shape = x.shape
    keep = jax.random.bernoulli(next_key(generator), 1.0 - p, noise_shape)
    noise = keep.astype(x.dtype)
    if not alpha:
        return x * (noise / jnp.asarray(1.0 - p, x.dtype))
    a = 1.0 / ((_SELU_SATURATION**2 * p + 1) * (1 - p)) ** 0.5
    b = (noise - 1) * (_SELU_SATURATION * a) + _SELU_SATURATION * a * p
    return x * (noise * a) + b


def dropout(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Zero each element with probability `p` and scale the rest by `1 / (1 - p)`.

    Mirrors `F.dropout`; see the module docstring for the differences.

    Args:
        input: any shape.
        p: probability of zeroing an element.
        training: apply dropout; otherwise return the input unchanged.
        inplace: accepted for compatibility (see above).
        generator: where the PRNG key comes from.

    >>> import jax.numpy as jnp
    >>> dropout(jnp.ones(3), 0.5, training=False).tolist()
    [1.0, 1.0, 1.0]
    """
    _check_p(p)
    return _dropout_impl(unwrap(input), p, training, False, False, generator)


def dropout1d(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Zero whole channels of `(N, C, L)` or `(C, L)` inputs. Mirrors `F.dropout1d`."""
    _check_p(p)
    x = unwrap(input)
    if x.ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that "
            "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, "
            "a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs)."
        )
    if x.ndim == 2:
        return _dropout_impl(x[None], p, training, True, False, generator)[0]
    return _dropout_impl(x, p, training, True, False, generator)


def dropout2d(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Zero whole channels of `(N, C, H, W)` inputs. Mirrors `F.dropout2d`.

    As in torch, a 3-D input is read as `(N, C, L)` (with a warning), not as an unbatched
    `(C, H, W)`; other ranks warn and are treated as `(N, C, *)`.
    """
    _check_p(p)
    x = unwrap(input)
    _warn_unusual_rank(x.ndim, 2)
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    return _dropout_impl(x, p, training, True, False, generator)


def dropout3d(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Zero whole channels of `(N, C, D, H, W)` or `(C, D, H, W)` inputs. Mirrors `F.dropout3d`.

    As in torch, ranks other than 4 and 5 warn, and any rank but 5 is treated as unbatched.
    """
    _check_p(p)
    x = unwrap(input)
    _warn_unusual_rank(x.ndim, 3)
    if x.ndim != 5:
        return _dropout_impl(x[None], p, training, True, False, generator)[0]
    return _dropout_impl(x, p, training, True, False, generator)


def alpha_dropout(
    input: Any,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Dropout that keeps zero mean and unit variance of SELU activations.

    Mirrors `F.alpha_dropout` (note torch's default `training=False`): dropped elements are set
    to SELU's negative saturation value, then an affine map restores mean and variance.
    """
    _check_p(p)
    return _dropout_impl(unwrap(input), p, training, False, True, generator)


def feature_alpha_dropout(
    input: Any,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: Generator | None = None,
) -> Array:
    """Alpha dropout of whole channels of an `(N, C, *)` input. Mirrors `F.feature_alpha_dropout`."""
    _check_p(p)
    return _dropout_impl(unwrap(input), p, training, True, True, generator)
