"""Layer benchmark: compiled forward+backward of jaxmodule layers vs torch CPU eager.

    .venv/bin/python benchmarks/layers.py

Same shapes and the same weights (loaded from the torch layer's state_dict) in both libraries.
jaxmodule: `jaxmodule.compile` of `grad(sum(layer(x)**2))` w.r.t. the layer and the input;
torch: forward, `.backward()`, one thread and all threads. Prints medians and ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import jaxmodule
import numpy as np
import torch
from jaxmodule import nn


def cases() -> dict[str, tuple[Any, Any, tuple, Callable]]:
    rng = np.random.default_rng(0)

    def x(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    return {
        "Conv2d(32, 64, 3), x 16x32x32x32": (
            torch.nn.Conv2d(32, 64, 3, padding=1),
            nn.Conv2d(32, 64, 3, padding=1),
            (x(16, 32, 32, 32),),
            first,
        ),
        "LSTM(64, 128, 2 layers), x 32x16x64": (
            torch.nn.LSTM(64, 128, 2, batch_first=True),
            nn.LSTM(64, 128, 2, batch_first=True),
            (x(16, 32, 64),),
            first,
        ),
        "MultiheadAttention(128, 8), x 16x64x128": (
            torch.nn.MultiheadAttention(128, 8, batch_first=True),
            nn.MultiheadAttention(128, 8, batch_first=True),
            (x(16, 64, 128),) * 3,
            first,
        ),
        "TransformerEncoder(128, 4 heads, 2 layers)": (
            torch.nn.TransformerEncoder(
                torch.nn.TransformerEncoderLayer(128, 4, 256, 0.0, batch_first=True),
                2,
                enable_nested_tensor=False,
            ),
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(128, 4, 256, 0.0, batch_first=True), 2
            ),
            (x(16, 64, 128),),
            first,
        ),
    }


def median_s(fn: Callable[[], Any], n: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, tlayer: Any, jlayer: Any, inputs: tuple, first: Callable) -> str:
    """One markdown row: compiled jaxmodule fwd+bwd vs torch eager with 1 and all threads."""
    jlayer.load_state_dict(tlayer.state_dict())
    jin = tuple(jnp.asarray(a) for a in inputs)

    @jaxmodule.compile
    def step(layer: Any, *xs: Any) -> Any:
        return jaxmodule.grad(lambda m, *xs: (first(m(*xs)) ** 2).sum(), argnums=(0, 1))(layer, *xs)

    def jrun() -> None:
        step(jlayer, *jin)[1].block_until_ready()

    tin = [torch.tensor(a, requires_grad=True) for a in inputs]

    def trun() -> None:
        tlayer.zero_grad()
        (first(tlayer(*tin)) ** 2).sum().backward()

    jt = median_s(jrun, 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t1 = median_s(trun, 10)
    torch.set_num_threads(threads)
    tn = median_s(trun, 10)
    return f"| {name} | {jt * 1e3:.2f} ms | {t1 * 1e3:.2f} ms | {jt / t1:.2f}x | {tn * 1e3:.2f} ms | {jt / tn:.2f}x |"


def main() -> None:
    print(
        "| layer | jaxmodule compiled fwd+bwd | torch eager (1 thread) | ratio | torch eager (all threads) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for name, case in cases().items():
        print(bench(name, *case), flush=True)


if __name__ == "__main__":
    main()
