"""Scaling benchmark: one training step, four strategies, 1/2/4/8 simulated CPU devices.

    .venv/bin/python benchmarks/scaling.py [--quick] [--devices 1 2 4 8] [--strategies dp fsdp tp]

A residual MLP of about 4.2M parameters (two blocks of LayerNorm -> Linear(512, 2048) -> GELU ->
Linear(2048, 512), then a 16-way head; `--quick`: 64 wide, 256 hidden) trains with AdamW and
cross-entropy through `jaxmodule.compile`:

- single: the baseline, everything on one device, batch unsharded;
- dp: `replicate(model, mesh)` (torch's DDP), batch sharded over the mesh;
- fsdp: `fully_shard(model, mesh=mesh)` (torch's FSDP2), batch sharded over the mesh;
- tp: `parallelize_module` with the blocks' `up` column-wise and `down` row-wise (Megatron's
  MLP split) over a mesh axis named 'tp', batch replicated.

Each device count runs in its own process (`XLA_FLAGS=--xla_force_host_platform_device_count=N`,
`JAX_PLATFORMS=cpu`, no persistent compilation cache); the single-device baseline runs in the
process of the smallest device count. Each process first trains the tiny model for a few steps
(unrecorded), so that no row pays the process's one-time costs. Per (strategy, device count):
the first call (trace + compile + one step), then 2 more warm-up steps, then the median of `--steps` steps (each
synchronised on its loss with `block_until_ready`) and the process's CPU time per timed step
(all threads: the total work, which other jobs on the machine disturb less); the bytes of parameters and of optimizer
state each device holds (the maximum over devices of the sizes of its `addressable_shards`);
and the largest relative difference between the strategy's per-step losses and the baseline's
(every process draws the same model and batches from the same seeds).

Simulated devices share the machine's cores, so step time cannot improve with N here: the table
shows per-device memory and the cost of the collectives on CPU. The process exits with status 1
when a strategy's losses differ from the baseline's by more than `--rtol`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

__all__ = ["SIZES", "STRATEGIES", "build_model", "run_strategy", "run_process", "table", "main"]

STRATEGIES = ("dp", "fsdp", "tp")  # "single" (the baseline) always runs
# (width, hidden, depth, classes, batch): the full setting and --quick
SIZES = {"full": (512, 2048, 2, 16, 64), "quick": (64, 256, 2, 16, 16)}
WARMUP = 3  # the first call counts as one
MARK = "SCALING-RESULT "


def build_model(width: int, hidden: int, depth: int, classes: int) -> Any:
    """The benchmark's model, written as a torch user would (jaxmodule.nn)."""
    from jaxmodule import nn
    from jaxmodule.nn import functional as F

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(width)
            self.up = nn.Linear(width, hidden)
            self.down = nn.Linear(hidden, width)

        def forward(self, x: Any) -> Any:
            return x + self.down(F.gelu(self.up(self.norm(x))))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, classes)

        def forward(self, x: Any) -> Any:
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    return Net()


def _batches(width: int, classes: int, batch: int, n: int) -> list[tuple[Any, Any]]:
    import numpy as np

    rng = np.random.RandomState(0)
    return [
        (rng.randn(batch, width).astype(np.float32), rng.randint(0, classes, batch))
        for _ in range(n)
    ]


def _max_device_bytes(arrays: list[Any]) -> int:
    """The most bytes any one device holds of `arrays` (the sum of its shards' sizes)."""
    per_device: dict[Any, int] = {}
    for a in arrays:
        for shard in a.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    return max(per_device.values(), default=0)


def _place(strategy: str, model: Any, n: int) -> tuple[Any, Any]:
    """Apply `strategy` to `model` over `n` devices; returns (mesh, batch placements) or
    (None, None) for the single-device baseline."""
    import jaxmodule.distributed as dist

    if strategy == "single":
        return None, None
    if strategy == "tp":
        mesh = dist.init_device_mesh("cpu", (n,), mesh_dim_names=("tp",))
        dist.parallelize_module(
            model,
            mesh,
            {"blocks.*.up": dist.ColwiseParallel(), "blocks.*.down": dist.RowwiseParallel()},
        )
        return mesh, [dist.Replicate()]
    mesh = dist.init_device_mesh("cpu", (n,))
    if strategy == "dp":
        dist.replicate(model, mesh)
    elif strategy == "fsdp":
        dist.fully_shard(model, mesh=mesh)
    else:
        raise ValueError(
            f"scaling.py: unknown strategy {strategy!r}; expected single or one of {STRATEGIES}"
        )
    return mesh, [dist.Shard(0)]


