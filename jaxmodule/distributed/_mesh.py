"""Device meshes and placements with torch's names, on `jax.sharding`.

torch's `DeviceMesh` is JAX's `jax.sharding.Mesh`; torch's placements (`Shard(dim)`,
`Replicate()`) become a `jax.sharding.PartitionSpec`; a DTensor is a `jax.Array` with a
`NamedSharding` (there is no separate tensor class: every jnp operation works on it, and XLA's
sharding propagation inserts the collectives torch's DTensor dispatch would run).

>>> import jax, jax.numpy as jnp
>>> import jaxmodule.distributed as dist
>>> mesh = dist.init_device_mesh("cpu", (jax.device_count(),), mesh_dim_names=("data",))
>>> x = dist.distribute_tensor(jnp.ones((2 * jax.device_count(), 3)), mesh, [dist.Shard(0)])
>>> x.sharding.spec
P('data',)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._device import resolve_device
from .._tensor import as_array

if TYPE_CHECKING:  # annotations only (jax.sharding.AbstractMesh is newer than jax 0.4.35)
    from jax.sharding import AbstractMesh

__all__ = [
    "init_device_mesh",
    "Shard",
    "Replicate",
    "Placement",
    "distribute_tensor",
    "placements_to_spec",
    "data_axis",
    "model_axis",
]

_KINDS = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "tpu": "tpu"}


def init_device_mesh(
    device_type: str, mesh_shape: Sequence[int], *, mesh_dim_names: Sequence[str] | None = None
) -> Mesh:
    """A mesh over the devices of one kind, every process's included. Mirrors
    `torch.distributed.device_mesh.init_device_mesh`, returning a `jax.sharding.Mesh`.

    Args:
        device_type: 'cpu', 'cuda' (or 'gpu') or 'tpu'.
        mesh_shape: the size of each mesh dimension; their product must equal the number of
            devices of that kind (over all processes), as torch requires it to equal the world size.
        mesh_dim_names: a name per dimension. JAX needs names, so without them the dimensions are
            called 'dim_0', 'dim_1', ... (a one-dimensional mesh: 'data').

    >>> init_device_mesh("cpu", (jax.device_count(),)).axis_names
    ('data',)
    """
    shape = tuple(mesh_shape)
    if not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"init_device_mesh: mesh_shape must be a tuple of positive ints, got {mesh_shape!r}"
        )
    kind = _KINDS.get(str(device_type).split(":")[0].lower())
    if kind is None:
        raise RuntimeError(
            f"init_device_mesh: device_type must be one of cpu, cuda, gpu, tpu, got {device_type!r}"
        )
    resolve_device(kind)  # raises with the list of devices that exist when there is none
    devices = jax.devices(kind)
    if math.prod(shape) != len(devices):
        raise RuntimeError(
            f"init_device_mesh: mesh_shape {shape} needs {math.prod(shape)} devices, but there are "
            f"{len(devices)} '{device_type}' devices (the mesh must cover every device, as torch's "
            "covers the world size; set XLA_FLAGS=--xla_force_host_platform_device_count=N to "
            "simulate N CPU devices)"
        )
    if mesh_dim_names is None:
        names = ("data",) if len(shape) == 1 else tuple(f"dim_{i}" for i in range(len(shape)))
    else:
        names = tuple(mesh_dim_names)
        if len(names) != len(shape) or len(set(names)) != len(names):
            raise RuntimeError(
                f"init_device_mesh: mesh_dim_names {names} must be {len(shape)} unique "
                f"names, one per dimension of mesh_shape {shape}"
            )
    try:
        grid = mesh_utils.create_device_mesh(shape, devices)
    except (AssertionError, ValueError, NotImplementedError):
        grid = np.array(devices).reshape(shape)
    return Mesh(grid, names)


class Placement:
    """Base of `Shard` and `Replicate` (torch's `Placement`)."""

    def is_shard(self, dim: int | None = None) -> bool:
        return False

    def is_replicate(self) -> bool:
        return False


@dataclass(frozen=True)
class Shard(Placement):
    """Split tensor dimension `dim` over one mesh dimension. Mirrors torch's `Shard`."""

    dim: int

    def is_shard(self, dim: int | None = None) -> bool:
        return dim is None or dim == self.dim

    def __str__(self) -> str:
        return f"S({self.dim})"


@dataclass(frozen=True)
class Replicate(Placement):
    """A full copy on every device of one mesh dimension. Mirrors torch's `Replicate`."""

    def is_replicate(self) -> bool:
        return True

    def __str__(self) -> str:
        return "R"


def placements_to_spec(placements: Sequence[Placement], mesh: Mesh, ndim: int) -> PartitionSpec:
    """torch placements (one per mesh dimension) as a PartitionSpec over an `ndim`-d array."""
    if len(placements) != len(mesh.axis_names):
        raise ValueError(
            f"distribute_tensor: `placements` must have one entry per mesh dimension "
            f"({len(mesh.axis_names)}: {mesh.axis_names}), got {len(placements)}"
        )
    dims: list[list[str]] = [[] for _ in range(ndim)]
    for axis, p in zip(mesh.axis_names, placements):
        if isinstance(p, Shard):
            d = p.dim + ndim if p.dim < 0 else p.dim
            if not 0 <= d < ndim:
                raise IndexError(
                    f"distribute_tensor: Shard(dim={p.dim}) is out of range for a {ndim}-d tensor"
                )
            dims[d].append(axis)
        elif not isinstance(p, Replicate):
            raise TypeError(
                f"distribute_tensor: placements must be Shard(dim) or Replicate(), got {p!r}"
            )
    entries = [None if not a else a[0] if len(a) == 1 else tuple(a) for a in dims]
    while entries and entries[-1] is None:  # the form jax.jit gives its outputs
        entries.pop()
    return PartitionSpec(*entries)


def distribute_tensor(
    tensor: Any,
    device_mesh: Mesh | None = None,
    placements: Sequence[Placement] | None = None,
    *,
    src_data_rank: int | None = 0,
) -> jax.Array:
    """Place `tensor` on `device_mesh` as `placements` say. Mirrors
    `torch.distributed.tensor.distribute_tensor`, returning a sharded `jax.Array` (torch's DTensor).

    As in torch, every process passes the full tensor; each device receives only its shard,
    built from the process's own copy (`jax.make_array_from_callback`), so nothing is gathered
    on one device and it works the same with one process or many. Without `placements` the
    tensor is replicated; without a mesh, a one-dimensional mesh over every device is used.
    `src_data_rank` is accepted for torch compatibility (every process must hold equal data).
    """
    mesh = device_mesh if device_mesh is not None else default_mesh()
    arr = tensor if isinstance(tensor, jax.Array) else as_array(tensor)
    if placements is None:
        placements = [Replicate()] * len(mesh.axis_names)
    sharding = NamedSharding(mesh, placements_to_spec(placements, mesh, arr.ndim))
    check_divisible("distribute_tensor", "tensor", arr.shape, sharding)
    if jax.process_count() == 1:
        return jax.device_put(arr, sharding)
    host = np.asarray(arr)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def default_mesh() -> Mesh:
    """A one-dimensional mesh named 'data' over every device of the default backend."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("data",))


def axis_sizes(spec: PartitionSpec, mesh: Mesh | AbstractMesh) -> list[int]:
    """How many pieces each array dimension is cut into under `spec`."""
    out = []
    for entry in spec:
        names = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        out.append(math.prod(mesh.shape[n] for n in names))
    return out


def check_divisible(fn: str, what: str, shape: tuple, sharding: NamedSharding) -> None:
    """Raise a clear ValueError when `sharding` cannot split `shape` evenly."""
    problem = divisibility_problem(shape, sharding.spec, sharding.mesh)
    if problem:
        raise ValueError(
            f"{fn}: {what} of shape {tuple(shape)} cannot take {sharding.spec}: {problem}"
        )


def divisibility_problem(
    shape: tuple, spec: PartitionSpec, mesh: Mesh | AbstractMesh
) -> str | None:
    """Why `spec` cannot split `shape` evenly on `mesh`, or None when it can."""
    if len(spec) > len(shape):
        return f"the spec has {len(spec)} entries but the array has {len(shape)} dimensions"
    for d, (size, pieces) in enumerate(zip(shape, axis_sizes(spec, mesh))):
        if size % pieces:
            return f"dimension {d} of size {size} is not divisible by the {pieces} devices of mesh axis {spec[d]!r}"
    unknown = [
        n
        for e in spec
        if e is not None
        for n in ((e,) if isinstance(e, str) else e)
        if n not in mesh.axis_names
    ]
    if unknown:
        return f"mesh axis {unknown[0]!r} is not one of the mesh's axes {mesh.axis_names}"
    return None


def data_axis(mesh: Mesh) -> str:
    """The mesh axis data parallelism and FSDP shard over: one named 'data', 'dp', 'fsdp' or
    'dp_shard' if present, else the last axis (torch's FSDP2 shards over the last dimension of a
    2-d HSDP mesh), which for a one-dimensional mesh is its only one."""
    for name in ("data", "dp", "fsdp", "dp_shard", "shard"):
        if name in mesh.axis_names:
            return name
    return mesh.axis_names[-1]


def model_axis(mesh: Mesh) -> str:
    """The mesh axis tensor parallelism splits over: one named 'tp', 'model' or 'tensor' if
    present, else the last axis."""
    for name in ("tp", "model", "tensor"):
        if name in mesh.axis_names:
            return name
    return mesh.axis_names[-1]
