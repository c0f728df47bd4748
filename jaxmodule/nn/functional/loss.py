"""Loss functions. Mirrors the losses of `torch.nn.functional`.

Every loss takes torch's `reduction` ('none' | 'mean' | 'sum'; 'batchmean' for `kl_div`). torch's
deprecated `size_average` / `reduce` arguments are accepted only as None: pass `reduction` instead.

Checks that depend on array values (class indices in range, probabilities in [0, 1], variances
non-negative) run only on concrete arrays, i.e. eagerly; inside `jax.jit` they are skipped, as on a
GPU torch reports them asynchronously or not at all.

>>> import jax.numpy as jnp
>>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 4)
1.3863
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from ._ctc import ctc_loss
from ._eager_jit import jit_when_eager
from ._utils import reduce_loss, unwrap
from .activation import log_softmax
from .distance import pairwise_distance

__all__ = [
    "l1_loss",
    "mse_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "huber_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "multilabel_soft_margin_loss",
    "multilabel_margin_loss",
    "multi_margin_loss",
    "cosine_embedding_loss",
    "margin_ranking_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "hinge_embedding_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "ctc_loss",
    "linear_cross_entropy",
]

Array = jax.Array
_REDUCTIONS = ("none", "mean", "sum")


# ---- helpers ---------------------------------------------------------------------------------
def _legacy(fn: str, size_average: Any, reduce: Any) -> None:
    if size_average is not None or reduce is not None:
        raise NotImplementedError(
            f"{fn}: the deprecated `size_average`/`reduce` arguments are not supported; "
            "pass reduction='none' | 'mean' | 'sum' instead"
        )


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _any_eager(cond: Callable[[np.ndarray], np.ndarray], x: Array) -> bool:
    """`cond(x).any()` on the host when `x` is concrete; False while tracing (check skipped).

    numpy, not jnp: inside a trace even jnp ops on concrete arrays are staged out.
    """
    return _concrete(x) and bool(cond(np.asarray(x)).any())


def _arr(x: Any) -> Array:
    x = unwrap(x)
    return x if isinstance(x, jax.Array) else jnp.asarray(x)  # an array (or tracer) as it is: no op


def _warn_size(input: Array, target: Array) -> None:
    if input.shape != target.shape:
        warnings.warn(
            f"Using a target size ({tuple(target.shape)}) that is different to the input size "
            f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def _abs(x: Array) -> Array:
    """|x| with gradient sign(x) (0 at 0), as torch's abs backward."""
    return x * jnp.sign(jax.lax.stop_gradient(x))


def _clamp_min(x: Array, lo: float) -> Array:
    """max(x, lo) passing the gradient at x == lo, as torch's clamp_min."""
    return jnp.where(x >= lo, x, jnp.asarray(lo, x.dtype))


def _positive_part(x: Array) -> Array:
    """x where x > 0 else 0 (gradient 0 at 0), as torch's margin kernels."""
    return jnp.where(x > 0, x, jnp.zeros((), x.dtype))


def _weighted(loss: Array, weight: Any, reduction: str, mean_by_weight: bool) -> Array:
    """Multiply by a same-shape `weight` (if not None) and reduce (torch's l1/mse/huber paths)."""
    if weight is None:
        _check_reduction(reduction)
        return reduce_loss(loss, reduction)
    w = _arr(weight)
    if w.shape != loss.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'."
        )
    out = loss * w
    if reduction == "mean" and mean_by_weight:
        return out.sum() / w.sum()
    return reduce_loss(out, reduction)


# ---- regression losses ---------------------------------------------------------------------
def l1_loss(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Array | None = None,
) -> Array:
    """Mean absolute error. Mirrors `torch.nn.functional.l1_loss`.

    Args:
        weight: optional per-element weight of the input's shape; 'mean' then divides by its sum.
    """
    _legacy("l1_loss", size_average, reduce)
    x, y = _arr(input), _arr(target)
    _warn_size(x, y)
    loss = _abs(x - y)
    return _weighted(loss, weight, reduction, mean_by_weight=True)


def mse_loss(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Array | None = None,
) -> Array:
    """Mean squared error. Mirrors `torch.nn.functional.mse_loss`.

    Args:
        weight: optional per-element weight of the input's shape; 'mean' then divides by its sum.
    """
    _legacy("mse_loss", size_average, reduce)
    x, y = _arr(input), _arr(target)
    _warn_size(x, y)
    d = x - y
    loss = d * d
    return _weighted(loss, weight, reduction, mean_by_weight=True)


