"""Eager (uncompiled) module calls: jaxmodule against torch eager (1 thread), paired in one process.

    .venv/bin/python benchmarks/eager.py [--reps 200] [--profile]

Workloads:

- GPT forward: `examples/gpt_generate.py`'s default GPT (4 layers, 4 heads, n_embd 128), batch 1,
  16 tokens, under `no_grad` (torch: `benchmarks/gpt_torch.py`, the same weights);
- LSTM LM training step: the word-language-model of `tests/port/torch_sources/` (Embedding(40, 16),
  2-layer LSTM(16, 16), tied Linear decoder, log_softmax + NLL), batch 4, bptt 8: zero_grad,
  forward, backward, clip_grad_norm_(0.25), SGD step (lr 20); the hidden state is carried.

Each workload alternates its implementations call by call and reports medians:

- jaxmodule eager, as written: the user's classes run op by op, the built-in layers and the
  attention / loss / softmax / clipping functionals as cached programs;
- jaxmodule eager, user classes declared `@nn.utils.pure_forward`: the same code with the user's
  module classes declared pure (one line each), so a whole block is one cached program;
- jaxmodule eager, cache off (`set_eager_jit(False)`): every op dispatched on its own;
- jaxmodule compiled: the same step through `jaxmodule.compile` (one program);
- torch eager, 1 thread.

`--profile` prints a cProfile breakdown of the jaxmodule eager GPT forward, as written.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "examples")]

import jaxmodule  # noqa: E402
from jaxmodule import nn  # noqa: E402
from jaxmodule.nn import functional as F  # noqa: E402
from jaxmodule.nn.modules import _eager  # noqa: E402

import gpt_generate as gg  # noqa: E402
from gpt_torch import TorchGPT  # noqa: E402

__all__ = ["LSTMLM", "TorchLSTMLM", "main"]

NTOKEN, NINP, NLAYERS, BSZ, BPTT, LR, CLIP = 40, 16, 2, 4, 8, 20.0, 0.25


class LSTMLM(nn.Module):
    """The word-language-model RNNModel (LSTM, tied weights, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(NTOKEN, NINP)
        self.rnn = nn.LSTM(NINP, NINP, NLAYERS)
        self.decoder = nn.Linear(NINP, NTOKEN)
        self.decoder.weight = self.encoder.weight

    def forward(self, x: jax.Array, hidden: tuple) -> tuple:
        out, hidden = self.rnn(self.encoder(x), hidden)
        return F.log_softmax(self.decoder(out).reshape(-1, NTOKEN), dim=1), hidden


class TorchLSTMLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Embedding(NTOKEN, NINP)
        self.rnn = torch.nn.LSTM(NINP, NINP, NLAYERS)
        self.decoder = torch.nn.Linear(NINP, NTOKEN)
        self.decoder.weight = self.encoder.weight

    def forward(self, x: torch.Tensor, hidden: tuple) -> tuple:
        out, hidden = self.rnn(self.encoder(x), hidden)
        return torch.log_softmax(self.decoder(out).reshape(-1, NTOKEN), dim=1), hidden


def gpt_pair() -> tuple[Callable, Callable, Callable, tuple[type, ...]]:
    config = gg.GPTConfig()
    reference = TorchGPT(config).eval()
    model = gg.GPT(config).eval()
    model.load_state_dict(reference.state_dict())
    prompt = np.random.default_rng(0).integers(0, config.vocab_size, (1, 16))
    idx, tidx = jnp.asarray(prompt, jnp.int32), torch.from_numpy(prompt)

    def jm() -> None:
        with jaxmodule.no_grad():
            model(idx).block_until_ready()

    def tc() -> None:
        with torch.no_grad():
            reference(tidx)

    compiled = jaxmodule.compile(lambda m, i: m(i))

    def jc() -> None:
        with jaxmodule.no_grad():
            compiled(model, idx).block_until_ready()

    with torch.no_grad():
        np.testing.assert_allclose(
            np.asarray(model(idx)), reference(tidx).numpy(), rtol=1e-4, atol=1e-4
        )
    return jm, tc, jc, (gg.CausalSelfAttention, gg.MLP, gg.Block, gg.GPT)


def lstm_pair() -> tuple[Callable, Callable, Callable, tuple[type, ...]]:
    torch.manual_seed(0)
    reference = TorchLSTMLM()
    model = LSTMLM()
    model.load_state_dict(reference.state_dict())
    tokens = np.random.default_rng(0).integers(0, NTOKEN, (BPTT + 1, BSZ))
    x, y = jnp.asarray(tokens[:-1]), jnp.asarray(tokens[1:].reshape(-1))
    tx, ty = torch.from_numpy(tokens[:-1]), torch.from_numpy(tokens[1:].reshape(-1))
    opt = jaxmodule.optim.SGD(model.parameters(), lr=LR)
    state = {
        "h": (jnp.zeros((NLAYERS, BSZ, NINP)),) * 2,
        "hc": (jnp.zeros((NLAYERS, BSZ, NINP)),) * 2,
        "th": (torch.zeros(NLAYERS, BSZ, NINP),) * 2,
    }

    def loss_fn() -> tuple:
        out, hidden = model(x, state["h"])
        return F.nll_loss(out, y), hidden

    def jm() -> None:
        opt.zero_grad()
        loss, hidden = jaxmodule.backward(loss_fn, has_aux=True)
        state["h"] = tuple(jax.lax.stop_gradient(h) for h in hidden)
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        loss.block_until_ready()

    def step(h: tuple) -> tuple:
        opt.zero_grad()
        loss, hidden = jaxmodule.backward(
            lambda: (lambda o: (F.nll_loss(o[0], y), o[1]))(model(x, h)), has_aux=True
        )
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        return loss, tuple(jax.lax.stop_gradient(v) for v in hidden)

    compiled = jaxmodule.compile(step)

    def jc() -> None:
        loss, state["hc"] = compiled(state["hc"])
        loss.block_until_ready()

    def tc() -> None:
        reference.zero_grad()
        out, hidden = reference(tx, tuple(h.detach() for h in state["th"]))
        state["th"] = hidden
        loss = torch.nn.functional.nll_loss(out, ty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), CLIP)
        with torch.no_grad():
            for p in reference.parameters():
                p.add_(p.grad, alpha=-LR)
        loss.item()

    return jm, tc, jc, (LSTMLM,)


