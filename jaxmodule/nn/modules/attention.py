"""`MultiheadAttention` (torch keeps it in torch/nn/modules/activation.py)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from .. import functional as F
from .. import init
from ..functional._utils import unwrap
from ..functional.attention import _canonical_mask
from ..parameter import Parameter
from .linear import Linear
from .module import Module

__all__ = ["MultiheadAttention"]


class NonDynamicallyQuantizableLinear(Linear):
    """The `Linear` that `MultiheadAttention` uses as `out_proj` (torch's name, kept for repr parity)."""


class MultiheadAttention(Module):
    """Multi-head attention `Concat(head_1..head_h) W_o`. Mirrors `torch.nn.MultiheadAttention`.

    Args:
        embed_dim: model dimension `E`.
        num_heads: parallel heads; `embed_dim` must be divisible by it.
        dropout: dropout on the attention weights in training.
        bias: learn `in_proj_bias` and `out_proj.bias`.
        add_bias_kv: learn `bias_k`/`bias_v` appended to the key and value sequences.
        add_zero_attn: append a zero key/value position.
        kdim, vdim: key/value feature sizes (default `embed_dim`); when either differs, separate
            `q_proj_weight`/`k_proj_weight`/`v_proj_weight` replace `in_proj_weight`.
        batch_first: inputs and output are `(N, L, E)` instead of `(L, N, E)`.

    Shape:
        - query `(L, N, E)`, key `(S, N, kdim)`, value `(S, N, vdim)` (batch first when
          `batch_first`), or unbatched `(L, E)`, `(S, kdim)`, `(S, vdim)`.
        - key_padding_mask `(N, S)` / `(S)`; attn_mask `(L, S)` or `(N * num_heads, L, S)`; bool
          True marks what may NOT be attended, float masks are added.
        - output `(L, N, E)` (batch first when `batch_first`) and, with `need_weights`, weights
          `(N, L, S)` (averaged) or `(N, num_heads, L, S)`.

    Differences from torch: there is no fused inference fast path (torch's fast path gives the
    same values up to rounding); a query row whose keys are all masked gives NaN with
    `need_weights=True` and zeros before `out_proj` with `need_weights=False`, as in torch's CPU paths.

    >>> mha = MultiheadAttention(16, 4, batch_first=True)
    >>> x = jnp.ones((2, 5, 16))
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((2, 5, 16), (2, 5, 5))
    """

    # Parameters with add_bias_kv, plain None attributes without (as torch); annotation only
    bias_k: Parameter | None
    bias_v: Parameter | None

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                "embed_dim and num_heads must be greater than 0, got "
                f"embed_dim={embed_dim} and num_heads={num_heads} instead"
            )
        super().__init__()
        dt = to_dtype(dtype)
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != self.embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")

        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(jnp.empty((embed_dim, embed_dim), dt))
            self.k_proj_weight = Parameter(jnp.empty((embed_dim, self.kdim), dt))
            self.v_proj_weight = Parameter(jnp.empty((embed_dim, self.vdim), dt))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(jnp.empty((3 * embed_dim, embed_dim), dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(jnp.empty((3 * embed_dim,), dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(
            embed_dim, embed_dim, bias=bias, device=device, dtype=dtype
        )
        if add_bias_kv:
            self.bias_k = Parameter(jnp.empty((1, 1, embed_dim), dt))
            self.bias_v = Parameter(jnp.empty((1, 1, embed_dim), dt))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/bias_v, as torch."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any | None = None,
        need_weights: bool = True,
        attn_mask: Any | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[jax.Array, jax.Array | None]:
        """Attend from `query` to `key`/`value`; returns `(attn_output, attn_weights or None)`.

        Args:
            query, key, value: see the class Shape section.
            key_padding_mask: keys to ignore per batch element (bool True or float added).
            need_weights: also return the attention weights.
            attn_mask: 2D or 3D mask (bool True = not allowed, float added).
            average_attn_weights: average the returned weights over heads.
            is_causal: hint that `attn_mask` is the causal mask (`attn_mask` is still required).
        """
        same_qk, same_kv = query is key, key is value
        query, key, value = (jnp.asarray(unwrap(t)) for t in (query, key, value))
        is_batched = query.ndim == 3
        key_padding_mask = _canonical_mask(
            key_padding_mask, "key_padding_mask", attn_mask, "attn_mask", query.dtype, stacklevel=4
        )
        attn_mask = _canonical_mask(
            attn_mask, "attn_mask", None, "", query.dtype, check_other=False
        )
        if self.batch_first and is_batched:
            # transpose once per distinct array so that F's "is" checks (self-attention) still hold
            query = jnp.swapaxes(query, 0, 1)
            key = query if same_qk else jnp.swapaxes(key, 0, 1)
            value = key if same_kv else jnp.swapaxes(value, 0, 1)
        elif same_qk or same_kv:
            key = query if same_qk else key
            value = key if same_kv else value

        out, weights = F.multi_head_attention_forward(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        if self.batch_first and is_batched:
            out = jnp.swapaxes(out, 0, 1)
        return out, weights

    def merge_masks(
        self,
        attn_mask: Any | None,
        key_padding_mask: Any | None,
        query: Any,
    ) -> tuple[jax.Array | None, int | None]:
        """Combine the masks into one `(N, num_heads, L, L)` mask and its type (0, 1 or 2). Mirrors torch."""
        mask_type: int | None = None
        merged: jax.Array | None = None
        if key_padding_mask is not None:
            mask_type = 1
            merged = unwrap(key_padding_mask)
        if attn_mask is not None:
            batch_size, seq_len, _ = query.shape
            mask_type = 2
            am = unwrap(attn_mask)
            if am.ndim == 3:
                am = am.reshape(batch_size, -1, seq_len, seq_len)
            else:
                am = jnp.broadcast_to(
                    am.reshape(1, 1, seq_len, seq_len),
                    (batch_size, self.num_heads, seq_len, seq_len),
                )
            merged = am
            if key_padding_mask is not None:
                kpm = jnp.broadcast_to(
                    unwrap(key_padding_mask).reshape(batch_size, 1, 1, seq_len),
                    (batch_size, self.num_heads, 1, seq_len),
                )
                merged = am + kpm
        return merged, mask_type
