"""`Layout`: the immutable description of how one compiled call is laid out.

A layout says, for one set of argument identities and one structure of the objects involved:
which positional and keyword arguments are traced arrays, static Python values or live objects;
which stateful objects the step reaches (passed, or captured through closures, globals, defaults
and holders, see `_reach.py`) with the guards that keep those captures valid; the ordered list
of cells (parameters, buffers, generators) those objects hold; the objects with array state
(optimizers, GradScalers); which cells carry a gradient in; and the *signature*, the structural
key under which a discovered program (`_program.py`) is shared: two layouts with equal
signatures (a structurally identical new model instance, say) run the same compiled program.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from .. import _structure
from .._random import Generator, default_generator
from .._stateful import Stateful
from ..amp.autocast_mode import state as amp_state
from ..nn.modules._pytree import module_cells
from ..nn.modules.module import Module
from ..nn.parameter import _TensorCell, is_lazy
from ._reach import Reach, is_stateful, reach

__all__ = [
    "Layout",
    "DYN",
    "LIVE",
    "STATIC",
    "HOLDER",
    "ARRAY_TYPE",
    "is_static",
    "same_static",
    "describe_inputs",
]

DYN, LIVE, STATIC, HOLDER = 0, 1, 2, 3
ARRAY_TYPE = type(jax.numpy.zeros(()))  # the concrete jax.Array class
_STATIC_SCALARS = frozenset({bool, int, complex, str, type(None)})


def is_static(x: Any) -> bool:
    """Python values a compiled step treats as constants of the program (as torch.compile
    specialises on them): bools, ints, strings, None, dtypes, types, functions, and tuples or
    lists of those. Python floats are NOT static: they are traced, so a new learning rate never
    recompiles."""
    t = type(x)
    if t in _STATIC_SCALARS:
        return True
    if t is tuple or t is list:
        return all(map(is_static, x))
    return isinstance(x, (type, np.dtype, enum.Enum)) or callable(x) and not is_stateful(x)


def _freeze(x: Any) -> Any:
    return tuple(map(_freeze, x)) if type(x) is list or type(x) is tuple else x


def same_static(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a is b or _freeze(a) == _freeze(b))


def _is_holder(x: Any) -> bool:
    """A plain object argument (a `Trainer`) that holds modules or optimizers."""
    if isinstance(x, (jax.Array, np.ndarray, type)) or type(x) in (dict, list, tuple):
        return False
    d = getattr(x, "__dict__", None)
    return isinstance(d, dict) and any(is_stateful(v) for v in d.values())


class Layout:
    """How one call's state is gathered and scattered (see the module docstring)."""

    # Set later, when wanted (read with getattr / __dict__.get): the step's name for messages,
    # `describe()` as it was when built (retrace reasons), the capture-guard function.
    label: str
    description: dict[str, Any]
    _guard_fn: Callable[[tuple], bool]

    def __init__(self, fn: Any, args: tuple, kwargs: dict, extra: tuple = ()) -> None:
        self.structure_at = _structure.counters.structure  # the counters it was built at
        self.grad_presence_at = _structure.counters.grad_presence
        self.amp = amp_state()
        kinds = []
        for a in args:
            if is_stateful(a):
                kinds.append(LIVE)
            elif is_static(a):
                kinds.append(STATIC)
            elif _is_holder(a):
                kinds.append(HOLDER)
            else:
                kinds.append(DYN)
        self.kinds = tuple(kinds)
        self.values = tuple(None if k == DYN else a for k, a in zip(kinds, args))
        self.static_kwargs = {k: v for k, v in kwargs.items() if is_static(v)}
        self.dyn_kwargs = tuple(k for k in kwargs if k not in self.static_kwargs)
        if any(is_stateful(kwargs[k]) or _is_holder(kwargs[k]) for k in self.dyn_kwargs):
            raise TypeError(
                "jaxmodule.compile: pass modules, optimizers and generators as positional "
                "arguments (or let the step reach them through globals or closures), "
                "not as keyword arguments"
            )
        self.reach: Reach = reach(fn, {i: a for i, a in enumerate(args) if kinds[i] == HOLDER})
        roots = [a for a, k in zip(args, kinds) if k == LIVE]
        seen = {id(r) for r in roots}
        for obj in (*self.reach.stateful, *extra):  # extra: found only while tracing
            if id(obj) not in seen:
                seen.add(id(obj))
                roots.append(obj)
        self.roots = roots
        self.extra = tuple(extra)
        self._collect(roots)
        self.signature = self._signature()
        self._refuse_lazy()

    def _refuse_lazy(self) -> None:
        lazy = [k for k, c in enumerate(self.cells) if is_lazy(c)]
        if lazy:
            name = self.cell_names()[lazy[0]]
            raise RuntimeError(
                f"jaxmodule.compile: `{name}` is not initialized (a lazy module): its shape is "
                "decided by the first input, which would change the model's structure inside "
                "the compiled step. Call the model once eagerly (a dry run, as torch recommends "
                "before building optimizers) and then compile."
            )

    # ---- what the roots hold ----------------------------------------------------------------
    def _collect(self, roots: list) -> None:
        cells: list = []
        index: dict[int, int] = {}
        modules: list = []
        seen_modules: set[int] = set()
        states: list[Stateful] = []  # the roots that are neither modules nor cells
        structure: list = []

        def add(c: Any) -> None:
            if id(c) not in index:
                index[id(c)] = len(cells)
                cells.append(c)

        for r in roots:
            if isinstance(r, Module):
                mc, treedef = module_cells(r)
                for c in mc:
                    add(c)
                structure.append(treedef)
                for m in r.modules():
                    if id(m) not in seen_modules:
                        seen_modules.add(id(m))
                        modules.append(m)
            elif isinstance(r, (_TensorCell, Generator)):
                add(r)
                structure.append((type(r), r._aux() if isinstance(r, _TensorCell) else None))
            else:
                states.append(r)
        for o in states:
            for group in getattr(o, "param_groups", ()):
                for p in group["params"]:
                    add(p)
        add(default_generator)
        self.state_keys = [_state_key(o) for o in states]
        for o, tree in zip(states, self.state_keys):
            structure.append(
                (
                    type(o),
                    tuple(
                        tuple(index[id(p)] for p in g["params"])
                        for g in getattr(o, "param_groups", ())
                    ),
                    tree,
                )
            )
        self.cells = cells
        self.index = index
        self.modules = modules
        self.states = states
        self.grad_params = [c for c in cells if getattr(c, "grad", None) is not None]
        self._structure = tuple(structure)

    def _signature(self) -> tuple:
        statics = (
            tuple(
                (i, _freeze(v))
                for i, (k, v) in enumerate(zip(self.kinds, self.values))
                if k == STATIC
            ),
            tuple((k, _freeze(v)) for k, v in self.static_kwargs.items()),
            self.dyn_kwargs,
        )
        r = self.reach
        guards = tuple(
            (
                expr,
                op,
                r.env[name]
                if op == "=="
                else (
                    ("root", self.roots.index(r.env[name]))
                    if _in(r.env[name], self.roots)
                    else ("obj", id(r.env[name]))
                ),
            )
            for expr, op, name in r.guards
        )
        return (
            self.kinds,
            statics,
            self.amp,
            self._structure,
            guards,
            tuple(self.index[id(p)] for p in self.grad_params),
            tuple(id(c) for c in self.extra),
            len(self.cells),
        )

    # ---- per call ---------------------------------------------------------------------------
    def current(self) -> bool:
        counters = _structure.counters
        return (
            self.structure_at == counters.structure
            and self.grad_presence_at == counters.grad_presence
            and self.amp == amp_state()
        )

    def states_current(self) -> bool:
        """Whether every optimizer's (and GradScaler's) state still has the structure and static
        options this layout was made for (momentum set on a group adds state; nesterov changes
        the update)."""
        return all(_state_key(o) == k for o, k in zip(self.states, self.state_keys))

    def matches(self, args: tuple, kwargs: dict) -> bool:
        """Whether this layout serves a call with these arguments (identities, statics); the
        capture guards are checked next, by `_fast_path.guards_pass`."""
        if len(args) != len(self.kinds) or len(kwargs) != len(self.static_kwargs) + len(
            self.dyn_kwargs
        ):
            return False
        for a, kind, v in zip(args, self.kinds, self.values):
            if kind == LIVE or kind == HOLDER:
                if a is not v:
                    return False
            elif kind == STATIC:
                if not same_static(a, v):
                    return False
            elif (
                type(a) is not ARRAY_TYPE
                and type(a) is not float
                and (is_stateful(a) or is_static(a) or _is_holder(a))
            ):
                return False
        for k, v in self.static_kwargs.items():
            if k not in kwargs or not same_static(kwargs[k], v):
                return False
        return all(k in kwargs for k in self.dyn_kwargs)

    def split(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The traced part of a call: dynamic positional arguments (None elsewhere) and kwargs."""
        return (
            tuple(a if k == DYN else None for a, k in zip(args, self.kinds)),
            {k: kwargs[k] for k in self.dyn_kwargs},
        )

    def rebuild(self, dyn: tuple, dyn_kwargs: dict) -> tuple[tuple, dict]:
        """The full call inside the trace: live objects, static values and traced values."""
        call_args = tuple(d if k == DYN else v for d, k, v in zip(dyn, self.kinds, self.values))
        return call_args, {**self.static_kwargs, **dyn_kwargs}

    # ---- descriptions (messages and recompile logs) -----------------------------------------
    def cell_names(self) -> list[str]:
        names: dict[int, str] = {}
        for r, path in self._root_paths():
            if isinstance(r, Module):
                for n, c in zip(module_cells(r)[1].names, module_cells(r)[0]):
                    names.setdefault(id(c), f"{path}.{n}")
            elif isinstance(r, (_TensorCell, Generator)):
                names.setdefault(id(r), path)
        names.setdefault(id(default_generator), "the global generator")
        return [names.get(id(c), f"cell {k}") for k, c in enumerate(self.cells)]

    def _root_paths(self) -> list[tuple[Any, str]]:
        out = [
            (a, f"argument {i}")
            for i, (a, k) in enumerate(zip(self.values, self.kinds))
            if k == LIVE
        ]
        reached = dict(zip(map(id, self.reach.stateful), self.reach.paths))
        out += [(r, reached[id(r)]) for r in self.roots if id(r) in reached]
        return out

    def describe(self) -> dict[str, Any]:
        """Readable facts whose change explains a retrace (compared by the recompile log)."""
        d: dict[str, Any] = {}
        for i, (k, v) in enumerate(zip(self.kinds, self.values)):
            if k == STATIC:
                d[f"static argument {i}"] = v
        for k, v in self.static_kwargs.items():
            d[f"static argument `{k}`"] = v
        roots = self._root_paths()
        n_modules = sum(isinstance(r, Module) for r, _ in roots)
        for root, path in roots:
            if isinstance(root, Module):
                # a single module argument is named by its own module paths (`encoder.layers.0`),
                # captured ones by where they were found (`model.encoder`)
                prefix = "" if path.startswith("argument") and n_modules == 1 else path
                for name, m in root.named_modules():
                    full = ".".join(p for p in (prefix, name) if p) or type(root).__name__
                    d[f"module `{full}`"] = "train" if m.training else "eval"
                    hooks = sum(
                        len(getattr(m, h))
                        for h in (
                            "_forward_hooks",
                            "_forward_pre_hooks",
                            "_backward_hooks",
                            "_backward_pre_hooks",
                        )
                    )
                    if hooks:
                        d[f"hooks of module `{full}`"] = hooks
                d[f"structure of `{path}`"] = hash(module_cells(root)[1])
            else:
                d[f"`{path}`"] = type(root).__name__
        for readable, v in self.reach.described.items():
            d[f"captured `{readable}`"] = v
        d["autocast"] = self.amp
        d["gradients carried in"] = len(self.grad_params)
        return d


def _in(x: Any, seq: list) -> bool:
    return any(x is s for s in seq)


def _state_key(o: Any) -> tuple:
    """What a compiled plan depends on in a Stateful object: its state's structure and the
    options its traced code branches on."""
    return (jax.tree_util.tree_structure(o._jm_state_get()), o._jm_trace_key())


def describe_inputs(layout: Layout, program: Any, dyn: tuple, kwargs: dict) -> list[str]:
    """Readable labels of the flat inputs of a program call, in order."""
    names = layout.cell_names()
    labels = [f"`{names[k]}`" for k in range(len(layout.cells))]
    for j, o in enumerate(layout.states):
        n = len(jax.tree_util.tree_leaves(o._jm_state_get()))
        labels += [f"state of {type(o).__name__} {j}"] * n
    labels += [f"gradient of `{names[layout.index[id(p)]]}`" for p in layout.grad_params]
    for i, a in enumerate(dyn):
        if a is not None:
            labels += [f"argument {i}"] * len(jax.tree_util.tree_leaves(a))
    for k, v in kwargs.items():
        labels += [f"argument `{k}`"] * len(jax.tree_util.tree_leaves(v))
    return labels