EAGER = "jaxmodule eager, as written"
DECLARED = "jaxmodule eager, user classes declared @nn.utils.pure_forward"
OFF = "jaxmodule eager, cache off"
COMPILED = "jaxmodule compiled (jaxmodule.compile)"
TORCH = "torch eager, 1 thread"


def paired(fns: dict[str, Callable], reps: int, declared: tuple[type, ...]) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved, after warm-up calls."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for k, fn in fns.items():  # warm-up (compiles) outside the timing
        in_mode(k, fn, declared)
        in_mode(k, fn, declared)
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            in_mode(k, fn, declared)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def in_mode(key: str, fn: Callable, declared: tuple[type, ...]) -> None:
    """Run fn with the eager jit cache off for OFF, and the user's classes declared for DECLARED."""
    previous = _eager.set_eager_jit(key != OFF)
    if key == DECLARED:
        _eager.register_pure_forward(*declared)
    try:
        fn()
    finally:
        _eager.set_eager_jit(previous)
        for cls in declared:
            _eager.RULES.pop(cls, None)


def profile(fn: Callable, label: str, n: int = 50) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    print(f"\n### cProfile: {label}, {n} calls, top by tottime\n")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, make in (
        ("GPT forward (batch 1, 16 tokens)", gpt_pair),
        ("LSTM LM training step (batch 4, bptt 8)", lstm_pair),
    ):
        jm, tc, jc, declared = make()
        med = paired(
            {EAGER: jm, DECLARED: jm, OFF: jm, COMPILED: jc, TORCH: tc}, args.reps, declared
        )
        ref = med[TORCH]
        rows += [(name, k, v, v / ref) for k, v in med.items()]
        if args.profile and name.startswith("GPT"):
            profile(
                lambda jm=jm, declared=declared: in_mode(EAGER, jm, declared), f"{name}, {EAGER}"
            )
    print("\n| workload | implementation | median | vs torch eager |")
    print("|---|---|---|---|")
    for name, k, v, r in rows:
        print(f"| {name} | {k} | {v * 1e3:.2f} ms | {r:.2f}x |")


if __name__ == "__main__":
    main()
