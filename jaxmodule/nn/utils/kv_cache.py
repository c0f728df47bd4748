"""Static key/value caches: autoregressive generation with one prefill and one decode program.

Generating token by token on a growing sequence gives every step a new input shape, so each
new token costs an XLA compilation. A `StaticKVCache` keeps the keys and values of every
position seen so far in fixed-size buffers `(batch, heads, max_len, head_dim)` and a position
counter, all buffers: a compiled step that writes them (`jaxmodule.compile`) writes them back,
and the counter is traced, so each decode step has the same shapes and never retraces.

Why here: torch.nn has no KV cache, so `jaxmodule.nn` (torch's public names only) is not the
place. `nn.utils` holds torch's helpers that attach state to existing models (`parametrize`,
`weight_norm`); `enable_kv_cache` is one of those, and the cache it attaches lives beside it.

The opt-in protocol: an attention module holds `self.kv_cache = None` and, when it is a
`StaticKVCache`, calls `k, v, mask = self.kv_cache.update(k, v)` and attends with `mask`
(True = may attend) instead of `is_causal=True`. `enable_kv_cache` attaches one cache to every
attention module of a class; `disable_kv_cache` sets `kv_cache = None` again. The caches are
non-persistent buffers: `state_dict()` and `load_state_dict()` never see them.
`multihead_attention_with_cache` does the same for `nn.MultiheadAttention` self-attention.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..._dtype import to_dtype
from .. import functional as F
from ..functional._utils import unwrap
from ..modules.attention import MultiheadAttention
from ..modules.module import Module
from ..parameter import Buffer

__all__ = ["StaticKVCache", "enable_kv_cache", "disable_kv_cache", "multihead_attention_with_cache"]


class StaticKVCache(Module):
    """Fixed-size key/value buffers and a position counter for one attention layer.

    Args:
        batch_size: the batch size the cache serves.
        num_heads: key/value heads.
        max_len: the most positions the cache holds (prompt plus generated tokens).
        head_dim: features per head.
        dtype: dtype of the keys and values (default: the default dtype).

    Buffers (all non-persistent): `k_cache`, `v_cache` `(batch_size, num_heads, max_len,
    head_dim)`, and `pos`, an int32 scalar: the number of positions filled.

    >>> import jax.numpy as jnp
    >>> cache = StaticKVCache(1, 2, max_len=8, head_dim=4)
    >>> k_all, v_all, mask = cache.update(jnp.ones((1, 2, 3, 4)), jnp.ones((1, 2, 3, 4)))
    >>> k_all.shape, mask.shape, int(cache.pos)
    ((1, 2, 8, 4), (3, 8), 3)
    >>> mask[:, :4].astype(int).tolist()      # causal inside the chunk, nothing past it
    [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]
    """

    # Registered by __init__; annotations only, no class values, so Module.__getattr__ still
    # finds the buffers. The methods assign arrays to them: Module.__setattr__ puts each array
    # into the buffer's cell, an assignment mypy cannot see (hence the ignores below).
    k_cache: Buffer
    v_cache: Buffer
    pos: Buffer

    def __init__(
        self, batch_size: int, num_heads: int, max_len: int, head_dim: int, dtype: Any = None
    ) -> None:
        super().__init__()
        self.max_len = max_len
        shape = (batch_size, num_heads, max_len, head_dim)
        self.register_buffer("k_cache", jnp.zeros(shape, to_dtype(dtype)), persistent=False)
        self.register_buffer("v_cache", jnp.zeros(shape, to_dtype(dtype)), persistent=False)
        self.register_buffer("pos", jnp.zeros((), jnp.int32), persistent=False)

    def update(self, k: Any, v: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Write `k`, `v` `(batch, heads, T, head_dim)` at the current position and advance it.

        Returns the whole buffers `(batch, heads, max_len, head_dim)` and a bool mask `(T, max_len)`,
        True where a new query may attend: every filled position and, inside the new chunk,
        the positions up to its own. Pass it as `attn_mask` to `scaled_dot_product_attention`.
        Outside a compiled step, writing past `max_len` raises; inside one, keep
        `pos + T <= max_len` yourself (`jax.lax.dynamic_update_slice` would clamp).
        """
        k, v = unwrap(k), unwrap(v)
        cache_k = unwrap(self.k_cache)
        t = k.shape[-2]
        expected = cache_k.shape[:2] + (t,) + cache_k.shape[3:]
        if k.shape != expected or v.shape != expected:
            raise ValueError(
                f"StaticKVCache.update: expected k and v of shape {expected}, got "
                f"{tuple(k.shape)} and {tuple(v.shape)}"
            )
        pos = unwrap(self.pos)
        if not isinstance(pos, jax.core.Tracer) and int(pos) + t > self.max_len:
            raise ValueError(
                f"StaticKVCache.update: {t} new positions at position {int(pos)} "
                f"exceed max_len={self.max_len}; call reset() or use a larger cache"
            )
        start = (0, 0, pos, 0)
        k_all = jax.lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), start)
        v_all = jax.lax.dynamic_update_slice(unwrap(self.v_cache), v.astype(cache_k.dtype), start)
        self.k_cache, self.v_cache, self.pos = k_all, v_all, pos + t  # type: ignore[assignment]
        query_pos = pos + jnp.arange(t, dtype=jnp.int32)[:, None]
        mask = jnp.arange(self.max_len, dtype=jnp.int32)[None, :] <= query_pos
        return k_all, v_all, mask

    def crop(self, length: Any) -> None:
        """Keep only the first `length` positions (an int or a traced int32 scalar).

        After a prefill padded to a fixed length, `crop(prompt_length)` makes the next token
        overwrite the first padded position; the padded keys are never attended to.
        """
        self.pos = jnp.minimum(unwrap(self.pos), jnp.asarray(length, jnp.int32))  # type: ignore[assignment]

    def reset(self) -> None:
        """Empty the cache: zero keys and values and the position."""
        self.k_cache = jnp.zeros_like(unwrap(self.k_cache))  # type: ignore[assignment]
        self.v_cache = jnp.zeros_like(unwrap(self.v_cache))  # type: ignore[assignment]
        self.pos = jnp.zeros((), jnp.int32)  # type: ignore[assignment]

    def extra_repr(self) -> str:
        b, h, n, d = unwrap(self.k_cache).shape
        return f"batch_size={b}, num_heads={h}, max_len={n}, head_dim={d}"


