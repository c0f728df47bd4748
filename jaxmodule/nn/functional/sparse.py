"""Embedding lookups: `embedding`, `embedding_bag`, `one_hot`. Mirrors `torch.nn.functional`.

`max_norm`: torch renormalises the looked-up rows of `weight` in place, then gathers. JAX arrays
are immutable, so here the output is computed from the renormalised rows and the renormalised
weight is not written anywhere; `_embedding_renorm` returns it, and `nn.Embedding` /
`nn.EmbeddingBag` store it back into their `weight`, which gives torch's behaviour. As in torch,
the renormalisation is invisible to autograd: the gradient w.r.t. `weight` is the plain gather
gradient.

Index checks: out-of-range indices raise torch's errors when the indices are concrete (eager
calls). Under tracing they cannot be checked; `embedding` then returns NaN rows for them (floating
weights) rather than silently clamping.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..._tensor import as_array
from ._utils import unwrap

__all__ = ["embedding", "embedding_bag", "one_hot"]

Array = jax.Array


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _indices(x: Any, fn: str) -> Array:
    x = as_array(unwrap(x))
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar types: "
            f"Long, Int; but got {x.dtype} instead (while checking arguments for {fn})"
        )
    return x


@jax.custom_vjp
def _scale_grad(x: Array, scale: Array) -> Array:
    """Identity whose gradient is multiplied by `scale` (broadcast over the last axis)."""
    return x


def _scale_grad_fwd(x: Array, scale: Array) -> tuple[Array, Array]:
    return x, scale


def _scale_grad_bwd(scale: Array, g: Array) -> tuple[Array, Array]:
    return g * scale[..., None].astype(g.dtype), jnp.zeros_like(scale)


_scale_grad.defvjp(_scale_grad_fwd, _scale_grad_bwd)


def _freq_scale(idx: Array, num_embeddings: int) -> Array:
    """1 / (number of occurrences of each index in the batch), per position."""
    counts = jnp.zeros((num_embeddings,), jnp.float32).at[idx.reshape(-1)].add(1.0)
    return 1.0 / jnp.take(counts, idx, mode="clip")


def _norm_rows(w: Array, norm_type: float) -> Array:
    a = jnp.abs(w)
    if norm_type == math.inf:
        return jnp.max(a, axis=-1)
    if norm_type == -math.inf:
        return jnp.min(a, axis=-1)
    if norm_type == 0:
        return jnp.sum((w != 0).astype(w.dtype), axis=-1)
    if norm_type == 1:
        return jnp.sum(a, axis=-1)
    if norm_type == 2:
        return jnp.sqrt(jnp.sum(jnp.square(w), axis=-1))
    return jnp.sum(a**norm_type, axis=-1) ** (1.0 / norm_type)


def _embedding_renorm(weight: Any, input: Any, max_norm: float, norm_type: float = 2.0) -> Array:
    """The weight after torch's `embedding_renorm_`: every row referenced by `input` whose
    `norm_type`-norm exceeds `max_norm` is scaled by `max_norm / (norm + 1e-7)`.

    The result carries no gradient (torch renormalises under `no_grad`).
    """
    w = lax.stop_gradient(unwrap(weight))
    idx = _indices(input, "embedding_renorm_")
    used = jnp.zeros((w.shape[0],), bool).at[idx.reshape(-1)].set(True, mode="drop")
    norm = _norm_rows(w, norm_type)
    scale = jnp.where(used & (norm > max_norm), max_norm / (norm + 1e-7), 1.0)
    return (w * scale[:, None].astype(w.dtype)).astype(w.dtype)


def _check_range(idx: Array, n: int, fn: str) -> None:
    if _is_concrete(idx) and idx.size:
        host = np.asarray(idx)  # numpy: inside a trace even jnp ops on constants are staged out
        bad = (host < 0) | (host >= n)
        if bool(bad.any()):
            if fn == "embedding":
                raise IndexError("index out of range in self")
            pos = int(np.argmax(bad.reshape(-1)))
            raise RuntimeError(
                f"Index {pos} of input takes value {int(host.reshape(-1)[pos])} "
                f"which is not in the valid range [0, {n})"
            )


def _gather_rows(w: Array, idx: Array) -> Array:
    """`w[idx]`; out-of-range (incl. negative) indices give NaN rows for floating `w`."""
    n = w.shape[0]
    safe = jnp.where(idx < 0, n, idx)
    if jnp.issubdtype(w.dtype, jnp.inexact):
        return jnp.take(w, safe, axis=0, mode="fill", fill_value=jnp.nan)
    return jnp.take(w, safe, axis=0, mode="clip")


def _straight_through(new: Array, old: Array) -> Array:
    """Value of `new`, gradient of `old` (torch's renorm happens outside autograd)."""
    return lax.stop_gradient(new) + (old - lax.stop_gradient(old))


def _embedding_and_weight(
    input: Any,
    weight: Any,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> tuple[Array, Array | None]:
    """`embedding` that also returns the renormalised weight (None when `max_norm` is None)."""
    if sparse:
        raise NotImplementedError(
            "embedding: sparse=True is not supported (JAX has no sparse "
            "gradients); use sparse=False"
        )
    w = unwrap(weight)
    idx = _indices(input, "embedding")
    if w.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    n = w.shape[0]
    padding_idx = _normalize_padding_idx(
        padding_idx, n, "Padding_idx must be within num_embeddings"
    )
    _check_range(idx, n, "embedding")
    rows = _gather_rows(w, idx)
    new_w = None
    if max_norm is not None:
        new_w = _embedding_renorm(w, idx, max_norm, norm_type)
        rows = _straight_through(_gather_rows(new_w, idx), rows)
    if padding_idx is not None or scale_grad_by_freq:
        scale = _freq_scale(idx, n) if scale_grad_by_freq else jnp.ones(idx.shape, jnp.float32)
        if padding_idx is not None:
            scale = jnp.where(idx == padding_idx, 0.0, scale)
        rows = _scale_grad(rows, scale)
    return rows, new_w


def _normalize_padding_idx(padding_idx: int | None, n: int, msg: str) -> int | None:
    if padding_idx is None:
        return None
    if padding_idx > 0 and padding_idx >= n:
        raise AssertionError(msg)
    if padding_idx < 0:
        if padding_idx < -n:
            raise AssertionError(msg)
        padding_idx = n + padding_idx
    return padding_idx


def embedding(
    input: Any,
    weight: Any,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Array:
    """Look up rows of `weight` by integer `input`. Mirrors `F.embedding`.

    Args:
        input: integer indices, any shape.
        weight: `(num_embeddings, embedding_dim)`.
        padding_idx: rows at this index get no gradient (negative counts from the end).
        max_norm: renormalise looked-up rows whose norm exceeds it (see the module docstring:
            `weight` itself is not modified).
        norm_type: the p of the p-norm for `max_norm`.
        scale_grad_by_freq: scale the gradient of each row by 1 / its count in `input`.
        sparse: not supported; True raises NotImplementedError.

    Shape:
        - Output: `(*input.shape, embedding_dim)`.

    Differences from torch: integer indices of any width are accepted (JAX uses int32 unless
    x64 is on).

    >>> import jax.numpy as jnp
    >>> embedding(jnp.array([2, 0]), jnp.arange(6.0).reshape(3, 2)).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    return _embedding_and_weight(
        input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse
    )[0]


# ---- embedding_bag -----------------------------------------------------------------------------
def _bag_ids(offsets: Array, length: int, num_bags: int) -> Array:
    """The bag of each input position; `num_bags` (out of range) for positions in no bag."""
    pos = jnp.arange(length)
    seg = jnp.searchsorted(offsets, pos, side="right") - 1
    return jnp.where((seg < 0) | (seg >= num_bags), num_bags, seg)


def _bag_max(rows: Array, seg: Array, valid: Array, num_bags: int) -> Array:
    """Per-bag, per-column max whose gradient goes to the first maximal position (as torch)."""
    length = rows.shape[0]
    seg_c = jnp.where(valid, seg, num_bags)
    vals = lax.stop_gradient(rows)
    m = jax.ops.segment_max(jnp.where(valid[:, None], vals, -jnp.inf), seg_c, num_bags + 1)
    is_max = (vals == m[seg_c]) & valid[:, None]
    pos = jnp.where(is_max, jnp.arange(length)[:, None], length)
    first = jax.ops.segment_min(pos, seg_c, num_bags + 1)[:num_bags]
    first = jnp.minimum(first, length)  # empty bags -> the zero row appended below
    padded = jnp.concatenate([rows, jnp.zeros((1, rows.shape[1]), rows.dtype)], axis=0)
    return jnp.take_along_axis(padded, first, axis=0)


def _embedding_bag_and_weight(
    input: Any,
    weight: Any,
    offsets: Any = None,
    max_norm: float | None = None,
    norm_type: float = 2,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: Any = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> tuple[Array, Array | None]:
    """`embedding_bag` that also returns the renormalised weight (None when `max_norm` is None)."""
    w = unwrap(weight)
    idx = _indices(input, "embedding_bag")
    psw = None if per_sample_weights is None else unwrap(per_sample_weights)
    if psw is not None and tuple(idx.shape) != tuple(psw.shape):
        raise ValueError(
            f"embedding_bag: If per_sample_weights (torch.Size({list(psw.shape)})) is not None, "
            f"then it must have the same shape as the input (torch.Size({list(idx.shape)}))"
        )
    if w.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {w.ndim}")
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "if input is 2D, then offsets has to be None, as input is treated is a mini-batch "
                "of fixed length sequences. However, found offsets of type "
                f"{type(offsets)}"
            )
        offs = jnp.arange(0, idx.size, max(idx.shape[1], 1), dtype=idx.dtype)[: idx.shape[0]]
        include_last_offset = False
        idx = idx.reshape(-1)
        if psw is not None:
            psw = psw.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        offs = _indices(offsets, "embedding_bag")
        if offs.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max":
        if scale_grad_by_freq:
            raise ValueError("max mode does not support scaling the gradient by the frequency")
        if sparse:
            raise ValueError("max mode does not support sparse weights")
    if sparse:
        raise NotImplementedError(
            "embedding_bag: sparse=True is not supported (JAX has no "
            "sparse gradients); use sparse=False"
        )
    if psw is not None and mode != "sum":
        raise NotImplementedError(
            "embedding_bag: per_sample_weights was not None. per_sample_weights is only "
            f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on GitHub."
        )
    n = w.shape[0]
    if padding_idx is not None and not -n <= padding_idx < n:
        raise RuntimeError(
            f"padding_idx must be within the number of embeddings, -{n} through "
            f"{n - 1}, but got {padding_idx}"
        )
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    length = idx.shape[0]
    if _is_concrete(offs) and offs.size:
        if int(offs[0]) != 0:
            raise RuntimeError(
                "offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start "
                f"from position 0. However, got {int(offs[0])}"
            )
        if int(offs[-1]) > length:
            raise RuntimeError(
                f"offsets[-1] can not be greater than input's length {length} but "
                f"got offsets[-1] of {int(offs[-1])}"
            )
    _check_range(idx, n, "embedding_bag")

    num_bags = max(offs.shape[0] - 1, 0) if include_last_offset else offs.shape[0]
    rows = _gather_rows(w, idx)
    new_w = None
    if max_norm is not None:
        new_w = _embedding_renorm(w, idx, max_norm, norm_type)
        rows = _straight_through(_gather_rows(new_w, idx), rows)
    if scale_grad_by_freq:
        rows = _scale_grad(rows, _freq_scale(idx, n))
    seg = _bag_ids(offs, length, num_bags)
    if include_last_offset and offs.shape[0] > 0:
        seg = jnp.where(jnp.arange(length) >= offs[-1], num_bags, seg)
    valid = seg < num_bags
    if padding_idx is not None:
        valid = valid & (idx != padding_idx)
    if mode == "max":
        out = _bag_max(rows, seg, valid, num_bags)
    else:
        if psw is not None:
            rows = rows * psw[:, None].astype(rows.dtype)
        rows = jnp.where(valid[:, None], rows, jnp.zeros((), rows.dtype))
        out = jax.ops.segment_sum(rows, seg, num_bags + 1)[:num_bags]
        if mode == "mean":
            count = jax.ops.segment_sum(valid.astype(rows.dtype), seg, num_bags + 1)[:num_bags]
            out = out / jnp.maximum(count, 1)[:, None]
    return out, new_w


def embedding_bag(
    input: Any,
    weight: Any,
    offsets: Any = None,
    max_norm: float | None = None,
    norm_type: float = 2,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: Any = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> Array:
    """Sum, mean or max of bags of embeddings. Mirrors `F.embedding_bag`.

    Args:
        input: `(B, N)` fixed-length bags, or `(L,)` concatenated bags with `offsets`.
        weight: `(num_embeddings, embedding_dim)`.
        offsets: `(B,)` start of each bag in a 1-D `input` (`(B + 1,)` with
            `include_last_offset`).
        max_norm, norm_type, scale_grad_by_freq: as in `embedding`.
        mode: "sum", "mean" or "max".
        sparse: not supported; True raises NotImplementedError.
        per_sample_weights: weights of each index (mode "sum" only), shaped like `input`.
        include_last_offset: `offsets` has B + 1 entries, the last being the end of the last bag.
        padding_idx: index excluded from every bag (and from the mean's count).

    Shape:
        - Output: `(B, embedding_dim)`; empty bags give zeros.

    Differences from torch (both are bugs of torch 2.13's CPU kernel):
    - in mode "max", torch lets the last bag run to the end of `input` even when
      `include_last_offset` puts its end earlier; here it ends at `offsets[-1]`.
    - with `scale_grad_by_freq`, torch looks each row's count up by its position in the sorted
      indices rather than by the index; here each row's gradient is divided by its count, as
      documented (and as `F.embedding` does in torch).
    """
    return _embedding_bag_and_weight(
        input,
        weight,
        offsets,
        max_norm,
        norm_type,
        scale_grad_by_freq,
        mode,
        sparse,
        per_sample_weights,
        include_last_offset,
        padding_idx,
    )[0]


def one_hot(tensor: Any, num_classes: int = -1) -> Array:
    """One-hot encode integer `tensor` into a trailing dimension. Mirrors `F.one_hot`.

    Args:
        tensor: integer class values, any shape.
        num_classes: size of the new dimension; -1 infers `max(tensor) + 1` (needs concrete
            values, so not under `jax.jit`).

    Returns:
        int64 array (int32 unless JAX's x64 mode is on) of shape `(*tensor.shape, num_classes)`.

    Differences from torch: any integer dtype is accepted, not only int64. Class-value checks
    need concrete values; under tracing out-of-range values give all-zero rows.

    >>> import jax.numpy as jnp
    >>> one_hot(jnp.array([0, 2])).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    x = as_array(unwrap(tensor))
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    concrete = _is_concrete(x)
    if num_classes == -1:
        if not concrete:
            raise NotImplementedError(
                "one_hot: num_classes=-1 needs concrete values to infer the class count; pass "
                "num_classes explicitly under jax.jit"
            )
        if x.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(np.asarray(x).max()) + 1
    if concrete and x.size:
        host = np.asarray(x)
        if bool((host < 0).any()):
            raise RuntimeError("Class values must be non-negative.")
        if bool((host >= num_classes).any()):
            raise RuntimeError("Class values must be smaller than num_classes.")
    elif num_classes < -1 or (concrete and num_classes < 0):
        raise RuntimeError("Class values must be smaller than num_classes.")
    out_dtype = jax.dtypes.canonicalize_dtype(jnp.int64)
    return (x[..., None] == jnp.arange(num_classes, dtype=x.dtype)).astype(out_dtype)
