"""Per-token time of greedy generation: KV-cached compiled vs full recompute (jaxmodule, torch).

    .venv/bin/python benchmarks/generation.py [--new-tokens 64] [--eager-tokens 12]

The model is `examples/gpt_generate.py`'s default GPT (4 layers, 4 heads, n_embd 128,
block_size 128, 256-token vocabulary), batch 1, a 16-token prompt, one CPU thread for torch.
Rows:

- jaxmodule, KV cache, compiled: `GPT.generate` (one prefill program, one decode program); the
  first generation (compiles included) and then the median of 3 generations;
- jaxmodule eager full recompute: the whole grown sequence each step, eager. "cold": shapes not
  seen before (every new length compiles its ops); "warm": the same lengths again;
- torch eager full recompute: nanoGPT's `generate` loop under `torch.no_grad()`.

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax.numpy as jnp
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "examples")]

import gpt_generate as gg  # noqa: E402
from gpt_torch import TorchGPT  # noqa: E402

PROMPT_LEN = 16


def jax_recompute(model: gg.GPT, idx: jnp.ndarray, n: int) -> jnp.ndarray:
    for _ in range(n):
        nxt = jnp.argmax(model(idx)[:, -1], axis=-1, keepdims=True).astype(idx.dtype)
        idx = jnp.concatenate([idx, nxt], axis=1)
    return idx.block_until_ready()


def torch_recompute(model: TorchGPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(n):
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--eager-tokens", type=int, default=12, help="tokens for jaxmodule eager")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = gg.GPTConfig()
    reference = TorchGPT(config).eval()
    model = gg.GPT(config)
    model.load_state_dict(reference.state_dict())
    prompt = np.random.default_rng(0).integers(0, config.vocab_size, (1, PROMPT_LEN))
    idx, tidx, n = jnp.asarray(prompt, jnp.int32), torch.from_numpy(prompt), args.new_tokens

    first, cached = timed(lambda: model.generate(idx, n, temperature=0.0).block_until_ready())
    steady = statistics.median(
        timed(lambda: model.generate(idx, n, temperature=0.0).block_until_ready())[0]
        for _ in range(3)
    )
    torch_time = statistics.median(timed(torch_recompute, reference, tidx, n)[0] for _ in range(3))
    assert np.array_equal(np.asarray(cached), torch_recompute(reference, tidx, n).numpy())
    m = args.eager_tokens
    cold, _ = timed(jax_recompute, model, idx, m)
    warm, eager = timed(jax_recompute, model, idx, m)
    assert np.array_equal(np.asarray(eager), np.asarray(cached)[:, : PROMPT_LEN + m])

    print(
        f"GPT 4x128, prompt {PROMPT_LEN}, greedy; traces: prefill {gg.prefill.trace_count}, "
        f"decode {gg.decode.trace_count}\n"
    )
    print("| generation | tokens | per token | vs torch eager |")
    print("|---|---|---|---|")
    rows = [
        ("jaxmodule, KV cache, compiled (first, compiles included)", n, first / n),
        ("jaxmodule, KV cache, compiled (steady)", n, steady / n),
        ("jaxmodule eager full recompute (cold: new lengths)", m, cold / m),
        ("jaxmodule eager full recompute (warm: lengths seen)", m, warm / m),
        ("torch eager full recompute, 1 thread", n, torch_time / n),
    ]
    for name, tokens, per in rows:
        print(f"| {name} | {tokens} | {per * 1e3:.2f} ms | {per / (torch_time / n):.2f}x |")


if __name__ == "__main__":
    main()
