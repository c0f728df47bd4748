"""`Program`: what a step does to its layout's state, discovered once, compiled once.

`discover(fn, layout, args, kwargs)` traces the step once with `jax.make_jaxpr`, every cell of
the layout an input and an output, and learns from that one trace:

- which cells it writes (`mutated`: gathered, donated, scattered back), which it only reads
  (`const`), and which it never touches (`unused`: not gathered at all);
- which cells hold a gradient after the step (`grads_out`);
- which plain module attributes it assigned an array to (`attr_outputs`, e.g. a mask cached by
  forward): they become outputs and are written back concrete after the call.

That trace is also the program: the jitted function replays the recorded jaxpr for the same input
types, so a new program costs one trace of user code. Other input shapes or dtypes trace the
step again inside `jax.jit` (and are logged as recompiles).

While tracing, the layout's cells hold tracers and `jaxmodule/_swap.py`'s recording reports any
other cell the code reads or writes (state reached by a path the walk in `_reach.py` did not
follow): the trace is then discarded and `Restart` asks for a layout that includes those cells.
Everything the trace changed is put back (`Transaction`): after success only what was
discovered as an output is written back, by the caller, with concrete arrays; after a failure
every reached object is exactly as before the call.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp

from .. import _structure
from .._stateful import is_versioned
from .._swap import DELETED, Transaction, holds_tracer, recording, swapped
from ..nn.modules.module import Module
from . import _log
from ._layout import Layout, describe_inputs
from ._sharding import constrain_outputs, constrain_prefix
from ._states import StateChanged, StatePlan
from ._teach import TEACHABLE, teach

__all__ = ["Program", "discover", "Restart", "CallKey", "STRUCTURE_MESSAGE"]

STRUCTURE_MESSAGE = (
    "the structure of a module changed inside a compiled step ({what}). Register parameters, "
    "buffers and submodules (and add hooks) outside the compiled function; every object is back "
    "as it was before the call."
)


class Restart(Exception):
    """The trace touched state outside its layout: re-plan with these objects (cells, generators,
    optimizers) included."""

    def __init__(self, cells: list, written: dict) -> None:
        super().__init__(f"{len(cells)} cells outside the layout")
        self.cells = cells
        self.written = written


class CallKey:
    """The static argument of a program's jitted function: the layout of the current call.

    All keys compare equal, so the key never causes a retrace; when `jax.jit` does trace (a new
    input type), the traced function reads the layout of the call that caused it. The layout is
    held weakly, so jit's cache never keeps a model alive.
    """

    __slots__ = ("layout",)

    def __init__(self, layout: Layout) -> None:
        self.layout = weakref.ref(layout)

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return type(other) is CallKey


class Program:
    """The outcome of discovery for one layout signature (see the module docstring)."""

    def __init__(
        self,
        mutated: list[int],
        const: list[int],
        unused: list[int],
        grads_out: list[int],
        attr_outputs: list[tuple[int, str]],
        read: frozenset[int],
        host: list,
        deferred: list,
        states: StatePlan,
    ) -> None:
        self.mutated = mutated
        self.const = const
        self.unused = unused
        self.grads_out = grads_out
        self.attr_outputs = attr_outputs
        self.read = read
        self.host = host  # per state object: (before, after) of its Python-side state, or None
        # host-side calls (scheduler steps) to run after every call; they name the objects of
        # the discovering layout, so such a program is not shared with other layouts
        self.deferred = deferred
        self.states = states  # which state leaves are donated and returned (`_states.py`)
        self.jitted: Callable[..., Any] = _not_jitted  # discover() sets the jitted program


def _not_jitted(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("jaxmodule.compile: a program was called before discovery jitted it")


def _refuse_structure(txn: Transaction) -> None:
    changed = txn.changed_registrations()
    if changed:
        what = ", ".join(f"{type(m).__name__}.{name}" for m, name in changed[:3])
        txn.restore()
        raise RuntimeError(STRUCTURE_MESSAGE.format(what=f"{what} changed"))


def _escaped(txn: Transaction, modules: set[int]) -> str | None:
    """Where a traced value was left in a reached object other than a module, if anywhere."""
    for o, _, _ in txn.objects:
        if id(o) not in modules and not isinstance(o, Module):
            for k, v in o.__dict__.items():
                if holds_tracer(v):
                    return f"`{type(o).__name__}.{k}`"
    for c, _ in txn.containers:
        if holds_tracer(list(c.values()) if isinstance(c, dict) else list(c)):
            return f"a {type(c).__name__} the step reached"
    return None


def run_traced(
    fn: Callable,
    layout: Layout,
    program: Program | None,
    values: list,
    states: list,
    grads: list,
    dyn: tuple,
    kwargs: dict,
    found: dict | None = None,
) -> tuple:
    """Run the step with tracers in the layout's cells and return its outputs.

    `values` holds one (traced) value per cell (None for cells the program does not use). With
    `found` (discovery) every cell's final value is returned and `found` receives what was
    written; otherwise only the program's outputs are returned. Every object is restored after.
    """
    cells = layout.cells
    used = [k for k, v in enumerate(values) if v is not None]
    module_ids = {id(m) for m in layout.modules}
    visited = layout.reach.visited
    txn = Transaction(
        cells,
        [
            *layout.modules,
            *layout.states,
            *(v for v in visited if type(v) not in (list, dict, tuple)),
        ],
        [v for v in visited if type(v) in (list, dict)],
    )
    saved_states = [o._jm_state_get() for o in layout.states]
    host_before = [o._jm_host_state() for o in layout.states]
    # every grad is put back as it was, so the trace must not look like a change of which grads
    # exist (that would re-plan the next call)
    grad_presence = _structure.counters.grad_presence
    inside = {id(cells[k]) for k in used} | {id(o) for o in layout.states}
    rec = None
    try:
        with (
            recording(every=found is not None, compiling=True) as rec,
            swapped([cells[k] for k in used], [values[k] for k in used]),
        ):
            for p, g in zip(layout.grad_params, grads):
                p.grad = g
            entry = [c._value for c in cells]
            entry_grads = [getattr(c, "_grad", None) for c in cells]
            for o, s in zip(layout.states, states):
                o._jm_state_set(s)
            call_args, call_kwargs = layout.rebuild(dyn, kwargs)
            out = fn(*call_args, **call_kwargs)
            _refuse_structure(txn)
            attrs = [
                (o, name, v)
                for o, name, v in txn.changed_attributes()
                if id(o) in module_ids and v is not DELETED and holds_tracer(v)
            ]
            if found is not None:
                found["mutated"] = [k for k, c in enumerate(cells) if c._value is not entry[k]]
                found["grads"] = [
                    k
                    for k, c in enumerate(cells)
                    if getattr(c, "_grad", None) is not None
                    and (found["keep_grads"] or entry_grads[k] is not None)
                ]
                found["attrs"] = [(layout.modules.index(o), name) for o, name, _ in attrs]
                new_vals = [c._value for c in cells]
                grads_out = found["grads"]
                attr_vals = [v for _, _, v in attrs]
            else:
                assert program is not None  # not discovering: the program is known
                new_vals = [cells[k]._value for k in program.mutated]
                grads_out = program.grads_out
                by_key = {(id(o), name): v for o, name, v in attrs}
                attr_vals = [
                    by_key.get((id(layout.modules[i]), name)) for i, name in program.attr_outputs
                ]
                if any(v is None for v in attr_vals) or len(attrs) != len(attr_vals):
                    raise Restart([], {})  # a new shape took another path through forward
            new_grads = [cells[k]._grad for k in grads_out]
            new_states = [o._jm_state_get() for o in layout.states]
        if rec.touched.keys() - inside:
            rec.restore_outside(inside)
            raise Restart([c for i, c in rec.touched.items() if i not in inside], rec.written)
        if found is not None:
            found["deferred"] = list(rec.deferred)
            found["host"] = [
                None if b == a else (b, a)
                for b, a in zip(host_before, [o._jm_host_state() for o in layout.states])
            ]
            found["read"] = frozenset(layout.index[i] for i in rec.touched if i in layout.index)
    except BaseException:
        if rec is not None:  # state reached only while tracing, the layout's own snapshot misses
            rec.restore_outside(inside)
        txn.restore()
        for o, s in zip(layout.states, saved_states):
            o._jm_state_set(s)
        _structure.counters.grad_presence = grad_presence
        raise
    # success: arrays go back to what they were (the caller writes the outputs back); plain
    # module attributes that received traced arrays too; other Python-side changes stay, as
    # after an eager call
    txn.restore_cells()
    for o, s in zip(layout.states, saved_states):
        o._jm_state_set(s)
    _structure.counters.grad_presence = grad_presence
    old_attrs = {id(o): d for o, d, _ in txn.objects}
    for o, name, _ in attrs:
        before = old_attrs[id(o)]
        if name in before:
            o.__dict__[name] = before[name]
        else:
            del o.__dict__[name]
    leaked = _escaped(txn, module_ids)
    if leaked is not None:
        txn.restore()
        raise RuntimeError(
            f"jaxmodule.compile: the step stored a traced value in {leaked}, which compile does "
            "not write back (only modules, optimizers, GradScalers and generators are). Return "
            "the value from the step instead (e.g. `return loss, logits`), or keep it in a module "
            "buffer; every object is back as it was before the call."
        )
    return new_vals, new_states, new_grads, attr_vals, out


def _reads(recorded: Any, n_cells: int) -> frozenset[int]:
    """Cells whose input variable the recorded jaxpr uses (other than passing it through)."""
    jaxpr = recorded.jaxpr
    invars = jaxpr.invars[:n_cells]
    pos = {v: k for k, v in enumerate(invars)}
    used: set[int] = set()
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            k = pos.get(v) if not isinstance(v, jax.extend.core.Literal) else None
            if k is not None:
                used.add(k)
    for j, v in enumerate(jaxpr.outvars):
        k = pos.get(v) if not isinstance(v, jax.extend.core.Literal) else None
        if k is not None and j != k:
            used.add(k)
    return frozenset(used)


def discover(
    fn: Callable,
    layout: Layout,
    args: tuple,
    kwargs: dict,
    *,
    keep_grads: bool,
    donate: bool,
    jit_kwargs: dict,
    counter: Any,
    force_read: frozenset = frozenset(),
) -> Program:
    """Trace the step once to build its `Program` (see the module docstring)."""
    found: dict[str, Any] = {"keep_grads": keep_grads}
    n = len(layout.cells)

    def probe(values: list, states: list, grads: list, dyn: tuple, kw: dict) -> Any:
        counter.trace_count += 1
        return run_traced(fn, layout, None, values, states, grads, dyn, kw, found=found)

    inputs = (
        [c._value for c in layout.cells],
        [o._jm_state_get() for o in layout.states],
        [p.grad for p in layout.grad_params],
        *layout.split(args, kwargs),
    )
    try:
        recorded, out_shape = jax.make_jaxpr(probe, return_shape=True)(*inputs)
    except TEACHABLE as e:
        teach(
            e, fn, layout, *inputs[3:]
        )  # the user's names, line and fixes instead of jaxmodule's internals
        raise
    read = found["read"] | _reads(recorded, n) | force_read
    # Donated buffers go smallest first. Same program either way, but XLA:CPU runs it
    # measurably faster with this argument order: state_dict order (weight before bias) made
    # the CNN benchmark step 5-8% slower than raw JAX, size order brings it to parity.
    mutated = sorted(found["mutated"], key=lambda k: layout.cells[k]._value.size)
    written = set(mutated)
    const = [k for k in range(n) if k not in written and k in read]
    unused = [k for k in range(n) if k not in written and k not in read]
    program = Program(
        mutated,
        const,
        unused,
        found["grads"],
        found["attrs"],
        read,
        found["host"],
        found["deferred"],
        StatePlan.discover(
            inputs[1],
            out_shape[1],
            recorded,
            n,
            len(jax.tree.leaves(out_shape[0])),
            versioned=[is_versioned(o) for o in layout.states],
        ),
    )
    program.jitted = _jit(fn, program, recorded, inputs, out_shape, donate, jit_kwargs, counter)
    return program


def _jit(
    fn: Callable,
    program: Program,
    recorded: Any,
    inputs: tuple,
    out_shape: Any,
    donate: bool,
    jit_kwargs: dict,
    counter: Any,
) -> Callable:
    replay = jax.extend.core.jaxpr_as_fun(recorded)
    in_tree, in_avals = jax.tree.structure(inputs), recorded.in_avals
    out_tree = jax.tree.structure(out_shape)
    n = len(inputs[0])
    unused_avals = [(k, in_avals[k]) for k in program.unused]
    plan = program.states

    def pure(
        key: CallKey,
        mutated_vals: list,
        const_vals: list,
        state_written: list,
        state_read: list,
        grads: list,
        dyn: tuple,
        kwargs: dict,
    ) -> Any:
        layout = key.layout()
        values: list = [None] * n
        for k, v in zip(program.mutated, mutated_vals):
            values[k] = v
        for k, v in zip(program.const, const_vals):
            values[k] = v
        full = list(values)
        for k, aval in unused_avals:  # never read: any value of the right type will do
            full[k] = jnp.zeros(aval.shape, aval.dtype)
        states = plan.rebuild(state_written, state_read)
        flat, tree = jax.tree.flatten((full, states, grads, dyn, kwargs))
        same_tree = tree == in_tree  # type: ignore[operator]  # jax's PyTreeDef is opaque to mypy
        if same_tree and all(jax.typeof(x) == a for x, a in zip(flat, in_avals)):
            final, new_states, new_grads, attr_vals, out = jax.tree.unflatten(
                out_tree, replay(*flat)
            )
            new_vals = [final[k] for k in program.mutated]
        else:
            counter.trace_count += 1
            assert layout is not None  # the call being traced holds its layout
            _log.retrace(
                counter, _input_change(layout, program, flat, tree, in_avals, in_tree, dyn, kwargs)
            )
            try:
                new_vals, new_states, new_grads, attr_vals, out = run_traced(
                    fn, layout, program, values, states, grads, dyn, kwargs
                )
            except TEACHABLE as e:  # named as on the first trace (`discover`)
                teach(e, fn, layout, dyn, kwargs, program)
                raise
            try:  # a new input type may write state the plan only reads
                plan.check(new_states, states)
            except StateChanged:
                raise Restart([], {}) from None  # discover again
        # written state keeps its placement across devices (no-op on one device)
        new_vals, new_states, new_grads = constrain_outputs(
            layout, program.mutated, program.grads_out, new_vals, new_states, new_grads
        )
        if out_shardings is not None:  # the user's `out_shardings=` is about the step's result only
            out = constrain_prefix(out, out_shardings)
        return new_vals, plan.outputs(new_states), new_grads, attr_vals, out

    jit_kwargs = dict(jit_kwargs)
    out_shardings = jit_kwargs.pop("out_shardings", None)
    donate_argnums = (1, 3, 5) if donate else ()  # written cells, written state, grads
    return jax.jit(pure, static_argnums=0, donate_argnums=donate_argnums, **jit_kwargs)


def _input_change(
    layout: Layout,
    program: Program,
    flat: list,
    tree: Any,
    in_avals: list,
    in_tree: Any,
    dyn: tuple,
    kwargs: dict,
) -> list[str]:
    if tree != in_tree:
        return ["the structure of the traced arguments changed"]
    labels = describe_inputs(layout, program, dyn, kwargs)
    out = []
    for label, x, a in zip(labels, flat, in_avals):
        t = jax.typeof(x)
        if t != a:
            if t.shape != a.shape:
                out.append(f"{label}: shape {tuple(a.shape)} -> {tuple(t.shape)}")
            else:
                out.append(f"{label}: {a.str_short()} -> {t.str_short()}")
    return out or ["new input types"]
