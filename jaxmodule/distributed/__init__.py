"""`jaxmodule.distributed`: torch's distributed names on JAX's sharding engine.

- meshes and placements: `init_device_mesh`, `Shard`, `Replicate`, `distribute_tensor`
- the rules form JAX users expect: `shard_module(module, mesh, rules)` (regex over state_dict
  keys -> `PartitionSpec`), and `sharding_plan(module)` saying what was placed where and why
- torch's presets built on it: `replicate` (DDP), `fully_shard` (FSDP2), `parallelize_module`
  with `ColwiseParallel` / `RowwiseParallel` (tensor parallelism)
- processes: `init_process_group`, `get_rank`, `get_world_size`, `barrier`,
  `destroy_process_group` (around `jax.distributed`)

Everything places the module's own arrays in place (transactionally) and moves optimizer state
with its parameters; `jaxmodule.compile` then keeps every placement across steps. See
docs/scaling.md.
"""

from ._mesh import Placement, Replicate, Shard, distribute_tensor, init_device_mesh
from ._presets import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    fully_shard,
    parallelize_module,
    replicate,
)
from ._process_group import (
    barrier,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
)
from ._shard import ShardingPlan, shard_module, sharding_plan

__all__ = [
    "init_device_mesh",
    "Placement",
    "Shard",
    "Replicate",
    "distribute_tensor",
    "shard_module",
    "sharding_plan",
    "ShardingPlan",
    "replicate",
    "fully_shard",
    "parallelize_module",
    "ParallelStyle",
    "ColwiseParallel",
    "RowwiseParallel",
    "init_process_group",
    "destroy_process_group",
    "is_available",
    "is_initialized",
    "get_rank",
    "get_world_size",
    "get_backend",
    "barrier",
]
