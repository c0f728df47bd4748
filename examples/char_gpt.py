"""A character-level GPT trained on Shakespeare's sonnets, then sampled with a KV cache.

nanoGPT's recipe with jaxmodule: the model is `examples/gpt_generate.py`'s GPT (token and
position embeddings, causal self-attention blocks, LayerNorm, a GELU MLP, the head's weight tied
to the token embedding), with one token per character of `examples/data/sonnets.txt` (nine
sonnets, public domain). Training is one `jaxmodule.compile`d step (`optimizer.zero_grad()`,
`jaxmodule.backward(...)`, `optimizer.step()`, a cosine learning-rate schedule); the held-out
tenth of the text gives a validation loss. Sampling runs `GPT.generate`: a `StaticKVCache`
per attention layer (`jaxmodule.nn.utils.kv_cache`), one compiled prefill and one compiled decode
step for any number of tokens.

    .venv/bin/python examples/char_gpt.py                     # a few minutes on a 2-core CPU
    .venv/bin/python examples/char_gpt.py --steps 2000 --block-size 128 --n-embd 192
    .venv/bin/python examples/char_gpt.py --smoke             # seconds: the CI smoke test
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import jaxmodule
import jaxmodule.nn.functional as F
import numpy as np
from jaxmodule import optim

from gpt_generate import GPT, GPTConfig, decode, generate_recompute, prefill  # examples/ sibling

__all__ = ["CharTokenizer", "load_text", "main"]

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sonnets.txt")


class CharTokenizer:
    """One token per distinct character of the training text.

    >>> tok = CharTokenizer("hello")
    >>> tok.encode("hell"), tok.decode([3, 2])
    ([1, 0, 2, 2], 'lh')
    """

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise ValueError(
                f"CharTokenizer.encode: characters {missing} are not in the training text"
            )
        return [self.index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def load_text(path: str = DATA) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def batches(data: np.ndarray, block: int, batch_size: int, rng: np.random.Generator):
    """Random windows of `data`: inputs `(B, block)` and the next characters as targets."""
    while True:
        starts = rng.integers(0, len(data) - block - 1, batch_size)
        windows = data[starts[:, None] + np.arange(block + 1)]
        yield jnp.asarray(windows[:, :-1]), jnp.asarray(windows[:, 1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=64, help="context length (characters)")
    parser.add_argument("--n-layer", type=int, default=3)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=96)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--prompt", default="Shall I compare thee")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny model and few steps (the CI smoke test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch_size, args.block_size = 60, 16, 48
        args.n_layer, args.n_head, args.n_embd, args.max_new_tokens = 2, 2, 32, 20
    jaxmodule.manual_seed(args.seed)

    text = load_text()
    tok = CharTokenizer(text)
    data = np.asarray(tok.encode(text), np.int32)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    print(
        f"text: {os.path.relpath(DATA)}, {len(text)} characters, vocabulary {tok.vocab_size}; "
        f"train {len(train_data)}, validation {len(val_data)}"
    )

    config = GPTConfig(
        block_size=args.block_size,
        vocab_size=tok.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
    )
    model = GPT(config)
    n_params = sum(p.numel() for p in model.parameters())  # the tied head counts once
    print(
        f"model: {n_params:,} parameters, {config.n_layer} layers, {config.n_head} heads, "
        f"n_embd {config.n_embd}, block {config.block_size}"
    )

    optimizer = optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.1)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.steps, eta_min=args.lr / 10
    )

    @jaxmodule.compile
    def train_step(x: jax.Array, y: jax.Array) -> jax.Array:
        optimizer.zero_grad()
        loss = jaxmodule.backward(
            lambda: F.cross_entropy(model(x).reshape(-1, config.vocab_size), y.reshape(-1))
        )
        jaxmodule.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return loss

    @jaxmodule.compile
    def eval_loss(x: jax.Array, y: jax.Array) -> jax.Array:
        return F.cross_entropy(model(x).reshape(-1, config.vocab_size), y.reshape(-1))

    def validation_loss() -> float:
        model.eval()
        with jaxmodule.no_grad():
            batch = batches(val_data, args.block_size, args.batch_size, np.random.default_rng(1234))
            loss = float(np.mean([float(eval_loss(*next(batch))) for _ in range(4)]))
        model.train()
        return loss

    print(
        f"before training: validation loss {validation_loss():.3f} (uniform guess: "
        f"{np.log(tok.vocab_size):.3f})"
    )
    train_batches = batches(
        train_data, args.block_size, args.batch_size, np.random.default_rng(args.seed)
    )
    report = max(1, args.steps // 5)
    t0 = time.perf_counter()
    first = None
    for step in range(1, args.steps + 1):
        loss = train_step(*next(train_batches))
        if first is None:
            first = float(loss)
            print(
                f"step 1: train loss {first:.3f} (includes XLA compile: {time.perf_counter() - t0:.1f} s)"
            )
        if step % report == 0 or step == args.steps:
            print(f"step {step}: train loss {float(loss):.3f}, lr {scheduler.get_last_lr()[0]:.2e}")
    elapsed = time.perf_counter() - t0
    final = float(loss)
    print(
        f"trained {args.steps} steps in {elapsed:.1f} s: train loss {first:.3f} -> {final:.3f}, "
        f"validation loss {validation_loss():.3f}"
    )

    model.eval()
    prompt = args.prompt[: config.block_size - 1]
    idx = jnp.asarray([tok.encode(prompt)], jnp.int32)
    new = min(args.max_new_tokens, config.block_size - idx.shape[1])
    t0 = time.perf_counter()
    sample = model.generate(idx, new, temperature=args.temperature, top_k=args.top_k)
    sample.block_until_ready()
    t1 = time.perf_counter()
    again = model.generate(idx, new, temperature=args.temperature, top_k=args.top_k)
    again.block_until_ready()
    t2 = time.perf_counter()
    print(
        f"sampled (temperature {args.temperature}, top_k {args.top_k}, {new} new characters, "
        f"block {config.block_size}):"
    )
    print(tok.decode(sample[0].tolist()))
    print(
        f"first generate {t1 - t0:.2f} s (compiles), the second {1e3 * (t2 - t1) / new:.2f} ms/character"
    )
    greedy = model.generate(idx, new, temperature=0.0)
    print("greedy:")
    print(tok.decode(greedy[0].tolist()))
    check = min(new, 2 if args.smoke else 8)
    same = bool((generate_recompute(model, idx, check) == greedy[:, : idx.shape[1] + check]).all())
    print(f"KV-cached greedy == recomputed without cache ({check} tokens): {same}")
    print(
        f"compiled programs: prefill {prefill.trace_count}, decode {decode.trace_count} "
        f"(sampled and greedy: one each, for any number of tokens)"
    )


if __name__ == "__main__":
    main()
