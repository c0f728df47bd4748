"""Convolutions on CPU: jaxmodule's conv lowerings (`JAXMODULE_CPU_CONV`) against torch eager.

    .venv/bin/python benchmarks/conv_cpu.py [--steps 10] [--warmup 3]

Workloads: a ResNet-18 training step (torchvision's layout: 7x7/2 stem, max-pool, [2, 2, 2, 2]
BasicBlocks, 10 classes; batch 16 of 3x32x32) and the digits CNN of `examples/train_classifier.py`
(batch 64 of 1x8x8), both SGD with momentum 0.9 and cross-entropy; and each net's forward alone
(eval mode; `jax.jit` for jaxmodule, `torch.no_grad()` for torch). Each jaxmodule lowering
(`xla`, `im2col`, `auto`: the default) is compiled once in this process and torch runs with 1 and
with all threads; every timed round runs each of them once, interleaved, after warm-up. Prints a
markdown table of medians and each row's ratio to torch (all threads) and to jaxmodule `xla`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWERINGS = ("xla", "im2col", "auto")
LR, MOMENTUM = 0.01, 0.9

__all__ = ["resnet18", "digits_net", "main"]


def resnet18(nn: Any, num_classes: int = 10) -> Any:
    """torchvision's ResNet-18 written against `nn` (torch.nn or jaxmodule.nn: the same code)."""

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    layers, c_in = [], 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, num_classes),
    )


def digits_net(nn: Any, num_classes: int = 10) -> Any:
    """The torch twin of `examples/train_classifier.py`'s `Net` (main() checks the shapes agree)."""
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ),
        nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * 2 * 2, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        ),
    )


def _example_net() -> Any:
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from train_classifier import Net  # deferred: the example folder is not a package

    return Net()


WORKLOADS = {  # name: (builder of the jaxmodule net, builder of the torch net, input shape)
    "ResNet-18, batch 16, 3x32x32": (
        lambda nn: resnet18(nn),
        lambda nn: resnet18(nn),
        (16, 3, 32, 32),
    ),
    "digits CNN (examples/), batch 64, 1x8x8": (
        lambda nn: _example_net(),
        digits_net,
        (64, 1, 8, 8),
    ),
}


def _jaxmodule_fns(build: Callable, shape: tuple, mode: str) -> tuple[Callable, Callable]:
    """(train step, forward) of a fresh jaxmodule net, traced and compiled under lowering `mode`."""
    import jax
    import jax.numpy as jnp
    import jaxmodule
    from jaxmodule import nn, optim
    from jaxmodule.nn import functional as F

    model = build(nn)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, size=shape[0]).astype(np.int32))

    @jaxmodule.compile
    def step(model: Any, opt: Any, x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = jaxmodule.backward(lambda m: F.cross_entropy(m(x), y), model)
        opt.step()
        return loss

    eval_model = build(nn).eval()
    forward = jax.jit(lambda m, x: m(x))

    def train() -> None:
        os.environ["JAXMODULE_CPU_CONV"] = mode  # read at trace time; set for any retrace
        jax.block_until_ready(step(model, opt, x, y))

    def fwd() -> None:
        os.environ["JAXMODULE_CPU_CONV"] = mode
        jax.block_until_ready(forward(eval_model, x))

    return train, fwd


def _torch_fns(build: Callable, shape: tuple, threads: int) -> tuple[Callable, Callable]:
    import torch

    model = build(torch.nn)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, size=shape[0]).astype(np.int64))
    eval_model = build(torch.nn).eval()

    def train() -> None:
        torch.set_num_threads(threads)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def fwd() -> None:
        torch.set_num_threads(threads)
        with torch.no_grad():
            eval_model(x)

    return train, fwd


def _check_twin() -> None:
    """The torch twin of the example net has the example's state_dict keys and shapes."""
    import torch
    from jaxmodule import nn

    jm = {
        k: tuple(v.shape)
        for k, v in WORKLOADS["digits CNN (examples/), batch 64, 1x8x8"][0](nn).state_dict().items()
    }
    tt = {k: tuple(v.shape) for k, v in digits_net(torch.nn).state_dict().items()}
    strip = lambda d: sorted((k.split(".", 1)[1], s) for k, s in d.items())  # noqa: E731
    assert strip(jm) == strip(tt), (
        "benchmarks/conv_cpu.py: digits_net no longer mirrors examples' Net"
    )


def _time(fns: dict[str, Callable], steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round by round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    import torch

    _check_twin()
    default_threads = torch.get_num_threads()
    print("| workload | what | impl | median | vs torch (all threads) | vs jaxmodule xla |")
    print("|---|---|---|---|---|---|")
    for workload, (jm_build, t_build, shape) in WORKLOADS.items():
        impls: dict[str, tuple[Callable, Callable]] = {}
        for mode in LOWERINGS:
            impls[f"jaxmodule {mode}" + (" (default)" if mode == "auto" else "")] = _jaxmodule_fns(
                jm_build, shape, mode
            )
        impls["torch eager, 1 thread"] = _torch_fns(t_build, shape, 1)
        impls[f"torch eager, {default_threads} threads"] = _torch_fns(
            t_build, shape, default_threads
        )
        for what, index in (("train step", 0), ("forward", 1)):
            med = _time({k: v[index] for k, v in impls.items()}, args.steps, args.warmup)
            ref_t = med[f"torch eager, {default_threads} threads"]
            ref_x = med["jaxmodule xla"]
            for name, m in med.items():
                print(
                    f"| {workload} | {what} | {name} | {m * 1e3:.1f} ms | {m / ref_t:.2f}x | "
                    f"{m / ref_x:.2f}x |",
                    flush=True,
                )
    os.environ.pop("JAXMODULE_CPU_CONV", None)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
