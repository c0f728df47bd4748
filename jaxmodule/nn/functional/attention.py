"""Attention: `scaled_dot_product_attention` and `multi_head_attention_forward`.

Both follow torch 2.13's CPU semantics, including two details worth knowing:

- `scaled_dot_product_attention` returns zeros for a query row whose keys are all masked out (torch's
  CPU kernels do the same), and with both `attn_mask` and `is_causal=True` it applies both masks.
- `multi_head_attention_forward` with `need_weights=True` computes the weights explicitly with a
  plain softmax, so a fully masked row gives NaN there, as in torch.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from ._eager_jit import jit_when_eager
from ._utils import unwrap
from .dropout import dropout
from .linear import linear

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def _masked_softmax(scores: jax.Array) -> jax.Array:
    """Softmax over the last axis that gives 0 (not NaN) for rows that are all -inf.

    The max is shifted out under `stop_gradient` (softmax is shift-invariant, so gradients are
    unchanged) and the zero sum of a fully masked row is replaced before dividing, so no NaN
    appears in either the values or the gradients.
    """
    m = jnp.max(scores, axis=-1, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros((), m.dtype)))
    e = jnp.exp(scores - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(s == 0, jnp.ones((), s.dtype), s)


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> jax.Array:
    """Attention softmax(q @ k^T * scale + mask) @ v. Mirrors `torch.nn.functional.scaled_dot_product_attention`.

    Args:
        query: `(..., L, E)`.
        key: `(..., S, E)`.
        value: `(..., S, Ev)`.
        attn_mask: broadcastable to `(..., L, S)`; a bool mask marks with True the positions that take
            part in attention, a float mask (query's dtype) is added to the scores.
        dropout_p: dropout probability on the attention weights (applied whenever > 0, as in torch;
            pass 0.0 in evaluation). Keys come from jaxmodule's global generator.
        is_causal: apply a lower-triangular (top-left aligned) causal mask; combined with
            `attn_mask` when both are given, as torch's CPU kernels do.
        scale: the score scale; default `1 / sqrt(E)`.
        enable_gqa: grouped-query attention: `key`/`value` may have fewer heads (dim -3) than
            `query`, which must be a multiple of them; each key/value head serves a group.

    Shape:
        - Output: `(..., L, Ev)`.

    A query row whose keys are all masked out gives zeros (torch's CPU behaviour), not NaN.

    >>> import jax.numpy as jnp
    >>> q = jnp.ones((2, 4, 3, 8))
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 3, 8)
    """
    q, k, v = unwrap(query), unwrap(key), unwrap(value)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise RuntimeError(
            "Expected query, key, and value to all be at least 2 dimensional, but got "
            f"query.dim: {q.ndim} key.dim: {k.ndim} and value.dim: {v.ndim} instead."
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise RuntimeError(
            "Expected query, key, and value to have the same dtype, but got "
            f"query.dtype: {q.dtype} key.dtype: {k.dtype} and value.dtype: {v.dtype} instead."
        )
    if q.shape[-1] != k.shape[-1]:
        raise RuntimeError(
            f"scaled_dot_product_attention: query's last dim {q.shape[-1]} must equal key's "
            f"last dim {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise RuntimeError(
            f"scaled_dot_product_attention: key has {k.shape[-2]} positions (dim -2) but value "
            f"has {v.shape[-2]}"
        )
    if enable_gqa and q.ndim >= 3:
        hq = q.shape[-3]
        for name, t in (("key", k), ("value", v)):
            if t.ndim < 3 or hq % t.shape[-3] != 0:
                got = t.shape[-3] if t.ndim >= 3 else None
                raise RuntimeError(
                    f"scaled_dot_product_attention(enable_gqa=True): the number of heads in "
                    f"{name} ({got}) must divide the number of heads in query ({hq})"
                )
        if k.shape[-3] != hq:
            k = jnp.repeat(k, hq // k.shape[-3], axis=-3)
        if v.shape[-3] != hq:
            v = jnp.repeat(v, hq // v.shape[-3], axis=-3)

    mask = None if attn_mask is None else unwrap(attn_mask)
    if mask is not None and mask.dtype != jnp.bool_ and mask.dtype != q.dtype:
        raise RuntimeError(
            "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
            f"attn_mask.dtype: {mask.dtype} and query.dtype: {q.dtype} instead."
        )
    scale_f = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if dropout_p > 0.0:  # draws from the global generator: not one cached program
        weights = _attention_weights(q, k, mask, is_causal=bool(is_causal), scale=scale_f)
        return jnp.matmul(dropout(weights, float(dropout_p)), v)
    return _attention(q, k, v, mask, is_causal=bool(is_causal), scale=scale_f)


@jit_when_eager(static_argnames=("is_causal", "scale"))
def _attention_weights(
    q: jax.Array, k: jax.Array, mask: jax.Array | None, *, is_causal: bool, scale: float
) -> jax.Array:
    """softmax(q @ k^T * scale + mask), masked rows 0; one cached program when eager."""
    L, S = q.shape[-2], k.shape[-2]
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) * jnp.asarray(scale, q.dtype)
    neg_inf = jnp.asarray(-jnp.inf, scores.dtype)
    if mask is not None:
        scores = jnp.where(mask, scores, neg_inf) if mask.dtype == jnp.bool_ else scores + mask
    if is_causal:
        causal = jnp.tril(jnp.ones((L, S), jnp.bool_))
        scores = jnp.where(causal, scores, neg_inf)
    return _masked_softmax(scores)


@jit_when_eager(static_argnames=("is_causal", "scale"))
def _attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None,
    *,
    is_causal: bool,
    scale: float,
) -> jax.Array:
    """The attention output without dropout; one cached program when eager."""
    return jnp.matmul(_attention_weights(q, k, mask, is_causal=is_causal, scale=scale), v)


def _canonical_mask(
    mask: Any,
    mask_name: str,
    other: Any,
    other_name: str,
    target_dtype: Any,
    check_other: bool = True,
    stacklevel: int = 3,
) -> jax.Array | None:
    """torch's `_canonical_mask`: a bool mask becomes a float mask with -inf where True."""
    if mask is None:
        return None
    mask = unwrap(mask)
    is_float = jnp.issubdtype(mask.dtype, jnp.floating)
    if mask.dtype != jnp.bool_ and not is_float:
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if check_other and other is not None and unwrap(other).dtype != mask.dtype:
        warnings.warn(
            f"Support for mismatched {mask_name} and {other_name} is deprecated. "
            "Use same type for both instead.",
            stacklevel=stacklevel,
        )
    if not is_float:
        mask = jnp.where(mask, jnp.asarray(-jnp.inf, target_dtype), jnp.zeros((), target_dtype))
    return mask


def _mha_shape_check(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    key_padding_mask: Any,
    attn_mask: Any,
    num_heads: int,
) -> bool:
    """torch's checks on the ranks of MHA inputs; returns whether the input is batched."""
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                f"{key.ndim}-D and {value.ndim}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                f"found {key_padding_mask.ndim}-D tensor instead"
            )
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise AssertionError(
                "For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                f"found {attn_mask.ndim}-D tensor instead"
            )
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                f"{key.ndim}-D and {value.ndim}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                f"found {key_padding_mask.ndim}-D tensor instead"
            )
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise AssertionError(
                    "For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                    f"but found {attn_mask.ndim}-D tensor instead"
                )
            if attn_mask.ndim == 3:
                expected = (num_heads, query.shape[0], key.shape[0])
                if tuple(attn_mask.shape) != expected:
                    raise AssertionError(
                        f"Expected `attn_mask` shape to be {expected} but got {tuple(attn_mask.shape)}"
                    )
        return False
    raise AssertionError(
        "query should be unbatched 2D or batched 3D tensor but received "
        f"{query.ndim}-D query tensor"
    )