def huber_loss(
    input: Array,
    target: Array,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Array | None = None,
) -> Array:
    """0.5 d^2 for |d| < delta, else delta (|d| - delta / 2). Mirrors `torch.nn.functional.huber_loss`.

    Args:
        delta: the switch point between the quadratic and linear parts.
        weight: optional per-element weight of the input's shape ('mean' is a plain mean).
    """
    x, y = _arr(input), _arr(target)
    _warn_size(x, y)
    d = x - y
    z = _abs(d)
    loss = jnp.where(z < delta, 0.5 * d * d, delta * (z - 0.5 * delta))
    return _weighted(loss, weight, reduction, mean_by_weight=False)


def smooth_l1_loss(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Array:
    """0.5 d^2 / beta for |d| < beta, else |d| - beta / 2. Mirrors `torch.nn.functional.smooth_l1_loss`."""
    _legacy("smooth_l1_loss", size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    x, y = _arr(input), _arr(target)
    _warn_size(x, y)
    _check_reduction(reduction)
    d = x - y
    z = _abs(d)
    if beta == 0:
        return reduce_loss(z, reduction)
    loss = jnp.where(z < beta, 0.5 * d * d / beta, z - 0.5 * beta)
    return reduce_loss(loss, reduction)


def poisson_nll_loss(
    input: Array,
    target: Array,
    log_input: bool = True,
    full: bool = False,
    size_average: bool | None = None,
    eps: float = 1e-8,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """Negative log likelihood of a Poisson target. Mirrors `torch.nn.functional.poisson_nll_loss`.

    Args:
        log_input: `input` is log(rate) (loss exp(input) - target * input), else the rate itself
            (loss input - target * log(input + eps)).
        full: add the Stirling approximation term for targets > 1.
        eps: added inside the log when `log_input=False`.
    """
    _legacy("poisson_nll_loss", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    if log_input:
        loss = jnp.exp(x) - t * x
    else:
        loss = x - t * jnp.log(x + eps)
    if full:
        big = t > 1
        ts = jnp.where(big, t, 2)
        stirling = ts * jnp.log(ts) - ts + 0.5 * jnp.log(2 * math.pi * ts)
        loss = loss + jnp.where(big, stirling, 0)
    return reduce_loss(loss, reduction)


def gaussian_nll_loss(
    input: Array,
    target: Array,
    var: Array | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Array:
    """Negative log likelihood of a Gaussian target. Mirrors `torch.nn.functional.gaussian_nll_loss`.

    Args:
        var: the variance: same shape as input, one dimension short of it, broadcastable to it
            with exactly one size-1 mismatch, or a float.
        full: add the constant 0.5 * log(2 pi).
        eps: variance clamp (the clamp passes gradients straight through, as in torch).
    """
    x, t = _arr(input), _arr(target)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        v = jnp.full(x.shape, var, x.dtype)
    else:
        v = _arr(var)
        if _any_eager(lambda a: a < 0, v):
            raise ValueError("var has negative entry/entries")
    if v.shape != x.shape:
        if x.shape[:-1] == v.shape:
            v = v[..., None]
        elif x.ndim == v.ndim and sum(b for a, b in zip(x.shape, v.shape) if a != b) == 1:
            pass
        else:
            raise ValueError("var is of incorrect size")
    if reduction not in _REDUCTIONS:
        raise ValueError(reduction + " is not valid")
    v = v + jax.lax.stop_gradient(jnp.maximum(v, eps) - v)
    loss = 0.5 * (jnp.log(v) + (x - t) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction)


# ---- classification: log-likelihood losses ---------------------------------------------------
def _check_int_target(t: Array) -> None:
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise RuntimeError(
            f"expected target dtype to be an integer type (class indices), but got {t.dtype}"
        )


def _check_nll_shapes(x: Array, t: Array) -> None:
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if x.ndim == 1:
        if not (t.ndim == 0 or (t.ndim == 1 and t.shape[0] == 1)):
            raise ValueError(
                f"For 1D input, 1D target must have size 1, but got target size: {t.size}"
            )
        return
    if t.ndim < 1 or t.shape[0] != x.shape[0]:
        n = t.shape[0] if t.ndim else 1
        raise ValueError(
            f"Expected input batch_size ({x.shape[0]}) to match target batch_size ({n})."
        )
    if x.ndim == 2 and t.ndim != 1:
        raise RuntimeError("1D target tensor expected, multi-target not supported")
    if x.ndim > 2 and t.shape != (x.shape[0],) + x.shape[2:]:
        want = [x.shape[0], *x.shape[2:]]
        raise RuntimeError(f"Expected target size {want}, got {list(t.shape)}")


def _class_weight(weight: Any, n_classes: int) -> Array | None:
    if weight is None:
        return None
    w = _arr(weight)
    if w.size != n_classes:
        raise RuntimeError(
            f"weight tensor should be defined either for all {n_classes} classes or no "
            f"classes but got weight tensor of shape: {list(w.shape)}"
        )
    return w.reshape(n_classes)


def _check_targets_in_range(t: Array, n_classes: int, ignore_index: int) -> None:
    if not _concrete(t):
        return
    tv = np.asarray(t)
    bad = (tv != ignore_index) & ((tv < 0) | (tv >= n_classes))
    if bad.any():
        raise IndexError(f"Target {tv[bad].flat[0]} is out of bounds.")


def _picked(
    scores: Array, t: Array, w: Array | None, ignore_index: int
) -> tuple[Array, Array, Array]:
    """Each target's entry of (N, C, ...) `scores` (0 where ignored: any valid class is read),
    its weight (0 where ignored), and the ignore mask."""
    valid = t != ignore_index
    ts = jnp.where(valid, t, 0).astype(jnp.int32)
    picked = jnp.take_along_axis(scores, ts[:, None], axis=1)[:, 0]
    tw = jnp.ones(ts.shape, scores.dtype) if w is None else w[ts].astype(scores.dtype)
    return picked, jnp.where(valid, tw, 0), valid


def _nll(
    logp: Array, t: Array, w: Array | None, ignore_index: int, reduction: str
) -> tuple[Array, Array, Array]:
    """Per-element loss, per-element target weights (0 where ignored), and the ignore mask."""
    picked, tw, valid = _picked(logp, t, w, ignore_index)
    return -picked * tw, tw, valid


def _reduce_nll(loss: Array, tw: Array, reduction: str, squeeze: bool) -> Array:
    if reduction == "none":
        return loss[0] if squeeze else loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / tw.sum()


@jit_when_eager(static_argnames=("ignore_index", "reduction", "squeeze"))
def _nll_reduced(
    logp: Array, t: Array, w: Array | None, *, ignore_index: int, reduction: str, squeeze: bool
) -> Array:
    """The reduced NLL of checked (N, C, ...) log-probabilities; one cached program when eager."""
    loss, tw, _ = _nll(logp, t, w, ignore_index, reduction)
    return _reduce_nll(loss, tw, reduction, squeeze)


@jit_when_eager(static_argnames=("ignore_index", "reduction", "squeeze"))
def _cross_entropy_reduced(
    x: Array, t: Array, w: Array | None, *, ignore_index: int, reduction: str, squeeze: bool
) -> Array:
    """The reduced cross entropy of checked (N, C, ...) float32/64 logits against class indices:
    log-sum-exp over the classes minus the target's logit, so the (N, C, ...) log-softmax is never
    materialised (torch's log_softmax + nll_loss, one pass fewer over the logits)."""
    picked, tw, _ = _picked(x, t, w, ignore_index)
    return _reduce_nll((jax.nn.logsumexp(x, axis=1) - picked) * tw, tw, reduction, squeeze)


def nll_loss(
    input: Array,
    target: Array,
    weight: Array | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """Negative log likelihood of class indices. Mirrors `torch.nn.functional.nll_loss`.

    Args:
        input: log-probabilities (C), (N, C) or (N, C, d1, ...).
        target: class indices (), (N) or (N, d1, ...), any integer dtype.
        weight: per-class weights (C); 'mean' divides by the sum of the targets' weights.
        ignore_index: target value that contributes neither loss nor weight.
    """
    _legacy("nll_loss", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    _check_nll_shapes(x, t)
    _check_int_target(t)
    squeeze = x.ndim == 1
    if squeeze:
        x, t = x[None], t.reshape(1)
    w = _class_weight(weight, x.shape[1])
    _check_targets_in_range(t, x.shape[1], ignore_index)
    return _nll_reduced(
        x, t, w, ignore_index=int(ignore_index), reduction=reduction, squeeze=squeeze
    )


def cross_entropy(
    input: Array,
    target: Array,
    weight: Array | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Cross entropy of logits against class indices or class probabilities. Mirrors `torch.nn.functional.cross_entropy`.

    Args:
        input: logits (C), (N, C) or (N, C, d1, ...).
        target: class indices (), (N), (N, d1, ...), or probabilities of the input's shape.
        weight: per-class weights (C).
        ignore_index: class-index target value to skip (index targets only).
        label_smoothing: in [0, 1]; mixes the target with the uniform distribution.
    """
    _legacy("cross_entropy", size_average, reduce)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    x, t = _arr(input), _arr(target)
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    w = _class_weight(weight, n_classes)

    if t.shape == x.shape:  # class probabilities
        logp = log_softmax(x, class_dim)
        if not jnp.issubdtype(t.dtype, jnp.floating):
            raise RuntimeError(
                f"Expected floating point type for target with class probabilities, got {t.dtype}"
            )
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * t
        if w is not None:
            prod = prod * w.reshape((n_classes,) + (1,) * (x.ndim - class_dim - 1))
        per = -prod.sum(class_dim)
        if reduction == "mean":
            return per.sum() / (x.size // n_classes) if x.size else jnp.full((), jnp.nan, x.dtype)
        return reduce_loss(per, reduction)

    _check_nll_shapes(x, t)
    _check_int_target(t)
    squeeze = x.ndim == 1
    if squeeze:
        x, t = x[None], t.reshape(1)
    _check_targets_in_range(t, n_classes, ignore_index)
    if label_smoothing == 0 and x.dtype in (jnp.float32, jnp.float64):
        return _cross_entropy_reduced(
            x, t, w, ignore_index=int(ignore_index), reduction=reduction, squeeze=squeeze
        )
    logp = log_softmax(x, 1)  # half precision: torch's log_softmax rounding, then the NLL
    if label_smoothing == 0:
        return _nll_reduced(
            logp, t, w, ignore_index=int(ignore_index), reduction=reduction, squeeze=squeeze
        )
    loss, tw, valid = _nll(logp, t, w, ignore_index, reduction)

    # Label smoothing: (1 - ls) * nll + ls / C * (sum over classes of -w_c log p_c).
    lw = logp if w is None else logp * w.reshape((n_classes,) + (1,) * (logp.ndim - 2))
    smooth = jnp.where(valid, -lw.sum(1), 0)
    if reduction == "none":
        nll_part, smooth_part = loss, smooth
        if squeeze:
            nll_part, smooth_part = nll_part[0], smooth_part[0]
    elif reduction == "sum":
        nll_part, smooth_part = loss.sum(), smooth.sum()
    else:
        denom = tw.sum()
        nll_part, smooth_part = loss.sum() / denom, smooth.sum() / denom
    return (1 - label_smoothing) * nll_part + smooth_part * (label_smoothing / n_classes)


def linear_cross_entropy(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any = None,
) -> Array:
    """cross_entropy(input @ linear_weight.T + linear_bias, target). Mirrors `torch.nn.functional.linear_cross_entropy`.

    Args:
        input: (N, in_features) or (in_features).
        linear_weight: (num_classes, *out_features, in_features).
        target: class indices or probabilities of the logits' shape (N, num_classes, *out_features).
        linear_bias: (num_classes, *out_features).

    `options` (torch's chunked computation) is not supported: the logits are materialised.
    """
    if options is not None:
        raise NotImplementedError(
            "linear_cross_entropy: `options` (chunked computation) is not supported; pass options=None"
        )
    x, lw, t = _arr(input), _arr(linear_weight), _arr(target)
    if x.ndim < 1 or x.ndim > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {x.ndim}")
    if lw.ndim < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {lw.ndim}")
    if x.shape[-1] != lw.shape[-1]:
        raise RuntimeError(
            "expected equal input and linear_weight last dimensions (in_features), "
            f"got {x.shape[-1]} and {lw.shape[-1]}, respectively"
        )
    num_classes, out_features, batch = lw.shape[0], lw.shape[1:-1], x.shape[:-1]
    if linear_bias is not None and tuple(linear_bias.shape) != (num_classes, *out_features):
        raise RuntimeError(
            f"expected linear_bias shape {(num_classes, *out_features)}, "
            f"got {tuple(linear_bias.shape)}"
        )
    if out_features and not batch:
        raise RuntimeError(
            f"K-dimensional loss defined by linear_weight shape {tuple(lw.shape)} requires"
            f" batched input, (N, {x.shape[-1]}), got unbatched input with shape {tuple(x.shape)}"
        )
    logits_shape = (*batch, num_classes, *out_features)
    if t.shape == logits_shape and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    logits = x @ lw.reshape(-1, lw.shape[-1]).T
    if linear_bias is not None:
        logits = logits + _arr(linear_bias).reshape(-1)
    return cross_entropy(
        logits.reshape(logits_shape),
        t,
        weight=weight,
        reduction=reduction,
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=label_smoothing,
    )


@jax.custom_vjp
def _bce_elementwise(x: Array, t: Array) -> Array:
    return -(t * jnp.maximum(jnp.log(x), -100) + (1 - t) * jnp.maximum(jnp.log1p(-x), -100))


def _bce_fwd(x: Array, t: Array) -> tuple[Array, tuple[Array, Array]]:
    return _bce_elementwise(x, t), (x, t)


def _bce_bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    # torch's formulas: d/dx = (x - t) / max(x (1 - x), 1e-12); d/dt = -logit(x) (unclamped).
    x, t = res
    gx = g * (x - t) / jnp.maximum((1 - x) * x, 1e-12)
    gt = g * (jnp.log1p(-x) - jnp.log(x))
    return gx, gt


_bce_elementwise.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy(
    input: Array,
    target: Array,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """Binary cross entropy of probabilities; logs are clamped at -100. Mirrors `torch.nn.functional.binary_cross_entropy`.

    Args:
        input: probabilities in [0, 1].
        target: same shape as input.
        weight: broadcastable to the target's shape.
    """
    _legacy("binary_cross_entropy", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    if t.shape != x.shape:
        raise ValueError(
            f"Using a target size ({tuple(t.shape)}) that is different to the input size "
            f"({tuple(x.shape)}) is deprecated. Please ensure they have the same size."
        )
    if _any_eager(lambda a: (a < 0) | (a > 1), x):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = _bce_elementwise(x, t.astype(x.dtype))
    if weight is not None:
        w = _arr(weight)
        loss = loss * jnp.broadcast_to(w, jnp.broadcast_shapes(t.shape, w.shape))
    return reduce_loss(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Array,
    target: Array,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Array | None = None,
) -> Array:
    """Sigmoid + binary cross entropy, computed stably. Mirrors `torch.nn.functional.binary_cross_entropy_with_logits`.

    Args:
        weight: broadcastable to the input's shape.
        pos_weight: weight of positive examples, broadcastable (usually one per class, last dim).
    """
    _legacy("binary_cross_entropy_with_logits", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    if t.shape != x.shape:
        raise ValueError(
            f"Target size ({tuple(t.shape)}) must be the same as input size ({tuple(x.shape)})"
        )
    log_sig = jax.nn.log_sigmoid(x)
    if pos_weight is not None:
        log_weight = (_arr(pos_weight) - 1) * t + 1
        loss = (1 - t) * x - log_weight * log_sig
    else:
        loss = (1 - t) * x - log_sig
    if weight is not None:
        loss = loss * _arr(weight)
    return reduce_loss(loss, reduction)


def kl_div(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Array:
    """KL divergence: target * (log target - input), input given in log space. Mirrors `torch.nn.functional.kl_div`.

    Args:
        reduction: 'none' | 'mean' (over all elements, warns as torch does) | 'batchmean'
            (sum / batch size) | 'sum'.
        log_target: the target is given in log space too.
    """
    _legacy("kl_div", size_average, reduce)
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            stacklevel=2,
        )
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    x, t = _arr(input), _arr(target)
    if log_target:
        loss = jnp.exp(t) * (t - x)
    else:
        loss = xlogy(t, t) - t * x
    if reduction == "batchmean":
        total = loss.sum()
        return total / x.shape[0] if x.ndim != 0 else total
    return reduce_loss(loss, reduction)


# ---- margin losses -------------------------------------------------------------------------
def soft_margin_loss(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """log(1 + exp(-target * input)) per element. Mirrors `torch.nn.functional.soft_margin_loss`.

    Evaluated as softplus, so large margins do not overflow to inf as torch's log1p(exp(.)) does.
    """
    _legacy("soft_margin_loss", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    return reduce_loss(jax.nn.softplus(-t * x), reduction)


def multilabel_soft_margin_loss(
    input: Array,
    target: Array,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """One-versus-all logistic loss averaged over classes (last dim). Mirrors `torch.nn.functional.multilabel_soft_margin_loss`."""
    _legacy("multilabel_soft_margin_loss", size_average, reduce)
    x, t = _arr(input), _arr(target)
    loss = -(t * jax.nn.log_sigmoid(x) + (1 - t) * jax.nn.log_sigmoid(-x))
    if weight is not None:
        loss = loss * _arr(weight)
    loss = loss.sum(axis=-1) / x.shape[-1]
    if reduction not in _REDUCTIONS:
        raise ValueError(reduction + " is not valid")
    return reduce_loss(loss, reduction)


def _as_batch(x: Array, t: Array, fn: str) -> tuple[Array, Array, bool]:
    if x.ndim == 0 or x.ndim > 2 or x.shape[-1] == 0:
        raise RuntimeError(
            f"{fn}: Expected non-empty vector or matrix with optional 0-dim batch size, "
            f"but got: {list(x.shape)}"
        )
    if x.ndim == 1:
        return x[None], t.reshape((1,) + t.shape), True
    return x, t, False


def multi_margin_loss(
    input: Array,
    target: Array,
    p: int = 1,
    margin: float = 1.0,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """Multi-class hinge loss, sum_i max(0, margin - x[y] + x[i])^p / C. Mirrors `torch.nn.functional.multi_margin_loss`.

    Args:
        p: 1 or 2.
        margin: the hinge margin.
        weight: per-class weights (C), applied by target class.
    """
    _legacy("multi_margin_loss", size_average, reduce)
    _check_reduction(reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and jnp.ndim(unwrap(weight)) != 1:
        raise ValueError("weight must be one-dimensional")
    x, t = _arr(input), _arr(target)
    x, t, squeeze = _as_batch(x, t, "multi_margin_loss")
    n, c = x.shape
    if t.shape != (n,):
        raise RuntimeError(f"inconsistent target size, expected {n} but got {list(t.shape)}")
    _check_int_target(t)
    if _any_eager(lambda a: (a < 0) | (a >= c), t):
        raise RuntimeError("target out of range")
    ti = t.astype(jnp.int32)
    xt = jnp.take_along_axis(x, ti[:, None], axis=1)
    h = _positive_part(margin - xt + x)
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * _arr(weight)[ti][:, None]
    h = jnp.where(jnp.arange(c)[None, :] == ti[:, None], 0, h)
    loss = h.sum(1) / c
    return reduce_loss(loss[0] if squeeze else loss, reduction)


def multilabel_margin_loss(
    input: Array,
    target: Array,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """Multi-label hinge loss over target classes vs the rest. Mirrors `torch.nn.functional.multilabel_margin_loss`.

    Args:
        target: class indices of the input's shape, padded with -1 after the last target.
    """
    _legacy("multilabel_margin_loss", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    x, t, squeeze = _as_batch(x, t, "multilabel_margin_loss")
    n, c = x.shape
    if t.shape != x.shape:
        raise RuntimeError(
            f"inconsistent target size: {list(t.shape)} for input of size: {list(x.shape)}"
        )
    _check_int_target(t)
    if _any_eager(lambda a: (a < -1) | (a >= c), t):
        raise RuntimeError("multilabel_margin_loss: target index out of range")
    valid = jnp.cumprod(t >= 0, axis=1).astype(bool)  # targets up to the first -1
    ts = jnp.where(valid, t, 0).astype(jnp.int32)
    is_target = jnp.any(
        (ts[:, :, None] == jnp.arange(c)[None, None, :]) & valid[:, :, None], axis=1
    )
    xt = jnp.take_along_axis(x, ts, axis=1)  # (n, c): x at each listed target
    z = _positive_part(1 - xt[:, :, None] + x[:, None, :])  # (n, target j, class i)
    mask = valid[:, :, None] & ~is_target[:, None, :]
    loss = jnp.where(mask, z, 0).sum((1, 2)) / c
    return reduce_loss(loss[0] if squeeze else loss, reduction)


def cosine_embedding_loss(
    input1: Array,
    input2: Array,
    target: Array,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """1 - cos(x1, x2) for target 1, max(0, cos - margin) for -1. Mirrors `torch.nn.functional.cosine_embedding_loss`."""
    _legacy("cosine_embedding_loss", size_average, reduce)
    _check_reduction(reduction)
    x1, x2, t = _arr(input1), _arr(input2), _arr(target)
    if t.ndim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    want = t.ndim + 1
    if x1.ndim != want or x2.ndim != want:
        raise RuntimeError(
            f"{t.ndim}D target tensor expects {want}D input tensors, but found inputs "
            f"with sizes {list(x1.shape)} and {list(x2.shape)}."
        )
    eps = 1e-12
    prod = (x1 * x2).sum(-1)
    m1 = (x1 * x1).sum(-1) + eps
    m2 = (x2 * x2).sum(-1) + eps
    cos = prod / jnp.sqrt(m1 * m2)
    zero = jnp.zeros_like(cos)
    out = jnp.where(t == 1, 1 - cos, zero) + jnp.where(t == -1, _clamp_min(cos - margin, 0), zero)
    return reduce_loss(out, reduction)


def margin_ranking_loss(
    input1: Array,
    input2: Array,
    target: Array,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """max(0, -target * (x1 - x2) + margin). Mirrors `torch.nn.functional.margin_ranking_loss`."""
    _legacy("margin_ranking_loss", size_average, reduce)
    _check_reduction(reduction)
    x1, x2, t = _arr(input1), _arr(input2), _arr(target)
    if x1.ndim != x2.ndim or x1.ndim != t.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: {tuple(x1.shape)}, input2: {tuple(x2.shape)}, target: {tuple(t.shape)} "
        )
    return reduce_loss(_clamp_min(-t * (x1 - x2) + margin, 0), reduction)


def hinge_embedding_loss(
    input: Array,
    target: Array,
    margin: float = 1.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """x for target 1, max(0, margin - x) for target -1. Mirrors `torch.nn.functional.hinge_embedding_loss`."""
    _legacy("hinge_embedding_loss", size_average, reduce)
    _check_reduction(reduction)
    x, t = _arr(input), _arr(target)
    zero = jnp.zeros((), x.dtype)
    out = jnp.where(t != 1, _clamp_min(margin - x, 0), zero) + jnp.where(t != -1, x, zero)
    return reduce_loss(out, reduction)


def _check_triplet_dims(a: Array, p: Array, n: Array) -> None:
    if not (a.ndim == p.ndim == n.ndim):
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same "
            f"number of dimensions, but got: anchor {a.ndim}D, positive {p.ndim}D, and "
            f"negative {n.ndim}D inputs"
        )


def triplet_margin_loss(
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    """max(0, d(a, p) - d(a, n) + margin) with d the p-norm distance. Mirrors `torch.nn.functional.triplet_margin_loss`.

    Args:
        margin: must be > 0.
        p: norm degree of the pairwise distance.
        eps: added to the difference before the norm.
        swap: use min(d(a, n), d(p, n)) as the negative distance.
    """
    _legacy("triplet_margin_loss", size_average, reduce)
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, pos, neg = _arr(anchor), _arr(positive), _arr(negative)
    _check_triplet_dims(a, pos, neg)
    d_pos = pairwise_distance(a, pos, p, eps)
    d_neg = pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = jnp.minimum(d_neg, pairwise_distance(pos, neg, p, eps))
    return reduce_loss(_clamp_min(margin + d_pos - d_neg, 0), reduction)


def triplet_margin_with_distance_loss(
    anchor: Array,
    positive: Array,
    negative: Array,
    *,
    distance_function: Callable[[Array, Array], Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Array:
    """Triplet loss with a custom distance. Mirrors `torch.nn.functional.triplet_margin_with_distance_loss`.

    Args:
        distance_function: (x1, x2) -> distances; defaults to the 2-norm pairwise distance.
        margin: must be > 0.
        swap: use min(d(a, n), d(p, n)) as the negative distance.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, pos, neg = _arr(anchor), _arr(positive), _arr(negative)
    _check_triplet_dims(a, pos, neg)
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(a, pos)
    d_neg = dist(a, neg)
    if swap:
        d_neg = jnp.minimum(d_neg, dist(pos, neg))
    return reduce_loss(_clamp_min(margin + d_pos - d_neg, 0), reduction)
