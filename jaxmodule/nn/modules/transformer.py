"""Transformer layers: `Transformer`, `TransformerEncoder`, `TransformerDecoder` and their layers.

torch's "Attention Is All You Need" reference modules with the same submodule names (so the same
state_dict keys: `layers.0.self_attn.in_proj_weight`, `layers.0.linear1.weight`, ...). Only torch's
slow path exists here: there is no nested-tensor / fused inference fast path, whose results torch
keeps equal to the slow path's up to rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._dtype import to_dtype
from .. import functional as F
from .. import init
from ..functional._utils import unwrap
from ..functional.attention import _canonical_mask
from .activation import GELU, ReLU
from .attention import MultiheadAttention
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = [
    "Transformer",
    "TransformerEncoder",
    "TransformerDecoder",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
]


def _generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> jax.Array:
    dt = to_dtype(dtype)
    if dt == jnp.bool_:  # torch.full(-inf, dtype=bool) is all True
        return jnp.triu(jnp.ones((sz, sz), jnp.bool_), k=1)
    return jnp.triu(jnp.full((sz, sz), -jnp.inf, dt), k=1)


def _get_seq_len(src: Any, batch_first: bool) -> int:
    shape = src.shape
    if len(shape) == 2:
        return shape[0]
    return shape[1 if batch_first else 0]


def _detect_is_causal_mask(
    mask: Any | None, is_causal: bool | None = None, size: int | None = None
) -> bool:
    """torch's causal-mask detection: the `is_causal` hint if given, else compare `mask` to a causal mask.

    The comparison runs in numpy on the concrete mask. A traced mask (an argument of a `jax.jit`
    function) cannot be inspected and counts as not causal; the layers then apply it as an
    ordinary mask, which gives the same result.
    """
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        m = unwrap(mask)
        if isinstance(m, jax.core.Tracer):
            return False
        m = np.asarray(m)
        sz = size if size is not None else m.shape[-2]
        if m.shape != (sz, sz):
            return False
        upper = np.triu(np.ones((sz, sz), bool), k=1)
        causal = upper if m.dtype == np.bool_ else np.where(upper, -np.inf, 0.0).astype(m.dtype)
        make_causal = bool(np.array_equal(m, causal))
    return make_causal


def _get_clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _get_activation_fn(activation: str) -> Callable[[Any], jax.Array]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class Transformer(Module):
    """Encoder-decoder transformer. Mirrors `torch.nn.Transformer`.

    Args:
        d_model: model dimension (default 512).
        nhead: attention heads (default 8).
        num_encoder_layers, num_decoder_layers: stacked layers (default 6 each).
        dim_feedforward: hidden size of the feed-forward blocks (default 2048).
        dropout: dropout probability (default 0.1).
        activation: 'relu', 'gelu' or a unary callable (default `F.relu`).
        custom_encoder, custom_decoder: modules used instead of the default stacks.
        layer_norm_eps: LayerNorm eps (default 1e-5).
        batch_first: `(N, S, E)` inputs instead of `(S, N, E)`.
        norm_first: pre-norm layers (LayerNorm before attention/feed-forward).
        bias: learn the biases of the Linear and LayerNorm layers.

    Shape:
        src `(S, N, E)`, tgt `(T, N, E)` (batch first when `batch_first`; unbatched `(S, E)`,
        `(T, E)`), masks `(S, S)`, `(T, T)`, `(T, S)` (or `(N * nhead, ...)`), key padding masks
        `(N, S)`/`(N, T)`; output `(T, N, E)`.

    >>> model = Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
    ...                     dim_feedforward=32, dropout=0.0)
    >>> model(jnp.ones((5, 2, 16)), jnp.ones((4, 2, 16))).shape
    (4, 2, 16)
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Any], Any] = F.relu,
        custom_encoder: Any | None = None,
        custom_decoder: Any | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            encoder_layer = TransformerEncoderLayer(
                d_model,
                nhead,
                dim_feedforward,
                dropout,
                activation,
                layer_norm_eps,
                batch_first,
                norm_first,
                bias,
                **fk,
            )
            encoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
            self.encoder = TransformerEncoder(encoder_layer, num_encoder_layers, encoder_norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            decoder_layer = TransformerDecoderLayer(
                d_model,
                nhead,
                dim_feedforward,
                dropout,
                activation,
                layer_norm_eps,
                batch_first,
                norm_first,
                bias,
                **fk,
            )
            decoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
            self.decoder = TransformerDecoder(decoder_layer, num_decoder_layers, decoder_norm)
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(
        self,
        src: Any,
        tgt: Any,
        src_mask: Any | None = None,
        tgt_mask: Any | None = None,
        memory_mask: Any | None = None,
        src_key_padding_mask: Any | None = None,
        tgt_key_padding_mask: Any | None = None,
        memory_key_padding_mask: Any | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> jax.Array:
        """Encode `src`, then decode `tgt` attending to the encoded memory."""
        is_batched = src.ndim == 3
        if not self.batch_first and is_batched and src.shape[1] != tgt.shape[1]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if self.batch_first and is_batched and src.shape[0] != tgt.shape[0]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )

    @staticmethod
    def generate_square_subsequent_mask(
        sz: int, device: Any = None, dtype: Any = None
    ) -> jax.Array:
        """A `(sz, sz)` causal mask: -inf above the diagonal, 0.0 elsewhere. Mirrors torch."""
        return _generate_square_subsequent_mask(sz, device=device, dtype=dtype)

    def _reset_parameters(self) -> None:
        """xavier_uniform_ on every parameter with more than one dimension, as torch."""
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)