def _pad_last(x: jax.Array) -> jax.Array:
    """Append one zero column on the last axis (torch's `pad(mask, (0, 1))`)."""
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, 1)])


def multi_head_attention_forward(
    query: Any,
    key: Any,
    value: Any,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Any | None,
    in_proj_bias: Any | None,
    bias_k: Any | None,
    bias_v: Any | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Any,
    out_proj_bias: Any | None,
    training: bool = True,
    key_padding_mask: Any | None = None,
    need_weights: bool = True,
    attn_mask: Any | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Any | None = None,
    k_proj_weight: Any | None = None,
    v_proj_weight: Any | None = None,
    static_k: Any | None = None,
    static_v: Any | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[jax.Array, jax.Array | None]:
    """The forward computation of `MultiheadAttention`. Mirrors `torch.nn.functional.multi_head_attention_forward`.

    Args:
        query, key, value: `(L, N, E)`, `(S, N, Ek)`, `(S, N, Ev)` (sequence first), or unbatched
            `(L, E)`, `(S, Ek)`, `(S, Ev)`.
        embed_dim_to_check: the expected `E`.
        num_heads: number of heads; `E` must be divisible by it.
        in_proj_weight, in_proj_bias: packed q/k/v projection `(3E, E)` and `(3E,)`.
        bias_k, bias_v: `(1, 1, E)` biases appended to the key/value sequences, or None.
        add_zero_attn: append a zero key/value position.
        dropout_p: dropout on the attention weights (only when `training`).
        out_proj_weight, out_proj_bias: the output projection.
        training: apply dropout.
        key_padding_mask: `(N, S)` or `(S,)`; bool True (or -inf) marks padding to ignore.
        need_weights: also return the attention weights.
        attn_mask: `(L, S)` or `(N * num_heads, L, S)`; bool True marks positions that may NOT
            attend; float masks are added.
        use_separate_proj_weight: use `q_proj_weight`/`k_proj_weight`/`v_proj_weight`.
        static_k, static_v: precomputed `(N * num_heads, S, E / num_heads)` keys/values.
        average_attn_weights: average the returned weights over heads.
        is_causal: hint that `attn_mask` is causal (an `attn_mask` is still required).

    Shape:
        - Output: `(L, N, E)` (or `(L, E)`) and weights `(N, L, S)` / `(N, num_heads, L, S)`
          (without N when unbatched), or None when `need_weights=False`.
    """
    query, key, value = unwrap(query), unwrap(key), unwrap(value)
    kpm, am = unwrap(key_padding_mask), unwrap(attn_mask)
    is_batched = _mha_shape_check(query, key, value, kpm, am, num_heads)
    if not is_batched:
        query, key, value = query[:, None], key[:, None], value[:, None]
        if kpm is not None:
            kpm = kpm[None]

    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]

    kpm = _canonical_mask(kpm, "key_padding_mask", am, "attn_mask", query.dtype)
    if is_causal and am is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
            "method `generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and kpm is None and not need_weights:
        am = None  # the hint stands in for the mask: SDPA applies the causal mask itself
    else:
        am = _canonical_mask(am, "attn_mask", None, "", query.dtype, check_other=False)
        if kpm is not None:
            is_causal = False

    if embed_dim != embed_dim_to_check:
        raise AssertionError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(
                f"key's sequence and batch dims {key.shape[:2]} do not match value's {value.shape[:2]}"
            )
    elif key.shape != value.shape:
        raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")

    # in-projection
    b = unwrap(in_proj_bias)
    b_q = b_k = b_v = None
    if b is not None:
        b_q, b_k, b_v = b[:embed_dim], b[embed_dim : 2 * embed_dim], b[2 * embed_dim :]
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        w = unwrap(in_proj_weight)
        if query is key and key is value:  # self-attention: one packed matmul
            qkv = linear(query, w, b)
            q, k, v = (qkv[..., i * embed_dim : (i + 1) * embed_dim] for i in range(3))
        else:
            w_q, w_k, w_v = w[:embed_dim], w[embed_dim : 2 * embed_dim], w[2 * embed_dim :]
            q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
    else:
        for name, t in (("q", q_proj_weight), ("k", k_proj_weight), ("v", v_proj_weight)):
            if t is None:
                raise AssertionError(
                    f"use_separate_proj_weight is True but {name}_proj_weight is None"
                )
        q = linear(query, unwrap(q_proj_weight), b_q)
        k = linear(key, unwrap(k_proj_weight), b_k)
        v = linear(value, unwrap(v_proj_weight), b_v)

    if am is not None:
        if am.ndim == 2:
            if tuple(am.shape) != (tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 2D attn_mask is {tuple(am.shape)}, but should be {(tgt_len, src_len)}."
                )
            am = am[None]
        elif am.ndim == 3:
            if tuple(am.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {tuple(am.shape)}, but should be "
                    f"{(bsz * num_heads, tgt_len, src_len)}."
                )
        else:
            raise RuntimeError(f"attn_mask's dimension {am.ndim} is not supported")

    if bias_k is not None and bias_v is not None:
        if static_k is not None:
            raise AssertionError("bias cannot be added to static key.")
        if static_v is not None:
            raise AssertionError("bias cannot be added to static value.")
        k = jnp.concatenate([k, jnp.broadcast_to(unwrap(bias_k), (1, bsz, embed_dim))])
        v = jnp.concatenate([v, jnp.broadcast_to(unwrap(bias_v), (1, bsz, embed_dim))])
        if am is not None:
            am = _pad_last(am)
        if kpm is not None:
            kpm = _pad_last(kpm)
    elif bias_k is not None:
        raise AssertionError("bias_k is set but bias_v is None")
    elif bias_v is not None:
        raise AssertionError("bias_v is set but bias_k is None")

    # heads: (len, N, E) -> (N * heads, len, head_dim)
    q = jnp.swapaxes(q.reshape(tgt_len, bsz * num_heads, head_dim), 0, 1)
    if static_k is None:
        k = jnp.swapaxes(k.reshape(k.shape[0], bsz * num_heads, head_dim), 0, 1)
    else:
        k = unwrap(static_k)
        if k.shape[0] != bsz * num_heads:
            raise AssertionError(
                f"expecting static_k.size(0) of {bsz * num_heads}, but got {k.shape[0]}"
            )
        if k.shape[2] != head_dim:
            raise AssertionError(f"expecting static_k.size(2) of {head_dim}, but got {k.shape[2]}")
    if static_v is None:
        v = jnp.swapaxes(v.reshape(v.shape[0], bsz * num_heads, head_dim), 0, 1)
    else:
        v = unwrap(static_v)
        if v.shape[0] != bsz * num_heads:
            raise AssertionError(
                f"expecting static_v.size(0) of {bsz * num_heads}, but got {v.shape[0]}"
            )
        if v.shape[2] != head_dim:
            raise AssertionError(f"expecting static_v.size(2) of {head_dim}, but got {v.shape[2]}")

    if add_zero_attn:
        zeros = jnp.zeros((bsz * num_heads, 1, head_dim), k.dtype)
        k = jnp.concatenate([k, zeros], axis=1)
        v = jnp.concatenate([v, zeros.astype(v.dtype)], axis=1)
        if am is not None:
            am = _pad_last(am)
        if kpm is not None:
            kpm = _pad_last(kpm)

    src_len = k.shape[1]
    if kpm is not None:
        if kpm.shape[0] != bsz:
            raise AssertionError(
                f"Expected key_padded_mask.shape[0] to be {bsz}, but got {kpm.shape[0]}"
            )
        if kpm.shape[1] != src_len:
            raise AssertionError(
                f"Expected key_padded_mask.shape[1] to be {src_len}, but got {kpm.shape[1]}"
            )
        kpm = jnp.broadcast_to(kpm[:, None, None, :], (bsz, num_heads, 1, src_len))
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        am = kpm if am is None else am + kpm

    if not training:
        dropout_p = 0.0

    if need_weights:
        if is_causal and am is None:
            raise AssertionError("FIXME: is_causal not implemented for need_weights")
        q_scaled = q * jnp.asarray(math.sqrt(1.0 / float(head_dim)), q.dtype)
        w = jnp.matmul(q_scaled, jnp.swapaxes(k, -1, -2))
        if am is not None:
            w = w + am
        w = jax.nn.softmax(w, axis=-1)
        if dropout_p > 0.0:
            w = dropout(w, float(dropout_p))
        out = jnp.matmul(w, v)
        out = jnp.swapaxes(out, 0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, unwrap(out_proj_weight), unwrap(out_proj_bias))
        out = out.reshape(tgt_len, bsz, out.shape[-1])
        w = w.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            w = w.mean(axis=1)
        if not is_batched:
            out, w = out[:, 0], w[0]
        return out, w

    if am is not None:
        if am.shape[0] == 1 and am.ndim == 3:
            am = am[None]
        else:
            am = am.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, am, dropout_p, is_causal)
    out = jnp.transpose(out, (2, 0, 1, 3)).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, unwrap(out_proj_weight), unwrap(out_proj_bias))
    out = out.reshape(tgt_len, bsz, out.shape[-1])
    if not is_batched:
        out = out[:, 0]
    return out, None