def run_strategy(strategy: str, n: int, size: str, steps: int) -> dict[str, Any]:
    """Train one strategy on `n` devices; timings, per-device bytes and per-step losses."""
    import jax
    import jax.numpy as jnp
    import jaxmodule as jm
    import jaxmodule.distributed as dist
    from jaxmodule import nn, optim

    width, hidden, depth, classes, batch = SIZES[size]
    jm.manual_seed(0)
    model = build_model(width, hidden, depth, classes)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    mesh, placements = _place(strategy, model, n)
    data = [
        (jnp.asarray(x), jnp.asarray(y))
        if mesh is None
        else (
            dist.distribute_tensor(x, mesh, placements),
            dist.distribute_tensor(y, mesh, placements),
        )
        for x, y in _batches(width, classes, batch, WARMUP + steps)
    ]

    @jm.compile
    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = jm.backward(lambda: nn.functional.cross_entropy(model(x), y))
        opt.step()
        return loss

    losses, times = [], []
    t0 = time.perf_counter()
    losses.append(step(*data[0]).block_until_ready())
    first_call = time.perf_counter() - t0
    for i, (x, y) in enumerate(data[1:], start=1):
        if i == WARMUP:
            cpu0 = time.process_time()
        t = time.perf_counter()
        losses.append(step(x, y).block_until_ready())
        times.append(time.perf_counter() - t)
    cpu_per_step = (time.process_time() - cpu0) / steps
    timed = times[WARMUP - 1 :]
    opt_arrays = [a for a in jax.tree.leaves(opt._jm_state_get()) if isinstance(a, jax.Array)]
    return {
        "strategy": strategy,
        "devices": 1 if mesh is None else n,
        "mesh": "-" if mesh is None else ", ".join(f"{k}={v}" for k, v in mesh.shape.items()),
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": statistics.median(timed),
        "cpu_s": cpu_per_step,
        "first_call_s": first_call,
        "param_bytes": _max_device_bytes([p._value for p in model.parameters()]),
        "opt_bytes": _max_device_bytes(opt_arrays),
        "losses": [float(v) for v in losses],
        "traces": step.trace_count,
    }


def run_process(n: int, strategies: list[str], size: str, steps: int) -> list[dict[str, Any]]:
    """Every strategy in this process (which must see `n` devices), one after the other."""
    import gc

    import jax

    if jax.device_count() != n:
        raise RuntimeError(
            f"scaling.py: this process sees {jax.device_count()} devices, expected {n} "
            "(XLA_FLAGS must be set before jax is imported)"
        )
    run_strategy("single", n, "quick", 1)  # pay the process's one-time costs before measuring
    out = []
    for strategy in strategies:
        out.append(run_strategy(strategy, n, size, steps))
        gc.collect()
    return out


def _child_env(n: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))
    }
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if "xla_force_host_platform_device_count" not in f
    ]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={n}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["JAXMODULE_CACHE_DIR"] = "off"  # first calls compile: no persistent compilation cache
    return env


def _spawn(n: int, strategies: list[str], size: str, steps: int) -> list[dict[str, Any]]:
    args = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(n),
        "--steps",
        str(steps),
        "--strategies",
        *strategies,
        *(["--quick"] if size == "quick" else []),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, env=_child_env(n))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(
            f"scaling.py: the {n}-device process failed (exit {proc.returncode}):\n{tail}"
        )
    return json.loads(lines[-1][len(MARK) :])


def _mb(b: int) -> str:
    return f"{b / 2**20:.1f} MB" if b >= 2**20 else f"{b / 2**10:.0f} KB"


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def max_rel_diff(losses: list[float], ref: list[float]) -> float:
    return max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref))


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table; ratios and loss differences against the 'single' row."""
    base = next(r for r in rows if r["strategy"] == "single")
    base_mem = base["param_bytes"] + base["opt_bytes"]
    out = [
        "| strategy | devices | mesh | step (median) | vs 1 device | CPU time / step | first call | params / device | "
        "optimizer state / device | memory vs 1 device | loss max rel. diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mem = r["param_bytes"] + r["opt_bytes"]
        out.append(
            f"| {r['strategy']} | {r['devices']} | {r['mesh']} | {_ms(r['step_s'])} | "
            f"{r['step_s'] / base['step_s']:.2f}x | {_ms(r['cpu_s'])} | {_ms(r['first_call_s'])} | "
            f"{_mb(r['param_bytes'])} | {_mb(r['opt_bytes'])} | {mem / base_mem:.2f}x | "
            f"{max_rel_diff(r['losses'], base['losses']):.1e} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny model (smoke run)")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument(
        "--strategies", nargs="+", default=list(STRATEGIES), choices=("single", *STRATEGIES)
    )
    ap.add_argument("--steps", type=int, default=10, help="timed steps after the warm-up")
    ap.add_argument(
        "--rtol", type=float, default=1e-5, help="largest accepted loss difference vs the baseline"
    )
    ap.add_argument("--json", action="store_true", help="also print every row as JSON")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    size = "quick" if args.quick else "full"
    if args.child is not None:
        print(
            MARK + json.dumps(run_process(args.child, args.strategies, size, args.steps)),
            flush=True,
        )
        return 0
    if any(n < 1 for n in args.devices):
        ap.error(f"--devices must be positive, got {args.devices}")
    devices = sorted(set(args.devices))
    strategies = [s for s in args.strategies if s != "single"]
    width, hidden, depth, classes, batch = SIZES[size]
    print(
        f"model: {depth} blocks {width}->{hidden}->{width}, {classes}-way head, batch {batch}, AdamW; "
        f"{WARMUP} warm-up steps, median of {args.steps}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, n in enumerate(devices):
        rows += _spawn(n, (["single"] if i == 0 else []) + strategies, size, args.steps)
        print(
            f"  {n} device(s) done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
        )
    print(f"parameters: {rows[0]['params']:,}\n")
    print(table(rows))
    if args.json:
        print(json.dumps(rows))
    base = rows[0]["losses"]
    bad = [
        f"{r['strategy']} x{r['devices']}"
        for r in rows
        if max_rel_diff(r["losses"], base) > args.rtol
    ]
    if bad:
        print(
            f"\nlosses differ from the single-device run by more than {args.rtol:g}: {', '.join(bad)}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
