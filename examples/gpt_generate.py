"""A small GPT written the nanoGPT way, generating with a static KV cache: two compilations in all.

    .venv/bin/python examples/gpt_generate.py            # train briefly on a built-in text, generate
    .venv/bin/python examples/gpt_generate.py --tiny     # seconds: the CI smoke test

Appending a token and running the model on the grown sequence gives every step a new shape,
so every new token compiles. Here `generate` attaches a `StaticKVCache` to each attention
layer (`jaxmodule.nn.utils.kv_cache.enable_kv_cache`) and runs two compiled steps:

- `prefill`: the prompt, right-padded to `block_size` (one program for every prompt length),
  fills the caches; then each cache is cropped to the prompt length, so the padding is
  overwritten by the tokens that follow and never attended to;
- `decode`: one token in, one token out; the cache position is a buffer, so it is traced and
  the step never retraces.

`temperature=0.0` decodes greedily; otherwise tokens are sampled (optionally from the `top_k`).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import jaxmodule
from jaxmodule import nn, optim
from jaxmodule.nn import functional as F
from jaxmodule.nn.utils.kv_cache import StaticKVCache, disable_kv_cache, enable_kv_cache

__all__ = [
    "GPTConfig",
    "CausalSelfAttention",
    "MLP",
    "Block",
    "GPT",
    "prefill",
    "decode",
    "forward",
    "generate_recompute",
]

TEXT = (
    "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "
    "a small model learns to repeat what it reads, one byte at a time. "
)


@dataclass
class GPTConfig:
    block_size: int = 128
    vocab_size: int = 256  # bytes
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_embd = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.kv_cache = None  # a StaticKVCache while generating

    def forward(self, x: jax.Array) -> jax.Array:
        B, T, C = x.shape
        q, k, v = jaxmodule.Tensor.split(self.c_attn(x), self.n_embd, dim=2)
        q, k, v = (t.reshape(B, T, self.num_heads, self.head_dim).swapaxes(1, 2) for t in (q, k, v))
        if self.kv_cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v, mask = self.kv_cache.update(k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.swapaxes(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: jax.Array) -> jax.Array:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2 style decoder; `generate` decodes with a static KV cache (two compilations).

    >>> model = GPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=8))
    >>> model.generate(jnp.array([[104, 105]]), max_new_tokens=3, temperature=0.0).shape
    (1, 5)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # residual projections: GPT-2's scaled init
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: jax.Array) -> jax.Array:
        """Logits `(B, T, vocab_size)`; with caches attached, positions continue after the cache."""
        t = idx.shape[1]
        pos = jnp.arange(t, dtype=jnp.int32)
        cache = self.transformer.h[0].attn.kv_cache
        if cache is not None:
            pos = pos + jnp.asarray(cache.pos)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def stream(
        self,
        idx: jax.Array,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Iterator[tuple[jax.Array, jax.Array]]:
        """Yield `(next_token (B, 1), logits (B, vocab_size))` for each new token, KV-cached."""
        b, t = idx.shape
        if t + max_new_tokens > self.config.block_size:
            raise ValueError(
                f"GPT.generate: prompt length {t} + max_new_tokens {max_new_tokens} "
                f"exceeds block_size={self.config.block_size}"
            )
        greedy = temperature == 0.0
        temperature = 1.0 if greedy else float(temperature)
        enable_kv_cache(self, b, self.config.block_size, CausalSelfAttention)
        try:
            padded = jnp.pad(jnp.asarray(idx, jnp.int32), ((0, 0), (0, self.config.block_size - t)))
            tok, logits = prefill(
                self, padded, jnp.asarray(t, jnp.int32), temperature, top_k, greedy
            )
            yield tok, logits
            for _ in range(max_new_tokens - 1):
                tok, logits = decode(self, tok, temperature, top_k, greedy)
                yield tok, logits
        finally:
            disable_kv_cache(self)

    def generate(
        self,
        idx: jax.Array,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> jax.Array:
        """Append `max_new_tokens` tokens to `idx` `(B, T)`; `temperature=0.0` is greedy."""
        new = [tok for tok, _ in self.stream(idx, max_new_tokens, temperature, top_k)]
        return jnp.concatenate([jnp.asarray(idx, jnp.int32), *new], axis=1)


def _pick(logits: jax.Array, temperature: float, top_k: int | None, greedy: bool) -> jax.Array:
    """The next token `(B, 1)` from the last logits `(B, V)`."""
    if greedy:
        return jnp.argmax(logits, axis=-1, keepdims=True).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None:
        kth = jaxmodule.topk(logits, min(top_k, logits.shape[-1]))[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    probs = jaxmodule.softmax(logits, dim=-1)
    return jaxmodule.multinomial(probs, num_samples=1).astype(jnp.int32)


@jaxmodule.compile
def prefill(
    model: GPT,
    padded: jax.Array,
    length: jax.Array,
    temperature: float,
    top_k: int | None,
    greedy: bool,
) -> tuple[jax.Array, jax.Array]:
    """Run the right-padded prompt through the cached model; crop the caches to `length`."""
    logits = model(padded)
    for module in model.modules():
        if isinstance(module, StaticKVCache):
            module.crop(length)
    last = jax.lax.dynamic_index_in_dim(logits, length - 1, axis=1, keepdims=False)
    return _pick(last, temperature, top_k, greedy), last


@jaxmodule.compile
def decode(
    model: GPT, tok: jax.Array, temperature: float, top_k: int | None, greedy: bool
) -> tuple[jax.Array, jax.Array]:
    """One token `(B, 1)` through the cached model: the next token and its logits."""
    logits = model(tok)[:, -1]
    return _pick(logits, temperature, top_k, greedy), logits


@jaxmodule.compile
def forward(model: GPT, idx: jax.Array) -> jax.Array:
    """The model's logits, compiled (one program per input shape)."""
    return model(idx)


