"""One process of the two-process loopback run in `test_multiprocess.py`.

    python -m tests.distributed._mp_worker RANK WORLD_SIZE PORT WORKDIR

Joins the run with `jaxmodule.distributed.init_process_group` (rank 0 hosts the coordinator on
127.0.0.1:PORT), then, for data parallelism (`replicate`, SGD with momentum) and FSDP
(`fully_shard`, AdamW): trains the MLP of `make_model` for `STEPS` compiled steps on a global
batch assembled from each process's rows, saves model and optimizer with `jaxmodule.save` from
every process, loads it back, and keeps a `CheckpointManager` (2 steps kept) through training.
Every array, gathered from all processes, goes to WORKDIR/rank{RANK}.npz. The test process
imports `make_model`, `make_data` and `train` to compute the single-process reference.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

__all__ = ["STEPS", "make_model", "make_data", "make_optimizer", "train", "flatten", "array_of"]

STEPS = 3
BATCH, D_IN, HIDDEN, CLASSES = 16, 8, 16, 4


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """The global batch (every process builds it and keeps only its own rows)."""
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((BATCH, D_IN)).astype(np.float32),
        rng.integers(0, CLASSES, BATCH).astype(np.int32),
    )


def make_model() -> Any:
    import jaxmodule
    from jaxmodule import nn

    jaxmodule.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def make_optimizer(mode: str, model: Any) -> Any:
    from jaxmodule import optim

    if mode == "dp":
        return optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)


def train(mode: str, model: Any, x: Any, y: Any, on_step: Any = None) -> tuple[Any, list[float]]:
    """`STEPS` compiled torch-style steps; returns the optimizer and the losses."""
    import jaxmodule
    from jaxmodule import nn

    optimizer = make_optimizer(mode, model)
    criterion = nn.CrossEntropyLoss()

    @jaxmodule.compile
    def step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = jaxmodule.backward(lambda m: criterion(m(x), y), model)
        optimizer.step()
        return loss

    losses = []
    for i in range(1, STEPS + 1):
        losses.append(float(step(model, optimizer, x, y)))
        if on_step is not None:
            on_step(i, optimizer)
    return optimizer, losses


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """'a/b/0' -> leaf, for nested dicts, lists and tuples."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def array_of(value: Any) -> Any:
    """The array of a leaf (a Parameter/Buffer cell holds it in `_value`; a jax.Array's own
    `_value` is a host copy, never read)."""
    import jax

    return value if isinstance(value, jax.Array) else getattr(value, "_value", value)


def _gathered(value: Any) -> np.ndarray:
    """The whole value of an array leaf as numpy, from every process's shards."""
    import jax
    from jax.experimental import multihost_utils

    value = array_of(value)
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(value, tiled=True))
    return np.asarray(value)


def _spec(value: Any) -> str:
    """A sharding's PartitionSpec as text without trailing Nones ('(\'data\',)', '()'), or the
    sharding's repr when it has no spec."""
    sharding = getattr(array_of(value), "sharding", None)
    spec = getattr(sharding, "spec", None)
    if spec is None:
        return repr(sharding)
    entries = list(spec)
    while entries and entries[-1] is None:
        entries.pop()
    return repr(tuple(entries))


def _record(out: dict[str, np.ndarray], tag: str, obj: Any) -> None:
    for key, leaf in flatten(obj).items():
        if leaf is None or isinstance(leaf, (str, bool)):
            continue
        out[f"{tag}/{key}"] = _gathered(leaf)
        out[f"spec:{tag}/{key}"] = np.array(_spec(leaf))


def run_mode(mode: str, rank: int, world: int, workdir: str, out: dict[str, np.ndarray]) -> None:
    import jax
    import jaxmodule
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P
    from jaxmodule.checkpoint import CheckpointManager
    from jaxmodule.distributed import fully_shard, init_device_mesh, replicate

    mesh = init_device_mesh("cpu", (jax.device_count(),), mesh_dim_names=("data",))
    model = make_model()
    if mode == "dp":
        replicate(model, mesh)
    else:
        fully_shard(model, mesh=mesh)
    x, y = make_data()
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    batch = NamedSharding(mesh, P("data"))
    gx = jax.make_array_from_process_local_data(batch, x[rows], x.shape)
    gy = jax.make_array_from_process_local_data(batch, y[rows], y.shape)

    manager = CheckpointManager(os.path.join(workdir, f"{mode}_steps"), max_to_keep=2)

    def on_step(i: int, optimizer: Any) -> None:
        manager.save(i, {"model": model.state_dict(), "step": i})

    optimizer, losses = train(mode, model, gx, gy, on_step)
    out[f"{mode}/losses"] = np.array(losses)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": STEPS}
    _record(out, f"{mode}/saved", state)

    path = os.path.join(workdir, f"{mode}.pth")
    jaxmodule.save(state, path)
    _record(out, f"{mode}/loaded", jaxmodule.load(path))

    manager.wait_until_finished()
    out[f"{mode}/manager_steps"] = np.array(manager.all_steps())
    _record(out, f"{mode}/manager", manager.restore())
    manager.close()


def main(argv: list[str]) -> None:
    rank, world, port, workdir = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    import jaxmodule.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=world, rank=rank
    )
    out: dict[str, np.ndarray] = {
        "rank": np.array(dist.get_rank()),
        "world": np.array(dist.get_world_size()),
    }
    for mode in ("dp", "fsdp"):
        run_mode(mode, rank, world, workdir, out)
    dist.barrier()
    np.savez(os.path.join(workdir, f"rank{rank}.npz"), **out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