class TransformerEncoder(Module):
    """A stack of `num_layers` deep copies of `encoder_layer`, then `norm`. Mirrors `torch.nn.TransformerEncoder`.

    Args:
        encoder_layer: the layer to copy (a `TransformerEncoderLayer` or compatible module).
        num_layers: number of copies.
        norm: optional final normalisation module.
        enable_nested_tensor: kept for torch compatibility; there is no nested-tensor fast path
            here, so it changes nothing (and no warning explains why it is unused).
        mask_check: kept for torch compatibility.

    Shape:
        see `Transformer`.

    >>> layer = TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    >>> encoder = TransformerEncoder(layer, num_layers=2)
    >>> encoder(jnp.ones((5, 3, 16))).shape
    (5, 3, 16)
    """

    def __init__(
        self,
        encoder_layer: Module,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = False  # no nested-tensor fast path exists in jaxmodule
        self.mask_check = mask_check

    def forward(
        self,
        src: Any,
        mask: Any | None = None,
        src_key_padding_mask: Any | None = None,
        is_causal: bool | None = None,
    ) -> jax.Array:
        """Pass `src` through every layer, then `norm`.

        Args:
            src: the input sequence.
            mask: attention mask for `src`.
            src_key_padding_mask: keys to ignore per batch element.
            is_causal: hint that `mask` is causal; None detects it from a concrete `mask`.
        """
        src = jnp.asarray(unwrap(src))
        first = self.layers[0]
        # detect on the raw mask: bool and -inf float causal masks match as they do in torch
        is_causal = _detect_is_causal_mask(
            mask, is_causal, _get_seq_len(src, first.self_attn.batch_first)
        )
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", mask, "mask", src.dtype, stacklevel=4
        )
        mask = _canonical_mask(mask, "mask", None, "", src.dtype, check_other=False)
        output = src
        for mod in self.layers:
            output = mod(
                output,
                src_mask=mask,
                is_causal=is_causal,
                src_key_padding_mask=src_key_padding_mask,
            )
        if self.norm is not None:
            output = self.norm(output)
        return output


