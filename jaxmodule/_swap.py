"""Putting traced values into state cells and taking them out again: the one place that does it.

Three tools, used by `jaxmodule.compile`, the autograd functions and backward hooks:

- `swapped(cells, values)`: a context manager that holds `values` in `cells` for the duration of
  a block and restores what was there before (optionally keeping what the block itself wrote).
- `recording()`: while active, every read or write of a cell's array (`Parameter`, `Buffer`,
  `Generator`) by this thread is reported. It works by replacing the classes' `_value` slot
  descriptor with a recording one for the duration, so eager code outside a recording pays
  nothing. `jaxmodule.compile` uses it to find state a step reached that it was not given, and
  zero-argument `jaxmodule.backward` to find the parameters a loss read.
- `Transaction`: a snapshot of every object a compiled call may change (cells, grads, cell
  classes, modules' attributes and registries, optimizers', schedulers' and scalers' Python
  state), restored when the call fails, so nothing is ever left half-updated or holding a tracer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jax

from ._stateful import Stateful

__all__ = [
    "swapped",
    "recording",
    "Recording",
    "report",
    "defer",
    "Transaction",
    "holds_tracer",
    "register_cell_class",
]

_Tracer = jax.core.Tracer


@contextmanager
def swapped(
    cells: Sequence[Any], values: Sequence[Any], *, keep_written: bool = False
) -> Iterator[None]:
    """Hold `values` in `cells` inside the block; restore the previous values on exit.

    With `keep_written=True` a cell that the block itself assigned (its value is no longer the one
    put in) keeps the block's value, as a forward that writes a parameter does eagerly.
    """
    saved = [c._value for c in cells]
    for c, v in zip(cells, values):
        c._value = v
    try:
        yield
    finally:
        for c, v, old in zip(cells, values, saved):
            if not keep_written or c._value is v:
                c._value = old


# ---- recording reads and writes ---------------------------------------------------------------
class Recording:
    """Cells touched while a `recording()` block was active.

    `touched` holds cells whose array was concrete when read or written (state the traced code
    reached from outside its inputs); with `every=True` also cells holding tracers. `written`
    maps each cell assigned during the block to its value before the first assignment; `created`
    holds the ids of cells made inside the block (e.g. a jitted layer's unflattened copy).
    """

    __slots__ = (
        "every",
        "compiling",
        "touched",
        "written",
        "created",
        "saved",
        "deferred",
        "thread",
    )

    def __init__(self, every: bool, compiling: bool = False) -> None:
        self.every = every
        self.compiling = compiling  # a compiled step's trace (host effects are deferred)
        self.deferred: list[tuple[Any, Any, tuple, dict]] = []
        self.touched: dict[int, Any] = {}
        self.written: dict[int, tuple[Any, Any]] = {}
        self.created: set[int] = set()
        self.saved: dict[
            int, tuple[Stateful, Transaction, Any]
        ] = {}  # reported objects, as first seen
        self.thread = threading.get_ident()

    def restore_outside(self, inside: set[int]) -> None:
        """Undo what the block did to cells and reported objects whose id is not in `inside`."""
        for i, (obj, txn, state) in self.saved.items():
            if i not in inside:
                txn.restore()
                obj._jm_state_set(state)
        for i, (c, old) in self.written.items():
            if i not in inside:
                c._value = old


def report(obj: Stateful, stepping: bool = False) -> None:
    """Called by `Stateful` objects (optimizers, GradScaler) when they are used: inside a
    recording they count as touched, and their state as first seen is kept for undoing.
    `stepping`: an optimizer step, which must not follow a deferred scheduler step."""
    if not _active:
        return
    if stepping:
        rec = _compiling()
        if rec is not None and rec.deferred:
            raise RuntimeError(
                "lr_scheduler.step() was called before optimizer.step() inside a compiled step. "
                "Call optimizer.step() first, then scheduler.step(), as torch expects (it warns "
                "about the other order); compile runs the scheduler step after each call."
            )
    for rec in _active:
        if rec.thread == threading.get_ident() and id(obj) not in rec.touched:
            rec.touched[id(obj)] = obj
            cells = [p for g in getattr(obj, "param_groups", ()) for p in g["params"]]
            rec.saved[id(obj)] = (obj, Transaction(cells, [obj]), obj._jm_state_get())


_active: list[Recording] = []
_lock = threading.Lock()
_patched: list[tuple[type[Any], Any]] = []


class _RecordingSlot:
    """Stands in for a class's `_value` slot descriptor while recordings are active."""

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        v = self.slot.__get__(obj, cls)
        for rec in _active:
            if (rec.every or not isinstance(v, _Tracer)) and rec.thread == threading.get_ident():
                rec.touched[id(obj)] = obj
        return v

    def __set__(self, obj: Any, value: Any) -> None:
        if _active:
            try:
                old = self.slot.__get__(obj, type(obj))
            except AttributeError:  # a cell being constructed: not state from outside
                old = None
                for rec in _active:
                    if rec.thread == threading.get_ident():
                        rec.created.add(id(obj))
            if old is not None:
                for rec in _active:
                    if rec.thread != threading.get_ident():
                        continue
                    if rec.every or not isinstance(old, _Tracer):
                        rec.touched[id(obj)] = obj
                    if id(obj) not in rec.written:
                        rec.written[id(obj)] = (obj, old)
        self.slot.__set__(obj, value)


# The classes whose instances hold a value in a `_value` slot (the cells, the generator): each
# declares itself with `@register_cell_class`, so this low-level file imports neither.
_cell_classes: list[type[Any]] = []  # Any: recording() swaps their `_value` slot descriptor


def register_cell_class(cls: type) -> type:
    """Class decorator: `recording()` reports reads and writes of `cls`'s `_value` slot."""
    _cell_classes.append(cls)
    return cls


def _compiling() -> Recording | None:
    for rec in reversed(_active):
        if rec.compiling and rec.thread == threading.get_ident():
            return rec
    return None


def defer(obj: Any, method: Any, args: tuple, kwargs: dict) -> bool:
    """Inside a compiled step's trace, record the host-side call `method(obj, *args, **kwargs)`
    (an LR scheduler step: plain Python state) to run after every call of the compiled step
    instead of once at trace time. Returns False (run it now) outside a compiled trace."""
    rec = _compiling()
    if rec is None:
        return False
    if holds_tracer((args, kwargs)):
        raise RuntimeError(
            f"{type(obj).__name__}.{method.__name__}() received a traced value inside a compiled "
            "step (e.g. ReduceLROnPlateau.step(loss)): return the value from the step and call "
            "it after the compiled call."
        )
    rec.deferred.append((obj, method, args, kwargs))
    return True


@contextmanager
def recording(every: bool = False, compiling: bool = False) -> Iterator[Recording]:
    """Record the cells this thread reads or writes inside the block (see `Recording`)."""
    rec = Recording(every, compiling)
    with _lock:
        if not _active:
            for cls in _cell_classes:
                slot = cls.__dict__["_value"]
                _patched.append((cls, slot))
                cls._value = _RecordingSlot(slot)
        _active.append(rec)
    try:
        yield rec
    finally:
        with _lock:
            _active.remove(rec)
            if not _active:
                for cls, slot in _patched:
                    cls._value = slot
                _patched.clear()


# ---- transactions ------------------------------------------------------------------------------
def holds_tracer(x: Any) -> bool:
    """Whether `x` (any pytree) contains a JAX tracer."""
    return any(isinstance(leaf, _Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _contents(x: Any) -> Any:
    if type(x) is list:
        return list(x)
    if isinstance(x, dict):
        return dict(x)
    if isinstance(x, set):
        return set(x)
    return None


def _containers(x: Any, depth: int, out: list) -> None:
    """(container, its contents) for `x` and the lists, dicts and sets nested in it."""
    c = _contents(x)
    if c is None:
        return
    out.append((x, c))
    if depth > 0:
        for v in c.values() if isinstance(c, dict) else c:
            _containers(v, depth - 1, out)


def _refill(x: Any, contents: Any) -> None:
    if type(x) is list:
        x[:] = contents
    else:
        x.clear()
        x.update(contents)


class Transaction:
    """A snapshot of the objects a compiled call may change, to restore on failure.

    Args:
        cells: Parameter/Buffer cells (value, grad and class are kept) and Generators.
        containers: plain lists, dicts and sets whose contents are kept.
        objects: modules, optimizers, schedulers, scalers and plain holders: their `__dict__` and
            the lists, dicts and sets inside it (to a small depth) are kept and refilled in
            place, so objects that hold references to those containers keep seeing them.
    """

    def __init__(
        self, cells: Iterable[Any], objects: Iterable[Any], containers: Iterable[Any] = ()
    ) -> None:
        self.cells = [
            (c, c._value, getattr(c, "_grad", None), type(c), getattr(c, "_seed", None))
            for c in cells
        ]
        self.containers: list = []
        for c in containers:
            _containers(c, 0, self.containers)
        self.objects: list[tuple[Any, dict, list]] = []
        for o in objects:
            d = getattr(o, "__dict__", None)
            if d is None:
                continue
            nested: list = []
            for v in d.values():
                _containers(v, 2, nested)
            self.objects.append((o, dict(d), nested))

    def restore_cells(self) -> None:
        """Put every cell's value, grad and class back."""
        for c, v, g, cls, seed in self.cells:
            if type(c) is not cls:
                c.__class__ = cls
            c._value = v
            if hasattr(c, "_grad"):
                c._grad = g
            if seed is not None:
                c._seed = seed

    def restore(self) -> None:
        """Put everything back as it was when the transaction began."""
        for o, d, nested in self.objects:
            current = o.__dict__
            for k in [k for k in current if k not in d]:
                del current[k]
            current.update(d)
            for container, contents in nested:
                _refill(container, contents)
        for container, contents in self.containers:
            _refill(container, contents)
        self.restore_cells()

    def changed_attributes(self) -> list[tuple[Any, str, Any]]:
        """(object, name, new value) for every `__dict__` entry added or rebound since the start
        (entries removed are reported with the value `_DELETED`)."""
        out = []
        for o, d, _ in self.objects:
            current = o.__dict__
            for k, v in current.items():
                if k not in d or d[k] is not v:
                    out.append((o, k, v))
            for k in d:
                if k not in current:
                    out.append((o, k, DELETED))
        return out

    def changed_registrations(self) -> list[tuple[Any, str]]:
        """(module, container name) for each module registry (`_parameters`, `_buffers`,
        `_modules`) whose entries changed since the start."""
        out = []
        for o, d, nested in self.objects:
            for name in ("_parameters", "_buffers", "_modules"):
                reg = d.get(name)
                if reg is None:
                    continue
                before = next((c for x, c in nested if x is reg), None)
                now = o.__dict__.get(name)
                if (
                    now is not reg
                    or before is None
                    or len(before) != len(now)
                    or any(now.get(k, DELETED) is not v for k, v in before.items())
                ):
                    out.append((o, name))
        return out


class _Deleted:
    def __repr__(self) -> str:
        return "<deleted>"


DELETED = _Deleted()