def generate_recompute(model: GPT, idx: jax.Array, max_new_tokens: int) -> jax.Array:
    """Greedy generation without a cache: the whole grown sequence each step, one compile each."""
    for _ in range(max_new_tokens):
        logits = forward(model, idx)[:, -1]
        idx = jnp.concatenate(
            [idx, jnp.argmax(logits, axis=-1, keepdims=True).astype(idx.dtype)], axis=1
        )
    return idx


def train(model: GPT, steps: int, batch_size: int, lr: float) -> float:
    """A few AdamW steps on random windows of `TEXT`; returns the last loss."""
    data = jnp.asarray(list(TEXT.encode()), jnp.int32)
    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    block = min(model.config.block_size, len(data) - 1)

    @jaxmodule.compile
    def step(x: jax.Array, y: jax.Array) -> jax.Array:
        optimizer.zero_grad()
        loss = jaxmodule.backward(
            lambda: F.cross_entropy(model(x).reshape(-1, model.config.vocab_size), y.reshape(-1))
        )
        optimizer.step()
        return loss

    loss = jnp.zeros(())
    for _ in range(steps):
        starts = jaxmodule.randint(0, len(data) - block, (batch_size,))
        windows = starts[:, None] + jnp.arange(block + 1)
        loss = step(data[windows[:, :-1]], data[windows[:, 1:]])
    return float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny model and few steps (smoke test)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    args = parser.parse_args()
    jaxmodule.manual_seed(0)
    if args.tiny:
        config, steps, new = GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=32), 10, 20
    else:
        config, steps, new = GPTConfig(), args.steps, args.max_new_tokens
    model = GPT(config)
    print(f"trained {steps} steps, loss {train(model, steps, 8, 3e-3):.3f}")

    prompt = jnp.asarray([list(b"the quick ")], jnp.int32)
    t0 = time.perf_counter()
    out = model.generate(prompt, new, temperature=0.0)
    out.block_until_ready()
    t1 = time.perf_counter()
    out2 = model.generate(prompt, new, temperature=0.0)
    out2.block_until_ready()
    t2 = time.perf_counter()
    sampled = model.generate(prompt, new, temperature=0.8, top_k=20)
    print("greedy: ", repr(bytes(out[0].tolist()).decode(errors="replace")))
    print("sampled:", repr(bytes(sampled[0].tolist()).decode(errors="replace")))
    check = 4 if args.tiny else new
    same = bool(
        (generate_recompute(model, prompt, check) == out[:, : prompt.shape[1] + check]).all()
    )
    print(f"cached == recompute ({check} tokens): {same}")
    print(
        f"traces: prefill {prefill.trace_count}, decode {decode.trace_count} "
        f"(greedy and sampled: two programs each)"
    )
    print(f"first generate {t1 - t0:.2f} s (compiles), second {1e3 * (t2 - t1) / new:.2f} ms/token")


if __name__ == "__main__":
    main()
