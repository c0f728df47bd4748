"""Placement across devices in a compiled step: every written array keeps its sharding.

Left alone, XLA's sharding propagation picks the shardings of a program's outputs, so after one
step an FSDP parameter could come back split another way (and its optimizer moments with it),
and scalars that started on one device (an optimizer's learning rate, the generator key) come
back replicated over the mesh, so the second call, seeing new input shardings, compiles again.

So, when a layout's arrays span several devices (a mesh):
- `place_strays(layout)`, once per layout, puts the arrays that live on one device (option
  arrays, step counts, the generator key, a parameter nobody sharded) replicated on the mesh;
- `constrain_outputs(...)`, while the program is traced, pins each written cell, optimizer-state
  leaf and gradient to the sharding its input had, read from the concrete arrays of that call
  (`jax.jit` traces again when input shardings change, so the pins follow the placement).
A layout on one device does none of this: no cost for the common case.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._tensor import META_DATA_ERROR

__all__ = ["mesh_of", "place_strays", "constrain_outputs", "constrain", "constrain_prefix"]


def _mesh_of_value(x: Any) -> Mesh | None:
    s = getattr(x, "sharding", None)
    if (
        isinstance(s, NamedSharding)
        and len(s.device_set) > 1
        and not isinstance(x, jax.core.Tracer)
    ):
        mesh = s.mesh
        return mesh if isinstance(mesh, Mesh) else None  # an array's mesh is concrete
    return None


def mesh_of(values: Any) -> Mesh | None:
    """The mesh of the first array in `values` (a pytree) that spans several devices, if any."""
    for x in jax.tree.leaves(values):
        m = _mesh_of_value(x)
        if m is not None:
            return m
    return None


def _stray(x: Any, mesh: Mesh) -> bool:
    return (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and len(x.sharding.device_set) == 1
        and x.sharding.device_set <= set(mesh.devices.flat)
    )


def place_strays(layout: Any) -> None:
    """Replicate the layout's single-device arrays on its mesh (see the module docstring).
    A meta cell (no data) is refused here, once per layout, with what to do about it."""
    cells, states = layout.cells, layout.states
    for c in cells:
        if isinstance(c._value, jax.ShapeDtypeStruct):
            raise RuntimeError(f"jaxmodule.compile: {META_DATA_ERROR}")
    mesh = mesh_of([c._value for c in cells]) or mesh_of([o._jm_state_get() for o in states])
    if mesh is None:
        return
    replicated = NamedSharding(mesh, PartitionSpec())

    def put(x: Any) -> Any:
        return jax.device_put(x, replicated) if _stray(x, mesh) else x

    for c in cells:
        if _stray(c._value, mesh):
            c._value = put(c._value)
        g = getattr(c, "_grad", None)
        if g is not None and _stray(g, mesh):
            c._grad = put(g)
    for o in states:
        st = o._jm_state_get()
        if any(_stray(x, mesh) for x in jax.tree.leaves(st)):
            o._jm_state_set(jax.tree.map(put, st))


def _target(x: Any, mesh: Mesh) -> Any:
    s = getattr(x, "sharding", None)
    if isinstance(x, jax.core.Tracer) or s is None:
        return None
    if len(s.device_set) > 1:
        return s
    return NamedSharding(mesh, PartitionSpec())


def constrain(tree: Any, shardings: Any) -> Any:
    """`with_sharding_constraint` on each leaf of `tree` with a sharding (None: left free)."""
    leaves, treedef = jax.tree.flatten(tree)
    targets = jax.tree.leaves(shardings, is_leaf=lambda s: s is None)
    if len(targets) != len(leaves):
        return tree
    return jax.tree.unflatten(
        treedef,
        [
            x if s is None else jax.lax.with_sharding_constraint(x, s)
            for x, s in zip(leaves, targets)
        ],
    )


def constrain_outputs(
    layout: Any,
    mutated: list[int],
    grads_out: list[int],
    new_vals: list,
    new_states: list,
    new_grads: list,
) -> tuple[list, list, list]:
    """Pin the step's outputs to their inputs' shardings (see the module docstring)."""
    cells = layout.cells
    mesh = mesh_of([c._value for c in cells]) or mesh_of([o._jm_state_get() for o in layout.states])
    if mesh is None:
        return new_vals, new_states, new_grads
    vals = [
        jax.lax.with_sharding_constraint(v, t)
        if (t := _target(cells[k]._value, mesh)) is not None
        else v
        for k, v in zip(mutated, new_vals)
    ]
    states = [
        constrain(st, [_target(x, mesh) for x in jax.tree.leaves(o._jm_state_get())])
        for o, st in zip(layout.states, new_states)
    ]
    grads = [
        jax.lax.with_sharding_constraint(g, t)
        if (t := _target(cells[k]._value, mesh)) is not None
        else g
        for k, g in zip(grads_out, new_grads)
    ]
    return vals, states, grads


def constrain_prefix(tree: Any, shardings: Any) -> Any:
    """`jax.jit`'s `out_shardings` semantics on one value: `shardings` is a sharding, or a tree
    prefix of `tree` whose leaves are shardings (None: left free)."""

    def pin(s: Any, sub: Any) -> Any:
        if s is None:
            return sub
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, s), sub)

    if isinstance(shardings, jax.sharding.Sharding):
        return pin(shardings, tree)
    return jax.tree.map(pin, shardings, tree, is_leaf=lambda s: s is None)
