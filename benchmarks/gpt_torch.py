"""The torch twin of `examples/gpt_generate.py`'s GPT (same module names, so the same state_dict keys).

Used as the parity reference by `tests/nn/utils/test_kv_cache.py` and as the torch eager baseline by
`benchmarks/generation.py`. Plain torch, no dropout (the example's default `dropout=0.0`).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TorchGPT"]


class TorchAttention(torch.nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.c_attn = torch.nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = torch.nn.Linear(c.n_embd, c.n_embd)
        self.n_head = c.n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        q, k, v = (
            a.view(b, t, self.n_head, e // self.n_head).transpose(1, 2)
            for a in self.c_attn(x).split(e, dim=2)
        )
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, e))


class TorchBlock(torch.nn.Module):
    def __init__(self, c: Any) -> None:
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(c.n_embd)
        self.attn = TorchAttention(c)
        self.ln_2 = torch.nn.LayerNorm(c.n_embd)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(c.n_embd, 4 * c.n_embd)
        self.mlp.c_proj = torch.nn.Linear(4 * c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        h = self.ln_2(x)
        return x + self.mlp.c_proj(torch.nn.functional.gelu(self.mlp.c_fc(h)))


class TorchGPT(torch.nn.Module):
    """GPT-2 style decoder; `c` is a `GPTConfig` of the example."""

    def __init__(self, c: Any) -> None:
        super().__init__()
        self.transformer = torch.nn.ModuleDict(
            dict(
                wte=torch.nn.Embedding(c.vocab_size, c.n_embd),
                wpe=torch.nn.Embedding(c.block_size, c.n_embd),
                h=torch.nn.ModuleList([TorchBlock(c) for _ in range(c.n_layer)]),
                ln_f=torch.nn.LayerNorm(c.n_embd),
            )
        )
        self.lm_head = torch.nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))
