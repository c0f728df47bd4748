"""Gradient clipping: `clip_grad_norm_`, `clip_grad_value_`, `get_total_norm`, `clip_grads_with_norm_`.

Mirrors `torch.nn.utils.clip_grad`. "In place" means each parameter's `.grad` attribute is
replaced by the clipped array (JAX arrays are immutable), in the gradient's own dtype. Everything
is traceable, so the functions also work on gradients inside a compiled step, except
`error_if_nonfinite=True`, which needs concrete values to raise.

`foreach` is accepted for signature compatibility and has no effect: XLA fuses the per-array work.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp

from ..functional._eager_jit import jit_when_eager
from ..parameter import _TensorCell

__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
]


def _as_list(x: Any) -> list:
    if isinstance(x, (_TensorCell, jax.Array)):
        return [x]
    return list(x)


def _value(x: Any) -> jax.Array:
    return x._value if isinstance(x, _TensorCell) else jnp.asarray(x)


def _vector_norm(x: jax.Array, p: float) -> jax.Array:
    """torch.linalg.vector_norm over all elements (p = inf, -inf, 0 and any real p)."""
    # jax's hint says int | str, but vector_norm takes any real ord (inf, 2.5, ...) as torch does
    return jnp.linalg.vector_norm(jnp.ravel(x), ord=p)  # type: ignore[arg-type]


@jit_when_eager(static_argnames=("norm_type",))
def _total_norm(arrays: list[jax.Array], *, norm_type: float) -> jax.Array:
    """The norm of the arrays' norms; one cached program when eager."""
    norms = [_vector_norm(a, norm_type) for a in arrays]
    dtype = jnp.result_type(*norms)  # torch.stack promotes mixed dtypes the same way
    return _vector_norm(jnp.stack([n.astype(dtype) for n in norms]), norm_type)


@jit_when_eager(static_argnames=("max_norm",))
def _scaled(grads: list[jax.Array], total_norm: jax.Array, *, max_norm: float) -> list[jax.Array]:
    """Each gradient times `min(max_norm / (total_norm + 1e-6), 1)`, in its own dtype."""
    coef = jnp.minimum(max_norm / (total_norm + 1e-6), 1.0)
    return [(g * coef).astype(g.dtype) for g in grads]


@jit_when_eager(static_argnames=("norm_type", "max_norm"))
def _norm_and_scaled(
    grads: list[jax.Array], *, norm_type: float, max_norm: float
) -> tuple[jax.Array, list[jax.Array]]:
    """`_total_norm` and `_scaled` together: one cached program when eager."""
    total = _total_norm(grads, norm_type=norm_type)
    return total, _scaled(grads, total, max_norm=max_norm)


def _check_finite(total: jax.Array, norm_type: float) -> None:
    """torch's `error_if_nonfinite=True` check of a total norm."""
    if isinstance(total, jax.core.Tracer):
        raise NotImplementedError(
            "get_total_norm: error_if_nonfinite=True needs concrete values and cannot "
            "run inside jax.jit/grad tracing; call it eagerly or pass False"
        )
    if not bool(jnp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )


def get_total_norm(
    tensors: Any,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> jax.Array:
    """The `norm_type`-norm of all `tensors` together, as if concatenated into one vector.

    Mirrors `torch.nn.utils.get_total_norm`.

    Args:
        tensors: an array (or Parameter) or an iterable of them (typically gradients).
        norm_type: the p of the p-norm; `float('inf')` for the max-norm.
        error_if_nonfinite: raise RuntimeError if the total norm is nan or inf.
        foreach: accepted and ignored (see the module docstring).

    >>> import jax.numpy as jnp
    >>> get_total_norm([jnp.array([3.0]), jnp.array([4.0])]).item()
    5.0
    """
    arrays = [_value(t) for t in _as_list(tensors)]
    norm_type = float(norm_type)
    if not arrays:
        return jnp.asarray(0.0, jnp.float32)
    total = _total_norm(arrays, norm_type=norm_type)
    if error_if_nonfinite:
        _check_finite(total, norm_type)
    return total


def clip_grads_with_norm_(
    parameters: Any, max_norm: float, total_norm: Any, foreach: bool | None = None
) -> None:
    """Scale every `p.grad` by `min(max_norm / (total_norm + 1e-6), 1)`.

    Mirrors `torch.nn.utils.clip_grads_with_norm_`.

    Args:
        parameters: a Parameter or an iterable of Parameters (those with `grad` None are skipped).
        max_norm: the largest allowed norm.
        total_norm: the precomputed norm (from `get_total_norm`).
        foreach: accepted and ignored.
    """
    params = [p for p in _as_list(parameters) if getattr(p, "grad", None) is not None]
    max_norm = float(max_norm)
    if not params:
        return
    scaled = _scaled([p.grad for p in params], _value(total_norm), max_norm=max_norm)
    for p, g in zip(params, scaled):
        p.grad = g


def clip_grad_norm_(
    parameters: Any,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> jax.Array:
    """Rescale the gradients of `parameters` so their total `norm_type`-norm is at most `max_norm`.

    Mirrors `torch.nn.utils.clip_grad_norm_`: returns the total norm before clipping; each
    `p.grad` is replaced by the scaled gradient.

    Args:
        parameters: a Parameter or an iterable of Parameters (typically `model.parameters()`).
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm; `float('inf')` for the max-norm.
        error_if_nonfinite: raise RuntimeError if the total norm is nan or inf.
        foreach: accepted and ignored.

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> p = nn.Parameter(jnp.zeros(2)); p.grad = jnp.array([3.0, 4.0])
    >>> clip_grad_norm_([p], max_norm=1.0).item(), [round(g, 3) for g in p.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    params = _as_list(parameters)
    if isinstance(parameters, types.GeneratorType) and not params:
        warnings.warn(
            "`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=2
        )
    params = [p for p in params if getattr(p, "grad", None) is not None]
    if not params:
        return jnp.asarray(0.0, jnp.float32)
    norm_type, max_norm = float(norm_type), float(max_norm)
    total, scaled = _norm_and_scaled(
        [_value(p.grad) for p in params], norm_type=norm_type, max_norm=max_norm
    )
    if error_if_nonfinite:  # raises before any gradient changes
        _check_finite(total, norm_type)
    for p, g in zip(params, scaled):
        p.grad = g
    return total


def clip_grad_norm(
    parameters: Any,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> jax.Array:
    """Deprecated alias of `clip_grad_norm_` (warns FutureWarning, as torch does)."""
    warnings.warn(
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(
    parameters: Iterable[Any] | Any, clip_value: float, foreach: bool | None = None
) -> None:
    """Clamp every `p.grad` into `[-clip_value, clip_value]`. Mirrors `torch.nn.utils.clip_grad_value_`.

    Args:
        parameters: a Parameter or an iterable of Parameters.
        clip_value: the bound.
        foreach: accepted and ignored.
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        g = getattr(p, "grad", None)
        if g is not None:
            p.grad = jnp.clip(g, -clip_value, clip_value).astype(g.dtype)
