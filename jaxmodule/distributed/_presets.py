"""torch's parallelism presets on `shard_module`: `replicate` (DDP), `fully_shard` (FSDP2) and
`parallelize_module` with `ColwiseParallel` / `RowwiseParallel` (tensor parallelism).

Each only decides a `PartitionSpec` per array; XLA's sharding propagation then inserts the
collectives torch's wrappers run by hand (DDP's gradient all-reduce, FSDP's all-gather before use
and reduce-scatter of gradients, TP's all-reduce after a row-wise layer) inside the compiled step.
So the model stays the same class, `forward` is unchanged, and the step is the one a single
device runs: `jaxmodule.compile(train_step)` over a sharded model and a sharded batch.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..nn.modules.linear import Linear
from ..nn.modules.module import Module
from ..nn.modules.sparse import Embedding
from ._mesh import Placement, Shard, data_axis, default_mesh, model_axis
from ._shard import KEEP, apply_placements, exact_rules, named_cells, plan_placements, rule_matcher

__all__ = [
    "replicate",
    "fully_shard",
    "parallelize_module",
    "ParallelStyle",
    "ColwiseParallel",
    "RowwiseParallel",
]

P = PartitionSpec


def _check(fn: str, module: Any, mesh: Any) -> Mesh:
    if not isinstance(module, Module):
        raise TypeError(
            f"{fn}: `module` must be a jaxmodule.nn.Module, got {type(module).__name__}"
        )
    if mesh is None:
        return default_mesh()
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{fn}: the mesh must be a jax.sharding.Mesh (see init_device_mesh), got {type(mesh).__name__}"
        )
    return mesh


def replicate(module: Module, device_mesh: Mesh | None = None, **kwargs: Any) -> Module:
    """Data parallelism: a full copy of every parameter and buffer on every device of the mesh.
    Mirrors `torch.distributed._composable.replicate` (DDP). In place; returns the module.

    Shard the batch over the mesh's data axis (`distribute_tensor(x, mesh, [Shard(0)])`) and
    compile the step as on one device: the gradient all-reduce is part of the program.
    torch's DDP options (`bucket_cap_mb`, `find_unused_parameters`, ...) are accepted and do
    nothing: XLA schedules the communication.
    """
    mesh = _check("replicate", module, device_mesh)
    plan, moves = plan_placements(module, mesh, lambda key, cell: P(), P(), "replicate")
    return apply_placements(module, plan, moves)


def _with_axis(existing: Any, axis: str, ndim: int, dim: int) -> tuple:
    """`existing` spec entries (padded to ndim) with `axis` added in front on dimension `dim`."""
    entries = list(existing) + [None] * (ndim - len(existing))
    e = entries[dim]
    names = () if e is None else (e,) if isinstance(e, str) else tuple(e)
    if axis in names:
        return tuple(entries)
    entries[dim] = axis if not names else (axis, *names)
    return tuple(entries)


def fully_shard(
    module: Module,
    *,
    mesh: Mesh | None = None,
    reshard_after_forward: bool | int | None = None,
    shard_placement_fn: Callable[[Any], Shard | None] | None = None,
    ignored_params: Iterable[Any] | None = None,
    **kwargs: Any,
) -> Module:
    """FSDP: each parameter split on dimension 0 over the mesh's data axis. Mirrors
    `torch.distributed.fsdp.fully_shard` (FSDP2). In place; returns the module.

    A parameter whose dimension 0 does not divide by the number of devices (or that is 0-d)
    stays replicated (torch pads it instead); `sharding_plan(module)` lists which and why, and
    the `jaxmodule.distributed` logger reports them. Buffers are replicated, as in torch.
    `shard_placement_fn(param)` may return `Shard(dim)` to split another dimension (None: the
    default). Parameters already split over other mesh axes (tensor parallelism) keep that and
    gain the data axis on the same dimension (torch's FSDP + TP). `ignored_params` stay as they
    are. The data axis is the mesh axis named 'data', 'dp', 'fsdp' or 'dp_shard', else the last.

    `reshard_after_forward`, `mp_policy` and `offload_policy` are accepted for torch
    compatibility and change nothing: XLA decides when to gather (see docs/scaling.md). Calling
    it on submodules and then on the root (torch's usual pattern) gives the same placement.

    >>> import jax
    >>> from jaxmodule import nn
    >>> from jaxmodule.distributed import init_device_mesh, sharding_plan
    >>> model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> _ = fully_shard(model, mesh=init_device_mesh("cpu", (jax.device_count(),)))
    >>> model[0].weight.sharding.spec
    P('data',)
    """
    mesh = _check("fully_shard", module, mesh)
    axis = data_axis(mesh)
    ignored = {id(p) for p in (ignored_params or ())}
    param_ids = {id(p) for p in module.parameters()}
    reasons: dict[str, str] = {}

    def rule(key: str, cell: Any) -> Any:
        if id(cell) in ignored:
            return KEEP
        if id(cell) not in param_ids:
            return P()  # buffers
        shape = tuple(cell.shape)
        dim = 0
        if shard_placement_fn is not None:
            choice = shard_placement_fn(cell)
            if choice is not None:
                if not isinstance(choice, Shard):
                    raise TypeError(
                        f"fully_shard: shard_placement_fn must return Shard(dim) or None, got {choice!r}"
                    )
                dim = choice.dim + len(shape) if choice.dim < 0 else choice.dim
        current = getattr(cell._value, "sharding", None)
        existing = (
            current.spec if isinstance(current, NamedSharding) and current.mesh == mesh else ()
        )
        if not shape:
            reasons[key] = "0-d"
            return P(*existing)
        entries = _with_axis(existing, axis, len(shape), dim)
        pieces = 1
        for name in entries[dim] if isinstance(entries[dim], tuple) else (entries[dim],):
            pieces *= mesh.shape[name]
        if shape[dim] % pieces:
            reasons[key] = (
                f"dimension {dim} of size {shape[dim]} does not divide into {pieces} shards"
            )
            return P(*existing)
        return P(*entries)

    plan, moves = plan_placements(module, mesh, rule, KEEP, "fully_shard", reasons)
    for key, why in reasons.items():  # plan_placements ran the rule: attach its reasons
        if key in plan:
            plan[key] = (plan[key][0], why)
    return apply_placements(module, plan, moves)


class ParallelStyle:
    """Base of the tensor-parallel styles: which spec each array of a layer gets."""

    kind = ""

    def __init__(
        self,
        *,
        input_layouts: Placement | None = None,
        output_layouts: Placement | None = None,
        use_local_output: bool = True,
    ) -> None:
        self.input_layouts = input_layouts
        self.output_layouts = output_layouts
        self.use_local_output = use_local_output

    def specs(self, module: Module, axis: str) -> dict[str, PartitionSpec]:
        """name -> spec for the module's own parameters."""
        raise NotImplementedError

    def _layer(self, module: Module) -> str:
        if isinstance(module, Linear):
            return "linear"
        if isinstance(module, Embedding):
            return "embedding"
        raise NotImplementedError(
            f"{type(self).__name__} currently only support nn.Linear and nn.Embedding!"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_layouts={self.input_layouts!r}, "
            f"output_layouts={self.output_layouts!r}, use_local_output={self.use_local_output})"
        )


class ColwiseParallel(ParallelStyle):
    """Split a Linear's output features (weight (out, in) on dim 0, bias too) or an Embedding's
    embedding dimension over the mesh's model axis. Mirrors torch's `ColwiseParallel`.

    The layouts arguments are accepted for torch compatibility: the output is sharded on its
    last dimension, and XLA inserts any gather a later layer needs.
    """

    def specs(self, module: Module, axis: str) -> dict[str, PartitionSpec]:
        if self._layer(module) == "linear":
            return {"weight": P(axis, None), "bias": P(axis)}
        return {"weight": P(None, axis)}


class RowwiseParallel(ParallelStyle):
    """Split a Linear's input features (weight on dim 1; the bias is replicated) or an
    Embedding's rows over the mesh's model axis. Mirrors torch's `RowwiseParallel`; XLA
    all-reduces the partial outputs."""

    def specs(self, module: Module, axis: str) -> dict[str, PartitionSpec]:
        if self._layer(module) == "linear":
            return {"weight": P(None, axis), "bias": P()}
        return {"weight": P(axis, None)}


def _resolve_plan(module: Module, plan: Any, path: str, out: list) -> None:
    """(module path, submodule, style) for every entry of a torch plan, torch's fnmatch rules."""
    if isinstance(plan, ParallelStyle):
        out.append((path, module, plan))
        return
    if not isinstance(plan, dict):
        raise TypeError(
            f"Expect Union[ParallelStyle, Dict[str, ParallelStyle]] for parallelize_plan, "
            f"{type(plan)} found!"
        )
    for module_path, style in plan.items():
        if module_path == "":
            _resolve_plan(module, style, path, out)
            continue
        token, _, rest = module_path.partition(".")
        matched = [(n, c) for n, c in module.named_children() if fnmatch.fnmatch(n, token)]
        if not matched:
            warnings.warn(
                f"Parallelize plan key '{module_path}' could not be resolved: no submodule "
                f"matching token '{token}' in module {module}, skipping this plan entry.",
                stacklevel=3,
            )
            continue
        for name, child in matched:
            sub = f"{path}{name}"
            _resolve_plan(child, {rest: style} if rest else style, sub + ".", out)


def parallelize_module(
    module: Module,
    device_mesh: Mesh | None = None,
    parallelize_plan: Any = None,
    *,
    src_data_rank: int | None = 0,
) -> Module:
    """Tensor parallelism by a torch plan: `{submodule path: ColwiseParallel() | RowwiseParallel()}`
    (paths may use fnmatch wildcards, e.g. 'layers.*.mlp.fc1'), or one style for `module` itself.
    Mirrors `torch.distributed.tensor.parallel.parallelize_module`. In place; returns the module.

    The model axis is the mesh axis named 'tp', 'model' or 'tensor', else the last one. Arrays the
    plan does not name keep their placement if already on this mesh, else are replicated.

    >>> import jax
    >>> from jaxmodule import nn
    >>> from jaxmodule.distributed import init_device_mesh
    >>> mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    >>> mesh = init_device_mesh("cpu", (jax.device_count(),), mesh_dim_names=("tp",))
    >>> _ = parallelize_module(mlp, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    >>> mlp[0].weight.sharding.spec, mlp[2].weight.sharding.spec
    (P('tp',), P(None, 'tp'))
    """
    mesh = _check("parallelize_module", module, device_mesh)
    if parallelize_plan is None:
        warnings.warn(
            "No parallelize_plan is provided and auto-parallel is not supported at the moment, "
            "so this parallelize_module call will do nothing.",
            stacklevel=2,
        )
        return module
    entries: list = []
    _resolve_plan(module, parallelize_plan, "", entries)
    axis = model_axis(mesh)
    cells = {id(c): k for k, c in named_cells(module)}
    specs = []
    for _, sub, style in entries:
        for name, spec in style.specs(sub, axis).items():
            cell = sub._parameters.get(name)
            if cell is not None:
                specs.append((cells[id(cell)], spec))
    plan, moves = plan_placements(
        module, mesh, rule_matcher(exact_rules(specs)), KEEP, "parallelize_module"
    )
    return apply_placements(module, plan, moves)
