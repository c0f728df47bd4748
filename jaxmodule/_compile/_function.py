"""`CompiledFunction`: the object `jaxmodule.compile` returns, and its call path.

Per call:

1. The generated fast path of the last entry (`_fast_path.py`; it is this object's `__call__`,
   see `_use_fast`) checks that nothing changed and runs the call; otherwise
2. `_entry_for`: a recent entry whose layout still matches (versions, argument identities and
   statics, capture guards), else a new `Layout` (`_layout.py`) for this call, with the
   `Program` of an equal signature if one exists (no tracing), else a newly discovered one
   (`_program.py`, one trace of the user's function).
3. Gather the arrays of the program's written and read cells, the optimizers' states and the
   gradients carried in; call the program's `jax.jit` function; scatter the outputs into the
   cells, optimizers and gradients, and write back module attributes the step assigned. Nothing
   waits for the device.

Caches are bounded: `KEEP_ENTRIES` recent layouts (each holds its objects, so a stream of new
models is not kept alive) and `KEEP_PROGRAMS` programs per function (which hold no objects).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jax

from .. import _structure
from . import _log
from ._fast_path import build_fast_path, guards_pass
from ._layout import Layout
from ._program import CallKey, Program, Restart, discover
from ._sharding import place_strays

__all__ = ["CompiledFunction"]

KEEP_ENTRIES = 4
KEEP_PROGRAMS = 32
_MAX_RESTARTS = 4


class _Entry:
    """A layout with its program and the per-call bookkeeping the fast path needs."""

    __slots__ = (
        "layout",
        "program",
        "key",
        "handed_out_at",
        "fast",
        "mutated_cells",
        "const_cells",
        "host_pending",
        "state_versions",
    )

    def __init__(self, layout: Layout, program: Program, reused: bool) -> None:
        self.layout = layout
        self.program = program
        self.key = CallKey(layout)
        self.handed_out_at = -1  # `counters.handed_out` when its cells were last protected
        self.fast: Callable | None = None
        self.mutated_cells = [layout.cells[k] for k in program.mutated]
        self.const_cells = [layout.cells[k] for k in program.const]
        # a program discovered on other objects: their Python-side changes (an optimizer's
        # "state exists" flags) are replayed onto these after the first call
        self.host_pending = reused and any(h is not None for h in program.host)
        # each state's `_jm_state_version` after the last general-path call: the fast path's
        # check that the structures of the leaves it keeps still hold
        self.state_versions: list = []

    def call_args(self, state_leaves: list[list], args: tuple, kwargs: dict) -> tuple:
        """The arguments of this entry's program call (`state_leaves`: `StatePlan.gather`'s)."""
        written, read = self.program.states.split(state_leaves)
        return (
            self.key,
            [c._value for c in self.mutated_cells],
            [c._value for c in self.const_cells],
            written,
            read,
            [p.grad for p in self.layout.grad_params],
            *self.layout.split(args, kwargs),
        )


class CompiledFunction:
    """A step function compiled with `jaxmodule.compile`; call it like the original."""

    _jm_compiled_step = True  # `_reach` walks `self.fn` instead (it does not import this file)

    def __init__(
        self, fn: Callable, *, keep_grads: bool = False, donate: bool = True, **jit_kwargs: Any
    ) -> None:
        functools.update_wrapper(self, fn, updated=())  # name and docstring, not fn's __dict__
        self.fn = fn
        self.keep_grads = keep_grads
        self.donate = donate
        self.jit_kwargs = jit_kwargs
        self._entries: list[_Entry] = []
        self._programs: OrderedDict[tuple, Program] = OrderedDict()
        self._fast: Callable | None = None  # the generated fast path of `_entries[0]`
        self.trace_count = 0

    # ---- finding the entry ------------------------------------------------------------------
    def _entry_for(self, args: tuple, kwargs: dict) -> _Entry:
        for i, e in enumerate(self._entries):
            if (
                e.layout.current()
                and e.layout.matches(args, kwargs)
                and guards_pass(e.layout, args)
                and e.layout.states_current()
            ):
                if i:
                    self._entries.insert(0, self._entries.pop(i))
                return e
        return self._new_entry(args, kwargs)

    def _new_entry(
        self, args: tuple, kwargs: dict, extra: tuple = (), force_read: frozenset = frozenset()
    ) -> _Entry:
        for _ in range(_MAX_RESTARTS):
            layout = Layout(self.fn, args, kwargs, extra)
            layout.label = self._name()
            place_strays(layout)  # arrays on a mesh: single-device ones join it (once per layout)
            if _log.settings.recompiles or self.trace_count >= _log.RETRACE_WARNING_LIMIT:
                layout.description = layout.describe()  # as it is now, for the next reason
            program = None if force_read else self._programs.get(layout.signature)
            if program is not None and program.deferred and not _reaches_deferred(layout, program):
                program = None  # its host calls name objects this layout does not hold
            reused = program is not None
            if reused:
                self._programs.move_to_end(layout.signature)
                break
            previous = self._entries[0].layout if self._entries else None
            try:
                program = discover(
                    self.fn,
                    layout,
                    args,
                    kwargs,
                    keep_grads=self.keep_grads,
                    donate=self.donate,
                    jit_kwargs=self.jit_kwargs,
                    counter=self,
                    force_read=force_read,
                )
            except Restart as r:
                extra, force_read = _widen(layout, extra, force_read, r)
                continue
            if self.trace_count > 1:
                _log.retrace(self, self._reasons(previous, layout))
            self._programs[layout.signature] = program
            if len(self._programs) > KEEP_PROGRAMS:
                self._programs.popitem(last=False)
            break
        else:
            raise RuntimeError(
                f"jaxmodule.compile: {self._name()} kept reaching new state while "
                "tracing; pass the modules and optimizers it uses as arguments"
            )
        assert program is not None  # the loop above breaks only with one
        entry = _Entry(layout, program, reused)
        self._entries.insert(0, entry)
        del self._entries[KEEP_ENTRIES:]
        return entry

    def _reasons(self, previous: Layout | None, layout: Layout) -> list[str]:
        if not (_log.settings.recompiles or self.trace_count > _log.RETRACE_WARNING_LIMIT):
            return []
        before = getattr(previous, "description", None)
        if before is None:
            return ["a new call layout"]
        return _log.diff(before, layout.description) or ["new objects with another structure"]

    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or type(self.fn).__name__

    # ---- the call ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # while a fast path is in use, the instance's own class calls it instead (`_use_fast`)
        return self._general(args, kwargs)

    def _general(self, args: tuple, kwargs: dict) -> Any:
        entry = self._entry_for(args, kwargs)
        try:
            return self._run(entry, args, kwargs)
        except Restart as r:  # a new input type took a path that reached more state
            return self._restart(entry, r, args, kwargs)

    def _restart_first(self, r: Restart, args: tuple, kwargs: dict) -> Any:
        """A fast path's call raised `Restart` (its entry is the first)."""
        return self._restart(self._entries[0], r, args, kwargs)

    def _use_fast(self, fast: Callable | None) -> None:
        """Make `fast` (a generated fast path, or None) what calling this object runs. The fast
        path becomes the `__call__` of a class of this instance alone, so that a call runs the
        generated function directly: one Python frame, as a raw `jax.jit` step's wrapper,
        instead of a method that calls it (measured: the extra frame and argument packing cost
        the tiny-MLP step 1-2%)."""
        self._fast = fast
        cls = type(self)
        if not cls.__dict__.get("_jm_own_class", False):
            if fast is None:
                return
            own = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
            cls = self.__class__ = type(cls.__name__, (cls,), {**own, "_jm_own_class": True})
        if fast is None:
            cls.__call__ = CompiledFunction.__call__  # type: ignore[method-assign]
        else:
            cls.__call__ = staticmethod(fast)  # type: ignore[method-assign]

    def __copy__(self) -> CompiledFunction:
        """A copy compiles afresh (plans hold the objects of their calls)."""
        return CompiledFunction(
            self.fn, keep_grads=self.keep_grads, donate=self.donate, **self.jit_kwargs
        )

    def __deepcopy__(self, memo: dict) -> CompiledFunction:
        return self.__copy__()

    def _restart(self, entry: _Entry, r: Restart, args: tuple, kwargs: dict) -> Any:
        """Re-plan after a retrace (new input types) reached state its program skipped."""
        for _ in range(_MAX_RESTARTS):
            extra, force_read = _widen(entry.layout, entry.layout.extra, entry.program.read, r)
            if entry in self._entries:
                self._entries.remove(entry)
            self._programs.pop(entry.layout.signature, None)
            entry = self._new_entry(args, kwargs, extra, force_read)
            try:
                return self._run(entry, args, kwargs)
            except Restart as again:
                r = again
        raise RuntimeError(
            f"jaxmodule.compile: {self._name()} kept reaching new state while "
            "tracing; pass the modules and optimizers it uses as arguments"
        )

    def _run(self, entry: _Entry, args: tuple, kwargs: dict) -> Any:
        layout, program = entry.layout, entry.program
        if entry.handed_out_at != _structure.counters.handed_out and self.donate:
            _protect_exported(entry)
        states = layout.states
        state_leaves = program.states.gather(states)
        new_vals, new_states, new_grads, attr_vals, out = program.jitted(
            *entry.call_args(state_leaves, args, kwargs)
        )
        for c, v in zip(entry.mutated_cells, new_vals):
            c._value = v
        program.states.install(states, state_leaves, new_states)
        entry.state_versions = [o._jm_state_version() for o in states]
        if layout.grad_params or program.grads_out:
            for p in layout.grad_params:
                p.grad = None
            cells = layout.cells
            for k, g in zip(program.grads_out, new_grads):
                cells[k].grad = g
        for (i, name), v in zip(program.attr_outputs, attr_vals):
            setattr(layout.modules[i], name, v)  # a structural change: the next call re-plans
        for obj, method, a, kw in program.deferred:
            method(obj, *a, **kw)
        if entry.host_pending:
            for o, change in zip(states, program.host):
                if change is not None:
                    o._jm_host_update(*change)
            entry.host_pending = False
        if entry.fast is None and not program.attr_outputs:
            entry.fast = build_fast_path(entry, self._name(), self._general, self._restart_first)
        self._use_fast(entry.fast if self._entries and self._entries[0] is entry else None)
        return out

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Decorating a method: bind like a function would.
        return self if obj is None else functools.partial(self, obj)