class TransformerDecoder(Module):
    """A stack of `num_layers` deep copies of `decoder_layer`, then `norm`. Mirrors `torch.nn.TransformerDecoder`.

    Args:
        decoder_layer: the layer to copy (a `TransformerDecoderLayer` or compatible module).
        num_layers: number of copies.
        norm: optional final normalisation module.

    Shape:
        see `Transformer`.

    >>> layer = TransformerDecoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    >>> decoder = TransformerDecoder(layer, num_layers=2)
    >>> decoder(jnp.ones((4, 3, 16)), jnp.ones((5, 3, 16))).shape
    (4, 3, 16)
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        tgt: Any,
        memory: Any,
        tgt_mask: Any | None = None,
        memory_mask: Any | None = None,
        tgt_key_padding_mask: Any | None = None,
        memory_key_padding_mask: Any | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> jax.Array:
        """Pass `tgt` (attending to `memory`) through every layer, then `norm`.

        Args:
            tgt: the target sequence.
            memory: the encoder output.
            tgt_mask, memory_mask: attention masks for self- and cross-attention.
            tgt_key_padding_mask, memory_key_padding_mask: keys to ignore per batch element.
            tgt_is_causal: hint that `tgt_mask` is causal; None detects it from a concrete mask.
            memory_is_causal: hint that `memory_mask` is causal.
        """
        output = jnp.asarray(unwrap(tgt))
        seq_len = _get_seq_len(output, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq_len)
        for mod in self.layers:
            output = mod(
                output,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=tgt_is_causal,
                memory_is_causal=memory_is_causal,
            )
        if self.norm is not None:
            output = self.norm(output)
        return output


def _activation_kind(activation: Any) -> int:
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    if activation is F.gelu or isinstance(activation, GELU):
        return 2
    return 0


class TransformerEncoderLayer(Module):
    """Self-attention then feed-forward, each with residual, dropout and LayerNorm. Mirrors `torch.nn.TransformerEncoderLayer`.

    Args:
        d_model: model dimension.
        nhead: attention heads.
        dim_feedforward: hidden size of the feed-forward block (default 2048).
        dropout: dropout probability (default 0.1).
        activation: 'relu', 'gelu' or a unary callable (default `F.relu`).
        layer_norm_eps: LayerNorm eps (default 1e-5).
        batch_first: `(N, S, E)` inputs instead of `(S, N, E)`.
        norm_first: LayerNorm before each block (pre-norm) instead of after.
        bias: learn the biases of the Linear and LayerNorm layers.

    Shape:
        src `(S, N, E)` (or `(N, S, E)` / unbatched `(S, E)`) -> same shape.

    >>> layer = TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    >>> layer(jnp.ones((5, 3, 16))).shape
    (5, 3, 16)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Any], Any] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **fk
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **fk)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **fk)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            activation = _get_activation_fn(activation)
        self.activation_relu_or_gelu = _activation_kind(activation)
        self.activation = activation

    def forward(
        self,
        src: Any,
        src_mask: Any | None = None,
        src_key_padding_mask: Any | None = None,
        is_causal: bool = False,
    ) -> jax.Array:
        """Args:
        src: the input sequence.
        src_mask: attention mask (bool True = not allowed, float added).
        src_key_padding_mask: keys to ignore per batch element.
        is_causal: hint that `src_mask` is causal.
        """
        x = jnp.asarray(unwrap(src))
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask,
            "src_key_padding_mask",
            src_mask,
            "src_mask",
            x.dtype,
            stacklevel=4,
        )
        src_mask = _canonical_mask(src_mask, "src_mask", None, "", x.dtype, check_other=False)
        if self.norm_first:
            x = x + self._sa_block(
                self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal
            )
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(
                x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal)
            )
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(
        self,
        x: jax.Array,
        attn_mask: Any | None,
        key_padding_mask: Any | None,
        is_causal: bool = False,
    ) -> jax.Array:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: jax.Array) -> jax.Array:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention to `memory`, then feed-forward. Mirrors `torch.nn.TransformerDecoderLayer`.

    Args:
        d_model: model dimension.
        nhead: attention heads.
        dim_feedforward: hidden size of the feed-forward block (default 2048).
        dropout: dropout probability (default 0.1).
        activation: 'relu', 'gelu' or a unary callable (default `F.relu`).
        layer_norm_eps: LayerNorm eps (default 1e-5).
        batch_first: `(N, T, E)` inputs instead of `(T, N, E)`.
        norm_first: LayerNorm before each block (pre-norm) instead of after.
        bias: learn the biases of the Linear and LayerNorm layers.

    Shape:
        tgt `(T, N, E)`, memory `(S, N, E)` (batch first when `batch_first`) -> `(T, N, E)`.

    >>> layer = TransformerDecoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    >>> layer(jnp.ones((4, 3, 16)), jnp.ones((5, 3, 16))).shape
    (4, 3, 16)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Any], Any] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias, **fk
        )
        self.multihead_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias, **fk
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **fk)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **fk)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = (
            _get_activation_fn(activation) if isinstance(activation, str) else activation
        )

    def forward(
        self,
        tgt: Any,
        memory: Any,
        tgt_mask: Any | None = None,
        memory_mask: Any | None = None,
        tgt_key_padding_mask: Any | None = None,
        memory_key_padding_mask: Any | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> jax.Array:
        """Args:
        tgt: the target sequence.
        memory: the encoder output.
        tgt_mask, memory_mask: masks for self- and cross-attention.
        tgt_key_padding_mask, memory_key_padding_mask: keys to ignore per batch element.
        tgt_is_causal, memory_is_causal: hints that the masks are causal.
        """
        x = jnp.asarray(unwrap(tgt))
        memory = jnp.asarray(unwrap(memory))
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(
                x
                + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            )
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(
        self,
        x: jax.Array,
        attn_mask: Any | None,
        key_padding_mask: Any | None,
        is_causal: bool = False,
    ) -> jax.Array:
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout1(x)

    def _mha_block(
        self,
        x: jax.Array,
        mem: jax.Array,
        attn_mask: Any | None,
        key_padding_mask: Any | None,
        is_causal: bool = False,
    ) -> jax.Array:
        x = self.multihead_attn(
            x,
            mem,
            mem,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout2(x)

    def _ff_block(self, x: jax.Array) -> jax.Array:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)
