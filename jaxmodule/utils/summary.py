"""`summary`: a torchinfo-style table of a model's layers, output shapes and parameter counts.

When the model's arrays span more than one device (a sharded model), the table gains a
"Sharding" column (the placement of each layer's own parameters, as in the model's repr:
`P('data', None)`, `cpu:1`, or `mixed` when they differ) and the footer the parameter bytes on
the most loaded device and the mesh. Otherwise the output is torchinfo's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .._random import default_generator
from ..nn.modules._placement import ModelPlacement, device_text, placement_text, sharding_of

__all__ = ["summary", "ModelSummary", "LayerInfo"]

_WIDTHS = (40, 25, 15)


@dataclass
class LayerInfo:
    """One row: a module call."""

    name: str  # the attribute path ('' for the model itself)
    class_name: str
    depth: int
    depth_index: int
    output_shape: Any = None
    num_params: int = 0  # parameters owned directly by this module (not its children)
    has_children: bool = False
    sharding: str | None = None  # placement of its own parameters, when the model is spread


@dataclass
class ModelSummary:
    """What `summary` returns: the rows, the totals, and (as `str`) the table."""

    layers: list[LayerInfo] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    input_bytes: int = 0
    sharded: bool = False  # the model's arrays span more than one device
    mesh: str | None = None  # the mesh most arrays use, as `{'data': 8}`
    param_bytes_per_device: dict[str, int] = field(default_factory=dict)  # 'cpu:0' -> bytes

    def __str__(self) -> str:
        rows = [("Layer (type:depth-idx)", "Output Shape", "Param #", "Sharding")]
        for layer in self.layers:
            if layer.depth == 0:
                label = layer.class_name
            else:
                branch = "├─" if layer.depth == 1 else "│    " * (layer.depth - 1) + "└─"
                label = f"{branch}{layer.class_name}: {layer.depth}-{layer.depth_index}"
            params = f"{layer.num_params:,}" if layer.num_params else "--"
            rows.append((label, _shape_text(layer.output_shape), params, layer.sharding or "--"))
        w0 = max(_WIDTHS[0], max(len(r[0]) for r in rows) + 2)
        w1 = max(_WIDTHS[1], max(len(r[1]) for r in rows) + 2)
        if self.sharded:
            w3 = max(len(r[3]) for r in rows)
            bar = "=" * (w0 + w1 + _WIDTHS[2] + w3)
            table = [f"{a:<{w0}}{b:<{w1}}{c:<{_WIDTHS[2]}}{d}" for a, b, c, d in rows]
        else:
            bar = "=" * (w0 + w1 + _WIDTHS[2])
            table = [f"{a:<{w0}}{b:<{w1}}{c}" for a, b, c, _ in rows]
        mb = 1e6
        per_device = []
        if self.param_bytes_per_device:
            per_device = [
                f"Params size per device (MB): {max(self.param_bytes_per_device.values()) / mb:.2f}"
            ]
        lines = [
            bar,
            table[0],
            bar,
            *table[1:],
            bar,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            bar,
            f"Input size (MB): {self.input_bytes / mb:.2f}",
            f"Params size (MB): {self.param_bytes / mb:.2f}",
            *per_device,
            f"Buffers size (MB): {self.buffer_bytes / mb:.2f}",
            f"Estimated Total Size (MB): {(self.input_bytes + self.param_bytes + self.buffer_bytes) / mb:.2f}",
            bar,
        ]
        if self.mesh is not None:
            lines += [f"Mesh: {self.mesh}", bar]
        return "\n".join(lines)

    __repr__ = __str__


def _shape_of(out: Any) -> Any:
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return list(out.shape)
    if isinstance(out, (list, tuple)):
        shapes = [_shape_of(o) for o in out]
        return shapes if any(s is not None for s in shapes) else None
    if isinstance(out, dict):
        return _shape_of(list(out.values()))
    return None


def _shape_text(shape: Any) -> str:
    return "--" if shape is None else str(shape)


def _nbytes(x: Any) -> int:
    return sum(
        int(np.prod(leaf.shape)) * leaf.dtype.itemsize
        for leaf in jax.tree_util.tree_leaves(x)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    )


def _layer_sharding(module: Any, placement: ModelPlacement) -> str | None:
    """The placement shared by `module`'s own parameters, 'mixed' when they differ, None if none."""
    texts = {placement_text(p, placement.mesh) for p in module.parameters(recurse=False)}
    if not texts:
        return None
    return texts.pop() if len(texts) == 1 else "mixed"


