"""What a step function reaches besides its arguments, and the guards that keep that valid.

torch users compile steps that use `model` and `optimizer` as globals or closure variables, or a
`Trainer` whose method is compiled. `reach(fn, args)` walks, once per layout, what the function
can see: its closure cells, the globals its code names (nested functions and lambdas included),
its defaults, a bound method's `__self__`, `functools.partial` arguments, and, below those, plain
containers and plain objects (a `Trainer.__dict__`), other user functions it names, and user
modules' attributes it names. It collects:

- the *stateful* objects found (modules, cells, generators, optimizers, GradScalers), each once;
- *guards*: one check per link from a root to what was found (`G0['model'] is R3`,
  `R5.__dict__['optimizer'] is R6`), and for plain values the step reads from globals, closures,
  dicts or plain objects (Python numbers, strings, arrays), an equality or identity check, since
  those values are baked into the compiled program. A failed guard makes the next call re-plan.

An attribute of a plain object (a `Trainer`, a config object) is guarded only when its name is
one the reached code uses: a name or string constant in the step's code, in the functions it
reaches, or in the methods of the object's class that those name (`finish`). So a
`self.global_step += 1` in the training loop outside the step does not retrace every step, while
`self.clip` read in the step (or in a method it calls) is guarded. Plain values in lists are
guarded only in lists that lead to state (a list the step appends to is not a config).

Modules are not walked into (their structure version covers their insides), nor are library
objects (jax, numpy, optax, torch, jaxmodule itself, the standard library). The walk is bounded
in depth and breadth; state found only past those bounds is still caught while tracing (the
cells report being read, see `jaxmodule/_swap.py`) and then held by identity.
"""

from __future__ import annotations

import enum
import functools
import sys
import types
from typing import Any

import jax
import numpy as np

from .._random import Generator
from .._stateful import is_stateful_object
from ..nn.modules.module import Module
from ..nn.parameter import _TensorCell

__all__ = ["Reach", "reach", "is_stateful", "MISSING"]

_LIBRARIES = frozenset(
    {
        "jax",
        "jaxlib",
        "numpy",
        "optax",
        "orbax",
        "jaxmodule",
        "torch",
        "flax",
        "equinox",
        "ml_dtypes",
        "scipy",
        "pytest",
        "_pytest",
        "hypothesis",
    }
) | frozenset(sys.stdlib_module_names)
_SCALARS = (bool, int, float, complex, str, type(None))
_MAX_DEPTH = 4
_MAX_ITEMS = 64


