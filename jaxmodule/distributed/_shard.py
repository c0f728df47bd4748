"""`shard_module`: place a module's arrays on a mesh by rules over their state_dict keys.

Every torch-named preset (`replicate`, `fully_shard`, `parallelize_module`) is built on this one
function. It is in place and transactional: every new placement is computed (and every problem
collected) before any cell changes, so a failure leaves the module, its gradients and every
optimizer exactly as they were. After placing, each live optimizer holding one of the moved
parameters puts that parameter's state (momentum, Adam moments) on the same sharding and its
hyperparameters replicated on the mesh, so optimizers built before or after keep working.

>>> import jax
>>> from jaxmodule import nn
>>> from jaxmodule.distributed import init_device_mesh
>>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
>>> rules = [(r"weight$", P("data", None))]   # biases match nothing: replicated
>>> _ = shard_module(model, init_device_mesh("cpu", (jax.device_count(),)), rules)
>>> model[0].weight.sharding.spec, model[0].bias.sharding.spec
(P('data',), P())
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import _structure
from .._tensor import meta_array
from ..nn.modules.module import Module
from ..optim.optimizer import live_optimizers
from ._mesh import divisibility_problem

__all__ = ["shard_module", "ShardingPlan", "sharding_plan", "Rules"]

P = PartitionSpec
Rules = Mapping[str, Any] | Sequence[tuple[str, Any]]
KEEP = None  # `default=KEEP`: arrays no rule names stay where they are (if already on the mesh)

logger = logging.getLogger("jaxmodule.distributed")


class ShardingPlan(dict):
    """What a sharding call did: state_dict key -> (PartitionSpec, reason). The reason says why
    an array was replicated where a preset wanted to shard it ('' otherwise).

    `str(plan)` is a table; `plan.replicated()` lists the keys left whole, with reasons.
    """

    def __init__(self, mesh: Mesh) -> None:
        super().__init__()
        self.mesh = mesh

    def replicated(self) -> dict[str, str]:
        return {k: why for k, (spec, why) in self.items() if why}

    def __str__(self) -> str:
        width = max((len(k) for k in self), default=3)
        lines = [f"mesh {dict(self.mesh.shape)}"]
        for k, (spec, why) in self.items():
            lines.append(f"  {k:<{width}}  {spec}" + (f"  ({why})" if why else ""))
        return "\n".join(lines)


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sharding_plan(module: Module) -> ShardingPlan | None:
    """The plan of the last sharding call on `module` (None if it was never sharded)."""
    return _PLANS.get(module)


def _as_spec(value: Any, key: str) -> PartitionSpec | NamedSharding:
    if value is None:
        return P()
    if isinstance(value, (PartitionSpec, NamedSharding)):
        return value
    if isinstance(value, (tuple, list)):
        return P(*value)
    raise TypeError(
        f"shard_module: the rule for {key!r} must give a PartitionSpec, a tuple, None "
        f"or a NamedSharding, got {type(value).__name__}"
    )


def rule_matcher(rules: Rules | Callable | None) -> Callable[[str, Any], Any]:
    """`rules` as one function `(key, cell) -> spec or KEEP` (first matching regex wins)."""
    if rules is None:
        return lambda key, cell: KEEP
    if callable(rules) and not isinstance(rules, Mapping):
        return rules
    pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    compiled = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(
                f"shard_module: `rules` must be (regex, PartitionSpec) pairs or a dict, got {pair!r}"
            )
        try:
            compiled.append((re.compile(pair[0]), pair[1]))
        except re.error as e:
            raise ValueError(
                f"shard_module: rule {pair[0]!r} is not a valid regular expression ({e})"
            ) from None

    def match(key: str, cell: Any) -> Any:
        for rx, spec in compiled:
            if rx.search(key):
                return spec
        return KEEP

    return match


def normalized(spec: PartitionSpec) -> PartitionSpec:
    """`spec` without trailing None entries: the form `jax.jit` gives its outputs, so a placed
    array and the same array after a compiled step compare equal (no recompilation)."""
    entries = list(spec)
    while entries and entries[-1] is None:
        entries.pop()
    return P(*entries)


def named_cells(module: Module) -> list[tuple[str, Any]]:
    """Every parameter and buffer cell under `module` once, by its first state_dict-style name."""
    out, seen = [], set()
    for name, cell in (*module.named_parameters(), *module.named_buffers()):
        if id(cell) not in seen:
            seen.add(id(cell))
            out.append((name, cell))
    return out


def _on_mesh(value: Any, mesh: Mesh) -> bool:
    s = getattr(value, "sharding", None)
    return isinstance(s, NamedSharding) and s.mesh == mesh


def plan_placements(
    module: Module,
    mesh: Mesh,
    rule: Callable[[str, Any], Any],
    default: Any,
    fn: str,
    reasons: Mapping[str, str] | None = None,
) -> tuple[ShardingPlan, list]:
    """(plan, [(cell, NamedSharding)]) for every cell; raises once listing every problem."""
    plan, moves, problems = ShardingPlan(mesh), [], []
    for key, cell in named_cells(module):
        spec = rule(key, cell)
        if spec is KEEP:
            if default is KEEP and _on_mesh(cell._value, mesh):
                plan[key] = (cell._value.sharding.spec, (reasons or {}).get(key, ""))
                continue
            spec = P() if default is KEEP else default
        spec = _as_spec(spec, key)
        sharding = (
            spec if isinstance(spec, NamedSharding) else NamedSharding(mesh, normalized(spec))
        )
        problem = divisibility_problem(tuple(cell.shape), sharding.spec, sharding.mesh)
        if problem:
            problems.append(f"{key} {tuple(cell.shape)} -> {sharding.spec}: {problem}")
            continue
        plan[key] = (sharding.spec, (reasons or {}).get(key, ""))
        moves.append((cell, sharding))
    if problems:
        raise ValueError(
            f"{fn}: {len(problems)} array(s) of {type(module).__name__} cannot be placed "
            "as asked; nothing was moved:\n  " + "\n  ".join(problems)
        )
    return plan, moves


def _placed(value: Any, sharding: NamedSharding) -> Any:
    if isinstance(value, jax.ShapeDtypeStruct):  # meta: record the planned placement only
        return meta_array(value, sharding=sharding)
    if getattr(value, "sharding", None) == sharding:
        return value
    return jax.device_put(value, sharding)


def apply_placements(
    module: Module, plan: ShardingPlan, moves: list[tuple[Any, NamedSharding]]
) -> Module:
    """Move every cell (and its grad) as planned, all or nothing; then align optimizers."""
    new = [
        (_placed(c._value, s), None if getattr(c, "grad", None) is None else _placed(c.grad, s))
        for c, s in moves
    ]  # any failure raises here, before a cell changes
    for (cell, _), (value, grad) in zip(moves, new):
        cell._value = value
        if grad is not None:
            cell.grad = grad
    moved = {id(c) for c, _ in moves}
    for opt in live_optimizers():
        if any(id(p) in moved for g in opt.param_groups for p in g["params"]):
            opt._jm_place_state()
    _PLANS[module] = plan
    _structure.bump()  # compiled steps re-plan: their layouts place stray scalars on the mesh
    for key, why in plan.replicated().items():
        logger.info("%s: %s replicated (%s)", type(module).__name__, key, why)
    return module


def shard_module(
    module: Module,
    mesh: Mesh,
    rules: Rules | Callable | None = None,
    *,
    default: Any = P(),  # noqa: B008 - a PartitionSpec is immutable
) -> Module:
    """Place `module`'s parameters and buffers on `mesh` by regular expressions over their
    state_dict keys. In place; returns the module.

    Args:
        module: the module to place.
        mesh: a `jax.sharding.Mesh` (see `init_device_mesh`).
        rules: `(regex, spec)` pairs or a dict, tried in order with `re.search` against each
            state_dict key; the first match gives the array's `PartitionSpec` (a tuple or None
            are accepted too, None meaning replicated; a `NamedSharding` is used as is). A
            callable `rules(key, cell) -> spec` works as well.
        default: the spec of arrays no rule matches: `P()` (replicated, the default), or None
            to leave arrays that are already on this mesh where they are (others replicated).

    Raises:
        ValueError: listing every array a rule cannot split evenly (nothing is moved).

    >>> from jaxmodule import nn
    >>> from jaxmodule.distributed import init_device_mesh
    >>> mesh = init_device_mesh("cpu", (jax.device_count(),))
    >>> m = shard_module(nn.Linear(4, 16), mesh, [(r"weight", P("data", None))])
    >>> m.weight.sharding.spec
    P('data',)
    """
    if not isinstance(module, Module):
        raise TypeError(
            f"shard_module: `module` must be a jaxmodule.nn.Module, got {type(module).__name__}"
        )
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"shard_module: `mesh` must be a jax.sharding.Mesh (see init_device_mesh), got {type(mesh).__name__}"
        )
    plan, moves = plan_placements(module, mesh, rule_matcher(rules), default, "shard_module")
    return apply_placements(module, plan, moves)


def exact_rules(specs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Rules matching these state_dict keys exactly."""
    return [("^" + re.escape(k) + "$", s) for k, s in specs]
