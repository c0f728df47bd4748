"""Connectionist Temporal Classification loss: the forward (alpha) recursion in log space.

The recursion runs as one `jax.lax.scan` over time on the extended label sequence
(blank, l1, blank, l2, ..., blank) of every batch element at once; gradients come from
differentiating the scan.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._utils import unwrap

__all__ = ["ctc_loss"]

Array = jax.Array


def _lse(*xs: Array) -> Array:
    """log(sum(exp(x))) that returns -inf (with zero, not NaN, gradients) when every x is -inf."""
    m = xs[0]
    for x in xs[1:]:
        m = jnp.maximum(m, x)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0))
    s = sum(jnp.exp(x - m) for x in xs)
    pos = s > 0
    return jnp.where(pos, m + jnp.log(jnp.where(pos, s, 1)), -jnp.inf)


def _is_concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _lengths(x: Any, n: int, name: str) -> Any:
    """The lengths as int32: a numpy array when concrete (so checks can read them), else traced."""
    x = unwrap(x)
    arr = jnp.asarray(x) if isinstance(x, jax.core.Tracer) else np.asarray(x)
    if arr.size != n:
        raise RuntimeError(
            f"ctc_loss: expected {name} to have {n} entries (one per batch element), got shape {tuple(arr.shape)}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise RuntimeError(f"ctc_loss: expected {name} to be integers, got {arr.dtype}")
    return arr.reshape(n).astype(np.int32)


def ctc_loss(
    log_probs: Array,
    targets: Array,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Array:
    """Connectionist Temporal Classification loss. Mirrors `torch.nn.functional.ctc_loss`.

    Args:
        log_probs: (T, N, C) or unbatched (T, C) log-probabilities (e.g. `log_softmax` output).
        targets: (N, S) padded class indices, or 1-D: all targets concatenated (lengths from
            `target_lengths`); must not contain `blank`.
        input_lengths: (N,) lengths of the inputs (each <= T); array, list or tuple.
        target_lengths: (N,) lengths of the targets.
        blank: the blank label.
        reduction: 'none' (per sample), 'mean' (each loss divided by its target length, then
            averaged over the batch) or 'sum'.
        zero_infinity: replace infinite losses (impossible alignments) and their gradients by 0.

    Shape:
        Output: scalar, or (N) with reduction='none' (scalar for unbatched input).

    The gradient w.r.t. `log_probs` follows torch's kernel: exp(log_probs) - posterior (the
    gradient w.r.t. the logits of a preceding log_softmax, which is how CTC is used), not the
    plain derivative -posterior; both give the same gradient through `log_softmax`.
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    lp = jnp.asarray(unwrap(log_probs))
    tg = jnp.asarray(unwrap(targets))
    unbatched = lp.ndim == 2
    if unbatched:
        lp = lp[:, None, :]
        if tg.ndim == 1:
            tg = tg[None]
    if lp.ndim != 3:
        raise RuntimeError(
            f"ctc_loss: expected log_probs of shape (T, N, C) or (T, C), got {tuple(lp.shape)}"
        )
    T, N, C = lp.shape
    if not 0 <= blank < C:
        raise RuntimeError("blank must be in label range")
    il = _lengths(input_lengths, N, "input_lengths")
    tl = _lengths(target_lengths, N, "target_lengths")
    concrete = _is_concrete(il, tl)

    if tg.ndim == 1:  # concatenated targets
        s_max = max(int(np.max(np.asarray(tl))), 0) if concrete and N else tg.shape[0]
        offsets = jnp.cumsum(tl) - tl
        idx = offsets[:, None] + jnp.arange(s_max)[None, :]
        padded = (
            tg[jnp.clip(idx, 0, max(tg.shape[0] - 1, 0))]
            if tg.shape[0]
            else jnp.zeros((N, s_max), jnp.int32)
        )
        if concrete and int(np.sum(np.asarray(tl))) > tg.shape[0]:
            raise RuntimeError(
                f"ctc_loss: target_lengths sum to {int(np.sum(np.asarray(tl)))} but "
                f"targets has only {tg.shape[0]} entries"
            )
    elif tg.ndim == 2:
        if tg.shape[0] != N:
            raise RuntimeError(
                f"ctc_loss: expected targets with batch size {N}, got shape {tuple(tg.shape)}"
            )
        padded, s_max = tg, tg.shape[1]
        if concrete and N and int(np.max(np.asarray(tl))) > s_max:
            raise RuntimeError(
                f"Expected tensor to have size at least {int(np.max(np.asarray(tl)))} at "
                f"dimension 1, but got size {s_max} for argument #2 'targets'"
            )
    else:
        raise RuntimeError(f"ctc_loss: expected 1-D or 2-D targets, got shape {tuple(tg.shape)}")
    if concrete and N and int(np.max(np.asarray(il))) > T:
        raise RuntimeError(
            f"Expected input_lengths to have value at most {T}, but got value "
            f"{int(np.max(np.asarray(il)))}"
        )

    nll = _ctc_nll_torch_grad(lp, jnp.asarray(padded), jnp.asarray(il), jnp.asarray(tl), blank)
    if zero_infinity:
        nll = jnp.where(jnp.isinf(nll), jnp.zeros((), nll.dtype), nll)
    if reduction == "none":
        return nll[0] if unbatched else nll
    if reduction == "sum":
        return nll.sum()
    return (nll / jnp.maximum(tl, 1).astype(nll.dtype)).mean()