def enable_kv_cache(
    model: Module,
    batch_size: int,
    max_len: int,
    module_type: type = MultiheadAttention,
    *,
    num_heads: int | None = None,
    head_dim: int | None = None,
    dtype: Any = None,
) -> list[StaticKVCache]:
    """Attach a new `StaticKVCache` as `kv_cache` to every `module_type` module of `model`.

    Args:
        model: the model.
        batch_size, max_len, dtype: see `StaticKVCache`.
        module_type: the attention class whose instances get a cache.
        num_heads, head_dim: the cache geometry; default: each module's `num_heads` and
            `head_dim` attributes (as `nn.MultiheadAttention` has).

    Returns the caches in module order. Attaching changes the model's structure, so a compiled
    step traces once for the cached model; caches of the same shape reuse that program.

    >>> from jaxmodule import nn
    >>> model = nn.Sequential(nn.MultiheadAttention(8, 2, batch_first=True))
    >>> caches = enable_kv_cache(model, batch_size=1, max_len=16)
    >>> model[0].kv_cache
    StaticKVCache(batch_size=1, num_heads=2, max_len=16, head_dim=4)
    >>> disable_kv_cache(model); model[0].kv_cache is None
    True
    """
    caches = []
    for name, module in model.named_modules():
        if not isinstance(module, module_type):
            continue
        heads = num_heads if num_heads is not None else getattr(module, "num_heads", None)
        dim = head_dim if head_dim is not None else getattr(module, "head_dim", None)
        if heads is None or dim is None:
            raise ValueError(
                f"enable_kv_cache: {type(module).__name__} at {name!r} has no "
                "`num_heads`/`head_dim` attributes; pass num_heads= and head_dim="
            )
        module.kv_cache = StaticKVCache(batch_size, heads, max_len, dim, dtype=dtype)
        caches.append(module.kv_cache)
    if not caches:
        raise ValueError(f"enable_kv_cache: the model has no {module_type.__name__} module")
    return caches


def disable_kv_cache(model: Module) -> None:
    """Detach every `StaticKVCache` attached by `enable_kv_cache`; `kv_cache` is None again."""
    for module in list(model.modules()):
        if isinstance(getattr(module, "kv_cache", None), StaticKVCache):
            del module.kv_cache
            module.kv_cache = None


def multihead_attention_with_cache(
    mha: MultiheadAttention, x: Any, cache: StaticKVCache | None = None
) -> jax.Array:
    """Causal self-attention of `nn.MultiheadAttention` on new positions `x`, through a cache.

    Equals `mha(x, x, x, attn_mask=causal_mask, need_weights=False)[0]` on the whole sequence,
    computed for the new positions only. Supports packed projections (`kdim == vdim ==
    embed_dim`) without `add_bias_kv`/`add_zero_attn`, and no dropout in training.

    Args:
        mha: the attention module (its weights are used).
        x: the new positions, `(N, T, E)` if `mha.batch_first` else `(T, N, E)`.
        cache: default `mha.kv_cache` (see `enable_kv_cache`).

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> cache = StaticKVCache(1, 2, max_len=16, head_dim=4)
    >>> multihead_attention_with_cache(mha, jnp.ones((1, 5, 8)), cache).shape
    (1, 5, 8)
    """
    cache = getattr(mha, "kv_cache", None) if cache is None else cache
    if not isinstance(cache, StaticKVCache):
        raise ValueError(
            "multihead_attention_with_cache: no cache given and `mha.kv_cache` is "
            f"{type(cache).__name__}; call enable_kv_cache(model, ...) first"
        )
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError(
            "multihead_attention_with_cache: supports packed in_proj_weight without "
            "add_bias_kv or add_zero_attn"
        )
    if mha.training and mha.dropout > 0.0:
        raise ValueError(
            "multihead_attention_with_cache: attention dropout in training; call "
            "model.eval() before generating"
        )
    x = unwrap(x)
    if not mha.batch_first:
        x = jnp.swapaxes(x, 0, 1)
    n, t, e = x.shape
    q, k, v = jnp.split(
        F.linear(x, unwrap(mha.in_proj_weight), unwrap(mha.in_proj_bias)), 3, axis=-1
    )

    def heads(a: jax.Array) -> jax.Array:
        return jnp.swapaxes(a.reshape(n, t, mha.num_heads, mha.head_dim), 1, 2)

    k_all, v_all, mask = cache.update(heads(k), heads(v))
    out = F.scaled_dot_product_attention(heads(q), k_all, v_all, attn_mask=mask)
    out = F.linear(
        jnp.swapaxes(out, 1, 2).reshape(n, t, e),
        unwrap(mha.out_proj.weight),
        unwrap(mha.out_proj.bias),
    )
    return out if mha.batch_first else jnp.swapaxes(out, 0, 1)