def _widen(
    layout: Layout, extra: tuple, force_read: frozenset, r: Restart
) -> tuple[tuple, frozenset]:
    """The extra objects and forced reads of the next attempt after a `Restart`: objects outside
    the layout join it (held by identity; a fresh discovery then finds the reads), cells of the
    layout that were skipped become read. A restart naming nothing (forward took another path
    for a new input type) makes every cell read."""
    outside = tuple(c for c in r.cells if id(c) not in layout.index and not _in(c, layout.states))
    if outside:
        return tuple(extra) + outside, frozenset()
    reads = set(force_read) | {layout.index[id(c)] for c in r.cells if id(c) in layout.index}
    if not r.cells:
        reads |= set(range(len(layout.cells)))
    return tuple(extra), frozenset(reads)


def _reaches_deferred(layout: Layout, program: Program) -> bool:
    """Whether every object a program's host calls name (e.g. an LR scheduler) is one this layout
    reached: a program with host calls is reused only by layouts holding the same objects (after
    a `model.train()`, say), never by another model's layout of the same structure."""
    held = {id(o) for o in (*layout.reach.visited, *layout.roots, *layout.states)}
    return all(id(obj) in held for obj, _, _, _ in program.deferred)


def _in(x: Any, seq: list) -> bool:
    return any(x is s for s in seq)


def _copy_if_exported(v: Any) -> Any:
    if _structure.EXPORTED.get(id(v)) is v:
        return jax.numpy.array(v, copy=True)
    return v


def _protect_exported(entry: _Entry) -> None:
    """Before donating, replace cell values that a state_dict() handed out by private copies,
    so the caller's arrays stay valid (the copies are donated instead)."""
    for c in entry.mutated_cells:
        c._value = _copy_if_exported(c._value)
    for o in entry.layout.states:
        o._jm_state_set(jax.tree_util.tree_map(_copy_if_exported, o._jm_state_get()))
    entry.handed_out_at = _structure.counters.handed_out