def _add_shard_bytes(per_device: dict[str, int], p: Any) -> None:
    """Add the bytes of `p`'s shard to each device holding one (nothing for a placement that
    names no devices: a meta parameter)."""
    s = sharding_of(p)
    if s is None:
        return
    try:
        devices = s.device_set
    except ValueError:  # planned on an AbstractMesh
        return
    if devices:
        shard = int(np.prod(s.shard_shape(tuple(p.shape)))) * p.dtype.itemsize
        for d in sorted(devices, key=lambda d: (d.platform, d.id)):  # type: ignore[attr-defined]  # jaxlib's Device is opaque to mypy
            name = device_text(d)
            per_device[name] = per_device.get(name, 0) + shard


def _is_shape(x: Any) -> bool:
    return (
        isinstance(x, (tuple, list))
        and len(x) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in x)
    )


def _inputs_from_size(input_size: Any) -> tuple:
    """torchinfo's `input_size`: one shape, or a list of shapes (one per forward argument)."""
    import jax.numpy as jnp

    shapes = [input_size] if _is_shape(input_size) else input_size
    if not isinstance(shapes, (tuple, list)) or not shapes or not all(_is_shape(s) for s in shapes):
        raise TypeError(
            f"summary: `input_size` must be a shape such as (1, 3, 28, 28) or a list of "
            f"shapes, got {input_size!r}"
        )
    return tuple(jnp.zeros(tuple(s), jnp.float32) for s in shapes)


def summary(
    model: Any, *example_inputs: Any, input_size: Any = None, depth: int = 3, **forward_kwargs: Any
) -> ModelSummary:
    """Run `model(*example_inputs, **forward_kwargs)` once and tabulate every module call.

    Args:
        model: a `jaxmodule.nn.Module`.
        *example_inputs: the forward arguments (arrays of the real shapes; batch included), or, as
            in torchinfo, one shape (`summary(model, (1, 1, 28, 28))`): float32 zeros of that shape.
        input_size: torchinfo's keyword: a shape, or a list of shapes (one per forward argument);
            the model is run on float32 zeros of those shapes.
        depth: deepest nesting level shown (the model itself is depth 0).
        **forward_kwargs: keyword arguments for the forward call.

    Returns:
        A `ModelSummary`; `print(summary(...))` shows a table like torchinfo's: one row per module
        call with its output shape and the number of parameters it owns, then the totals of
        trainable and non-trainable parameters and their memory.

    On a model whose arrays span several devices the table also shows each layer's parameter
    sharding, the parameter bytes held by the most loaded device (`param_bytes_per_device` has
    every device's) and the mesh.

    Implemented with forward hooks, removed afterwards. The call does not change the model:
    buffer values (BatchNorm statistics) and the global generator are restored afterwards.
    """
    if input_size is not None:
        if example_inputs:
            raise TypeError("summary: pass example inputs or `input_size`, not both")
        example_inputs = _inputs_from_size(input_size)
    elif len(example_inputs) == 1 and _is_shape(example_inputs[0]):
        example_inputs = _inputs_from_size(example_inputs[0])
    rows: list[LayerInfo] = []
    stack: list[LayerInfo] = []
    counters: dict[int, int] = {}
    names = {id(m): n for n, m in model.named_modules()}
    placement = ModelPlacement.of(model)
    handles = []

    def pre_hook(module: Any, args: Any) -> None:
        d = len(stack)
        counters[d] = counters.get(d, 0) + 1
        info = LayerInfo(
            name=names.get(id(module), "?"),
            class_name=type(module).__name__,
            depth=d,
            depth_index=counters[d],
            num_params=sum(p.numel() for p in module.parameters(recurse=False)),
            has_children=any(True for _ in module.children()),
            sharding=_layer_sharding(module, placement) if placement.spread else None,
        )
        stack.append(info)
        if d <= depth:
            rows.append(info)

    def post_hook(module: Any, args: Any, output: Any) -> None:
        info = stack.pop()
        info.output_shape = _shape_of(output)

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    buffers = [(b, b._value) for b in model.buffers()]
    rng = default_generator.get_state()
    try:
        model(*example_inputs, **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
        for b, v in buffers:
            b._value = v
        default_generator.set_state(rng)

    seen: set[int] = set()
    out = ModelSummary(
        layers=rows,
        input_bytes=_nbytes((example_inputs, forward_kwargs)),
        sharded=placement.spread,
        mesh=placement.mesh if placement.spread else None,
    )
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        out.total_params += n
        if p.requires_grad:
            out.trainable_params += n
        else:
            out.non_trainable_params += n
        out.param_bytes += n * p.dtype.itemsize
        if placement.spread:
            _add_shard_bytes(out.param_bytes_per_device, p)
    out.buffer_bytes = sum(b.numel() * b.dtype.itemsize for b in model.buffers())
    return out
