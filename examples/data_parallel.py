"""Data-parallel (DDP) or fully sharded (FSDP, `--fsdp`) training on a simulated 8-device mesh.

torch's names from `jaxmodule.distributed`: `init_device_mesh("cpu", (8,))`, then
`replicate(model, mesh)` (DDP: every device holds every parameter, gradients are all-reduced) or
`fully_shard(model, mesh=mesh)` (FSDP2: each device holds 1/8 of each parameter it can split
and of its AdamW moments), and `distribute_tensor(batch, mesh, [Shard(0)])` (each device gets
1/8 of the global batch, torch's DistributedSampler). The training step is the single-device
step, compiled once; XLA adds the collectives. The script prints the sharding plan and the
parameter bytes on each device, then trains the same model (same seed, same data) on one
device and compares the final losses.

On one CPU the 8 devices are simulated: the script sets
`XLA_FLAGS=--xla_force_host_platform_device_count=8` before importing jax when XLA_FLAGS is
not set (with several real devices, leave it unset and they are used as they are).

    .venv/bin/python examples/data_parallel.py            # DDP
    .venv/bin/python examples/data_parallel.py --fsdp     # FSDP
    .venv/bin/python examples/data_parallel.py --smoke    # the CI smoke test
"""

from __future__ import annotations

import os

if "XLA_FLAGS" not in os.environ:  # before jax is imported: 8 simulated CPU devices
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import argparse  # noqa: E402

import jax  # noqa: E402
import jaxmodule  # noqa: E402
import jaxmodule.nn.functional as F  # noqa: E402
import numpy as np  # noqa: E402
from jaxmodule import nn, optim  # noqa: E402
from jaxmodule.distributed import (  # noqa: E402
    Shard,
    distribute_tensor,
    fully_shard,
    init_device_mesh,
    replicate,
    sharding_plan,
)

__all__ = ["MLP", "per_device_bytes", "train", "main"]


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, width)
        self.norm = nn.LayerNorm(width)
        self.fc2 = nn.Linear(width, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = F.gelu(self.norm(self.fc1(x)))
        return self.head(F.gelu(self.fc2(x)))


def per_device_bytes(module: nn.Module) -> dict[str, int]:
    """Bytes of the module's parameters held by each device (its addressable shards)."""
    totals: dict[str, int] = {}
    for p in module.parameters():
        for shard in p.data.addressable_shards:
            totals[str(shard.device)] = totals.get(str(shard.device), 0) + shard.data.nbytes
    return totals


def make_data(steps: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    proj = rng.standard_normal((64, 10)).astype(np.float32)
    batches = []
    for _ in range(steps):
        x = rng.standard_normal((batch_size, 64)).astype(np.float32)
        batches.append((x, (x @ proj).argmax(1).astype(np.int32)))
    return batches


def train(model: nn.Module, batches: list, mesh=None, log_every: int = 0) -> list[float]:
    """AdamW steps over `batches`; with a mesh each batch is split over its devices."""
    optimizer = optim.AdamW(model.parameters(), lr=3e-3)

    @jaxmodule.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda: F.cross_entropy(model(x), y))
        optimizer.step()
        return loss

    losses = []
    for i, (x, y) in enumerate(batches):
        if mesh is not None:
            x, y = distribute_tensor(x, mesh, [Shard(0)]), distribute_tensor(y, mesh, [Shard(0)])
        losses.append(float(train_step(x, y)))
        if log_every and (i % log_every == 0 or i == len(batches) - 1):
            print(f"step {i:3d}: loss {losses[-1]:.5f}")
    if mesh is not None:
        print(
            f"compiled once for all {len(batches)} steps: {train_step.trace_count} trace(s); the batch "
            f"x is {x.sharding.spec} over the mesh"
        )
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fsdp", action="store_true", help="fully_shard (FSDP) instead of replicate (DDP)"
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--batch-size", type=int, default=64, help="the global batch (divisible by the devices)"
    )
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument(
        "--smoke", action="store_true", help="10 steps, a narrow model (the CI smoke test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.width = 10, 64
    n = jax.device_count()
    print(f"{n} {jax.devices()[0].platform} devices: {[str(d) for d in jax.devices()]}")
    batches = make_data(args.steps, args.batch_size)

    mesh = init_device_mesh(jax.devices()[0].platform, (n,))  # one axis, named 'data'
    jaxmodule.manual_seed(0)
    model = MLP(args.width)
    single_bytes = sum(p.numel() * p.dtype.itemsize for p in model.parameters())
    if args.fsdp:
        fully_shard(model, mesh=mesh)
        strategy = "FSDP (fully_shard)"
    else:
        replicate(model, mesh)
        strategy = "DDP (replicate)"
    print(f"=== {strategy} on mesh {dict(mesh.shape)} ===")
    print(sharding_plan(model))
    print(model)
    per_device = per_device_bytes(model)
    sizes = sorted(set(per_device.values()))
    shown = (
        f"{sizes[0]:,} on each of {len(per_device)} devices" if len(sizes) == 1 else str(per_device)
    )
    print(f"parameter bytes per device: {shown} (the whole model: {single_bytes:,})")
    sharded = train(model, batches, mesh, log_every=max(1, args.steps // 5))

    print("=== the same model and data on one device ===")
    jaxmodule.manual_seed(0)
    single = train(MLP(args.width), batches)
    gap = abs(sharded[-1] - single[-1]) / abs(single[-1])
    print(
        f"final loss: {strategy} {sharded[-1]:.6f}, one device {single[-1]:.6f}, "
        f"relative difference {gap:.1e} (float summation order)"
    )
    print(f"loss {sharded[0]:.4f} -> {sharded[-1]:.4f}")


if __name__ == "__main__":
    main()