@functools.partial(jax.jit, static_argnames=("blank",))
def _ctc_nll(lp: Array, padded: Array, il: Array, tl: Array, blank: int) -> Array:
    """Per-sample -log p(target | input) by the alpha recursion (compiled once per shape)."""
    T, N, C = lp.shape
    s_max = padded.shape[1]
    L = 2 * s_max + 1
    labels = jnp.clip(padded.astype(jnp.int32), 0, C - 1)
    ext = jnp.full((N, L), blank, jnp.int32).at[:, 1::2].set(labels)
    prev2 = jnp.concatenate([jnp.full((N, 2), -1, jnp.int32), ext[:, :-2]], axis=1)
    skip = (ext != blank) & (ext != prev2)  # may come from s - 2
    skip = skip.at[:, :2].set(False) if L >= 2 else skip

    lp_ext = jnp.take_along_axis(lp, jnp.broadcast_to(ext[None], (T, N, L)), axis=2)  # (T, N, L)
    neg_inf = jnp.asarray(-jnp.inf, lp.dtype)
    alpha0 = jnp.full((N, L), neg_inf).at[:, 0].set(0)  # virtual start before t = 0

    def step(alpha: Array, inp: tuple[Array, Array]) -> tuple[Array, None]:
        lp_t, t = inp
        from1 = jnp.concatenate([jnp.full((N, 1), neg_inf), alpha[:, :-1]], axis=1)
        from2 = jnp.concatenate([jnp.full((N, 2), neg_inf), alpha[:, :-2]], axis=1)[:, :L]
        from2 = jnp.where(skip, from2, neg_inf)
        new = _lse(alpha, from1, from2) + lp_t
        return jnp.where((t < il)[:, None], new, alpha), None

    alpha, _ = jax.lax.scan(step, alpha0, (lp_ext, jnp.arange(T)))
    end = jnp.take_along_axis(alpha, (2 * tl)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(alpha, jnp.maximum(2 * tl - 1, 0)[:, None], axis=1)[:, 0]
    before = jnp.where(tl > 0, before, neg_inf)
    nll = -_lse(end, before)
    return nll


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _ctc_nll_torch_grad(lp: Array, padded: Array, il: Array, tl: Array, blank: int) -> Array:
    """`_ctc_nll` whose gradient is torch's: exp(lp) - posterior on the valid time steps."""
    return _ctc_nll(lp, padded, il, tl, blank)


def _ctc_fwd(lp: Array, padded: Array, il: Array, tl: Array, blank: int) -> tuple[Array, tuple]:
    return _ctc_nll(lp, padded, il, tl, blank), (lp, padded, il, tl)


def _ctc_bwd(blank: int, res: tuple, ct: Array) -> tuple:
    lp, padded, il, tl = res
    _, vjp = jax.vjp(lambda x: _ctc_nll(x, padded, il, tl, blank), lp)
    (grad,) = vjp(ct)  # -posterior * ct
    valid = (jnp.arange(lp.shape[0])[:, None] < il[None, :])[..., None]
    grad = grad + jnp.where(valid, jnp.exp(lp) * ct[None, :, None], 0)
    return grad, None, None, None


_ctc_nll_torch_grad.defvjp(_ctc_fwd, _ctc_bwd)