class _Missing:
    """What a guard's lookup gives when a name or key is gone (never identical to anything)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def is_stateful(x: Any) -> bool:
    """Modules, cells, generators and `Stateful` objects (optimizers, GradScaler)."""
    return isinstance(x, (Module, Generator, _TensorCell)) or is_stateful_object(x)


def _library(module_name: str | None) -> bool:
    return module_name is None or module_name.partition(".")[0] in _LIBRARIES


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def _code_strings(code: types.CodeType) -> set[str]:
    """The names and string constants of `code` and its nested code (what it may look up as an
    attribute or key: `self.clip`, `getattr(cfg, "clip")`)."""
    out = set(code.co_names) | {c for c in code.co_consts if type(c) is str}
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _code_strings(c)
    return out


def _class_codes(cls: type) -> dict[str, list[types.CodeType]]:
    """Per attribute name of a user class (its bases included), the code of the methods,
    static and class methods and property functions under that name."""
    out: dict[str, list[types.CodeType]] = {}
    for c in cls.__mro__:
        if _library(c.__module__):
            continue
        for k, a in vars(c).items():
            fns = [a.fget, a.fset] if isinstance(a, property) else [getattr(a, "__func__", a)]
            out.setdefault(k, []).extend(
                f.__code__ for f in fns if isinstance(f, types.FunctionType)
            )
    return out


def _static_scalar(v: Any) -> bool:
    t = type(v)
    if t in _SCALARS:
        return True
    if t is tuple:
        return len(v) <= _MAX_ITEMS and all(map(_static_scalar, v))
    return isinstance(v, (np.dtype, enum.Enum))


class Reach:
    """The result of a walk: stateful objects, the environment of names, and guard lines."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {"MISSING": MISSING}
        self.stateful: list[Any] = []
        self.paths: list[str] = []  # a readable path to each stateful object (for messages)
        self.guards: list[tuple[str, str, str]] = []  # (expression, op, env name)
        self.described: dict[str, Any] = {}  # readable path -> plain value guarded
        self._named: dict[int, str] = {}
        self._walked_fns: set[int] = set()
        self._holders: set[int] = set()  # plain objects and containers that lead to state
        self._visited_ids: set[int] = set()
        self.visited: list[Any] = []  # every plain object and container walked (for escapes)
        self._strings: set[str] = set()  # `_code_strings` of every function walked
        self._classes: dict[type, None] = {}  # classes of the plain objects walked
        self._attr_guards: dict[str, tuple[str, str]] = {}  # expr -> (attribute, readable)

    # ---- naming ---------------------------------------------------------------------------------
    def _name(self, obj: Any, prefix: str = "R") -> str:
        name = self._named.get(id(obj))
        if name is None:
            name = f"{prefix}{len(self.env)}"
            self.env[name] = obj
            self._named[id(obj)] = name
        return name

    def guard_lines(self, indent: str, fail: str = "return MISS") -> list[str]:
        """Python lines that run `fail` (by default `return MISS`, the caller's name for
        failure) when a guard fails."""
        lines = []
        for expr, op, name in self.guards:
            if op == "is":
                lines.append(f"{indent}if {expr} is not {name}: {fail}")
            else:
                lines.append(f"{indent}_g = {expr}")
                lines.append(f"{indent}if type(_g) is not type({name}) or _g != {name}: {fail}")
        return lines

    # ---- walking --------------------------------------------------------------------------------
    def function(self, f: Any, readable: str, depth: int = 0) -> bool:
        """Walk what function `f` can see. Returns whether anything relevant was found."""
        if depth > _MAX_DEPTH or id(f) in self._walked_fns:
            return False
        self._walked_fns.add(id(f))
        if getattr(type(f), "_jm_compiled_step", False):  # a CompiledFunction: walk its step
            f = f.fn
        if isinstance(f, functools.partial):
            fname = self._name(f, "P")
            found = self.function(f.func, readable, depth + 1)
            for i, a in enumerate(f.args):
                found |= self.value(a, f"{fname}.args[{i}]", f"{readable}.args[{i}]", depth + 1)
            for k, a in f.keywords.items():
                found |= self.value(
                    a, f"{fname}.keywords[{k!r}]", f"{readable}.keywords[{k!r}]", depth + 1
                )
            return found
        if isinstance(f, types.MethodType):
            mname = self._name(f, "F")
            found = self.value(f.__self__, f"{mname}.__self__", "self", depth + 1)
            return self.function(f.__func__, readable, depth + 1) or found
        if not isinstance(f, types.FunctionType):  # a callable object (a module, a Trainer)
            if is_stateful(f) or (
                callable(f) and not isinstance(f, type) and not _library(type(f).__module__)
            ):
                name = f"X{len(self.env)}"  # the object itself: fixed, its guard always holds
                self.env[name] = f
                return self.value(f, name, readable, depth + 1)
            return False
        code = f.__code__
        self._strings |= _code_strings(code)
        fname = self._name(f, "F")
        found = False
        if f.__closure__:
            for var, cell in zip(code.co_freevars, f.__closure__):
                try:
                    v = cell.cell_contents
                except ValueError:
                    continue
                found |= self.value(v, f"{self._name(cell, 'K')}.cell_contents", var, depth)
        g = f.__globals__
        gname = None
        for n in sorted(_code_names(code)):
            if n in g:
                v = g[n]
                if gname is None:
                    gname = self._name(g, "G")
                found |= self.value(v, f"{gname}.get({n!r}, MISSING)", n, depth)
        for i, d in enumerate(f.__defaults__ or ()):
            found |= self.value(d, f"{fname}.__defaults__[{i}]", f"default {i}", depth)
        for k, d in (f.__kwdefaults__ or {}).items():
            found |= self.value(d, f"{fname}.__kwdefaults__[{k!r}]", f"default {k}", depth)
        return found

    def value(self, v: Any, expr: str, readable: str, depth: int, attr: str | None = None) -> bool:
        """Walk one value reached through `expr` (attribute `attr` of a plain object, if so);
        add guards for it when relevant."""
        mark = len(self.guards)
        if attr is not None and (_static_scalar(v) or isinstance(v, (jax.Array, np.ndarray))):
            self._attr_guards[expr] = (attr, readable)  # kept if the code uses it (`finish`)
        if id(v) in self._named and (is_stateful(v) or id(v) in self._holders):
            self.guards.append((expr, "is", self._named[id(v)]))
            return True
        if id(v) in self._visited_ids:
            return False
        if is_stateful(v):
            name = self._name(v)
            self.stateful.append(v)
            self.paths.append(readable)
            self.guards.append((expr, "is", name))
            return True
        if _static_scalar(v):
            if depth <= 2:
                name = f"C{len(self.env)}"  # constants are compared by value, never shared
                self.env[name] = v
                self.guards.append((expr, "==", name))
                self.described[readable] = v
            return False
        if isinstance(v, (jax.Array, np.ndarray)):
            if depth <= 2:
                self.guards.append((expr, "is", self._name(v, "A")))
                self.described[readable] = f"array {tuple(v.shape)} {v.dtype}"
            return False
        if getattr(
            type(v), "_jm_host_calls", False
        ):  # a scheduler: its deferred step is in the program
            self._visited_ids.add(id(v))
            self.visited.append(v)
            self.guards.append((expr, "is", self._name(v, "H")))
            return True
        if depth >= _MAX_DEPTH:
            return False
        if isinstance(v, (types.FunctionType, types.MethodType, functools.partial)):
            if isinstance(v, types.FunctionType) and _library(v.__module__):
                return False
            name = self._name(v, "F")
            found = self.function(v, readable, depth + 1)
            if found:
                self.guards.insert(mark, (expr, "is", name))
            return found
        if isinstance(v, types.ModuleType):
            return False  # only through `_module_attrs` (attributes the code names)
        items = self._items(v)
        if items is None:
            return False
        self._visited_ids.add(id(v))
        self.visited.append(v)
        name = self._name(v, "H")
        plain = type(v) not in (dict, list, tuple)
        if plain:
            self._classes[type(v)] = None
        found = False
        for accessor, label, item in items:
            key = label[1:] if plain else None
            found |= self.value(item, f"{name}{accessor}", f"{readable}{label}", depth + 1, key)
        if found:
            self._holders.add(id(v))
        elif type(v) is not dict and not plain:
            del self.guards[mark:]  # a list without state: its numbers are not a config
        if len(self.guards) > mark:  # state, or plain values (a config's numbers)
            self.guards.insert(mark, (expr, "is", name))
        return found

    def finish(self) -> None:
        """Drop the guards of plain-object attributes that no reached code names (see the module
        docstring): the names of the walked functions, and, to a fixed point, of the methods and
        properties of the walked objects' classes under those names."""
        if not self._attr_guards:
            return
        names = set(self._strings)
        codes = [_class_codes(c) for c in self._classes]
        done: set[int] = set()
        grew = True
        while grew:
            grew = False
            for per_class in codes:
                for k, cs in per_class.items():
                    for c in cs:
                        if k in names and id(c) not in done:
                            done.add(id(c))
                            names |= _code_strings(c)
                            grew = True
        unused = {e: r for e, (a, r) in self._attr_guards.items() if a not in names}
        self.guards = [g for g in self.guards if g[0] not in unused]
        for readable in unused.values():
            self.described.pop(readable, None)

    def _items(self, v: Any) -> list[tuple[str, str, Any]] | None:
        t = type(v)
        if t is dict:
            if len(v) > _MAX_ITEMS:
                return None
            return [
                (f".get({k!r}, MISSING)", f"[{k!r}]", x)
                for k, x in v.items()
                if type(k) in (str, int)
            ]
        if t is list or t is tuple:  # a shorter list fails the guard with IndexError: re-plan
            if len(v) > _MAX_ITEMS:
                return None
            return [(f"[{i}]", f"[{i}]", x) for i, x in enumerate(v)]
        if isinstance(v, type) or (_library(t.__module__) and t is not types.SimpleNamespace):
            return None
        d = getattr(v, "__dict__", None)
        if not isinstance(d, dict) or len(d) > _MAX_ITEMS:
            return None
        return [
            (f".__dict__.get({k!r}, MISSING)", f".{k}", x) for k, x in d.items() if type(k) is str
        ]


def module_attrs(r: Reach, f: Any) -> None:
    """Walk attributes of user modules that `f`'s code names (`import config; config.model`)."""
    if not isinstance(f, types.FunctionType):
        return
    names = _code_names(f.__code__)
    g = f.__globals__
    for n in sorted(names):
        m = g.get(n)
        if isinstance(m, types.ModuleType) and not _library(getattr(m, "__name__", None)):
            mname = r._name(m, "M")
            for attr in sorted(names & set(vars(m))):
                r.value(vars(m)[attr], f"{mname}.__dict__.get({attr!r}, MISSING)", f"{n}.{attr}", 1)


def reach(fn: Any, holders: dict[int, Any]) -> Reach:
    """Walk `fn` and the plain-object arguments `holders` (position -> object)."""
    r = Reach()
    r.function(fn, getattr(fn, "__qualname__", "fn"))
    module_attrs(r, getattr(fn, "__func__", fn))
    for i, h in holders.items():
        r.value(h, f"args[{i}]", f"argument {i}", 1)
    r.finish()
    return r
