"""Finding Python side effects in a user's forward while it is traced, before they happen.

The eager cache (`_eager.py`) runs a module's forward as one cached `jax.jit` program. Inside a
program, Python runs only while tracing, so a forward with Python side effects (a print, a log
line, appending to a list the module keeps, a counter, `time.time()`, Python's `random`) would
behave differently from torch eager. The built-in layers are declared pure; a user's own classes
are checked by `Checker` instead, once per traced program, with `sys.setprofile` watching every
Python frame of *user code*: any code outside jaxmodule, jax and the packages jax runs on
(jaxlib, numpy, ml_dtypes, opt_einsum, scipy); the standard library and exec-generated code
(dataclass and namedtuple methods) count as the code that called them:

- on entering a user function, its bytecode is scanned (once per code object): a store to an
  attribute (`self.calls += 1`, `obj.x = ...`), a global (`global n`), a closure variable
  (`nonlocal`) or an item (`d[k] = v`, which could be a container the module keeps) refuses it;
  a closed-over array refuses it, closed-over containers are watched like globals;
- every global it reads must be a module, a function, a class, or an immutable value (numbers,
  strings, tuples of them): such values become part of the program's cache key (a rebound flag is
  seen on the next call); a global array or list, which a program would freeze, refuses it; the
  same for class attributes read through `self` (`scale = 2.0` in the class body);
- every C function it calls must be known to be free of effects: `len`, `isinstance`, `math`,
  `operator`, jax and numpy (not `numpy.random`), the methods of immutable values, and the
  methods of lists, dicts and sets, where a mutating method (`append`, `update`, `pop`, ...) is
  allowed only on a container the forward created itself (not one the module, a global or an
  argument holds); `print`, `warnings.warn`, `time.time`, `random.random`, file I/O are refused;
- a call from user code into jaxmodule of a function that changes global state or a module or
  optimizer (`manual_seed`, `save`, `set_default_dtype`, `Module.to`, `Optimizer.step`, ...:
  each defining module registers them with `refuse_calls`) is refused.

The cyclic garbage collector is paused while checking (a finalizer is not the forward's code),
and a refusal the forward swallows (`try: print(x) except Exception: pass`) still refuses the
class when the check ends.

A refusal raises `SideEffect` from the profile hook *before* the offending call or function body
runs, so nothing happens twice when the forward then runs plainly. What the checker cannot see:
effects through C extension objects it allowlists by package (jax, numpy), an in-place operator
on a numpy array the module holds reached through a local name, `next()` on an iterator the module
holds, and new values of immutable closure variables (read as they are when the program is
traced); `nn.utils.plain_forward` keeps such a class op by op.

>>> from jaxmodule.nn.modules import _purity
>>> def quiet(x):
...     return [x, x]
>>> def loud(x):
...     print(x)
>>> with _purity.Checker(()) as c:
...     _ = quiet(1)
>>> c.error is None
True
>>> try:
...     with _purity.Checker(()) as c:
...         loud(1)
... except _purity.SideEffect as e:
...     print(e)
loud calls print
"""

from __future__ import annotations

import builtins
import collections
import dis
import enum
import gc
import importlib.util
import os
import sys
import sysconfig
import types
from typing import Any

import jax
import numpy as np

__all__ = ["SideEffect", "Checker", "EFFECT_CODES", "refuse_calls"]


class SideEffect(Exception):
    """A user forward, traced for the eager cache, would have a Python side effect."""


_JAXMODULE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _trusted_dirs() -> tuple[str, ...]:
    """jaxmodule, jax and the packages jax runs on (their own code is not the user's)."""
    dirs = [_JAXMODULE_DIR + os.sep]
    for name in ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            dirs.append(os.path.dirname(os.path.abspath(spec.origin)) + os.sep)
    return (*dirs, "<frozen ")  # and the import machinery


_TRUSTED = _trusted_dirs()
_STDLIB = tuple(
    {os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib")}
)
_TRUSTED_CODE, _BORROWED_CODE, _USER_CODE = 0, 1, 2
_KIND: dict[types.CodeType, int] = {}


def _kind(code: types.CodeType) -> int:
    """Trusted packages; the standard library and exec-generated code (dataclass and namedtuple
    methods), which take the kind of their caller; or user code."""
    kind = _KIND.get(code)
    if kind is None:
        name = code.co_filename
        if name.startswith(_TRUSTED):
            kind = _TRUSTED_CODE
        elif name == "<string>" or (
            name.startswith(_STDLIB) and "site-packages" not in name and "dist-packages" not in name
        ):
            kind = _BORROWED_CODE
        else:
            kind = _USER_CODE
        if len(_KIND) > 65536:
            _KIND.clear()
        _KIND[code] = kind
    return kind


def _is_user(frame: types.FrameType | None) -> bool:
    """Whether `frame` runs user code: its own, or borrowed code (see `_kind`) user code called."""
    while frame is not None:
        kind = _kind(frame.f_code)
        if kind != _BORROWED_CODE:
            return kind == _USER_CODE
        frame = frame.f_back
    return True


def _qualname(code: types.CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)  # Python 3.11+


# Opcodes that write somewhere a later call could see (STORE_DEREF only to a free variable).
_WRITES = {
    dis.opmap[name]
    for name in (
        "STORE_ATTR",
        "DELETE_ATTR",
        "STORE_GLOBAL",
        "DELETE_GLOBAL",
        "STORE_SUBSCR",
        "DELETE_SUBSCR",
        "STORE_SLICE",
    )
    if name in dis.opmap
}
_DEREF_WRITES = {dis.opmap[n] for n in ("STORE_DEREF", "DELETE_DEREF")}
_WHAT = {
    "STORE_ATTR": "sets an attribute",
    "DELETE_ATTR": "deletes an attribute",
    "STORE_GLOBAL": "assigns a global",
    "DELETE_GLOBAL": "deletes a global",
    "STORE_SUBSCR": "assigns an item",
    "DELETE_SUBSCR": "deletes an item",
    "STORE_SLICE": "assigns a slice",
    "STORE_DEREF": "assigns a nonlocal variable",
    "DELETE_DEREF": "deletes a nonlocal variable",
}
_LOAD_GLOBAL = dis.opmap["LOAD_GLOBAL"]
_LOAD_FAST = dis.opmap["LOAD_FAST"]
_LOAD_ATTRS = {dis.opmap[n] for n in ("LOAD_ATTR", "LOAD_METHOD") if n in dis.opmap}


class _Scan:
    """What one code object's bytecode shows: the first store found (or None), the global names
    it reads, and the attribute names it reads from its first argument (`self.x`)."""

    __slots__ = ("bad", "globals", "self_attrs")

    def __init__(self, bad: str | None, globals_: tuple[str, ...], self_attrs: tuple[str, ...]):
        self.bad, self.globals, self.self_attrs = bad, globals_, self_attrs


_SCANNED: dict[types.CodeType, _Scan] = {}


def _scan(code: types.CodeType) -> _Scan:
    found = _SCANNED.get(code)
    if found is not None:
        return found
    bad = None
    names: dict[str, None] = {}
    attrs: dict[str, None] = {}
    after_self = False
    for ins in dis.get_instructions(code):
        op = ins.opcode
        if op in _WRITES or (op in _DEREF_WRITES and ins.argval in code.co_freevars):
            line = getattr(getattr(ins, "positions", None), "lineno", None)
            bad = f"{_WHAT[ins.opname]} ({ins.argval!r}, line {line})"
            break
        if op == _LOAD_GLOBAL:
            names[ins.argval] = None
        elif op in _LOAD_ATTRS and after_self:
            attrs[ins.argval] = None
        after_self = op == _LOAD_FAST and code.co_argcount > 0 and ins.arg == 0
    if len(_SCANNED) > 4096:
        _SCANNED.clear()
    found = _SCANNED[code] = _Scan(bad, tuple(names), tuple(attrs))
    return found


_IMMUTABLE = (
    int,
    float,
    complex,
    bool,
    str,
    bytes,
    type(None),
    range,
    np.dtype,
    np.generic,
    enum.Enum,
)
_CONSTANT_KINDS: tuple[type, ...] = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
)


def _is_value_constant(v: Any) -> bool:
    """An immutable value a program may bake in (numbers, strings, tuples and frozensets of them,
    enum members)."""
    if isinstance(v, _IMMUTABLE):
        return True
    return isinstance(v, (tuple, frozenset)) and all(_is_value_constant(x) for x in v)


_SAFE_BUILTINS = {
    id(f)
    for f in (
        len,
        isinstance,
        issubclass,
        getattr,
        hasattr,
        min,
        max,
        abs,
        round,
        sum,
        any,
        all,
        divmod,
        pow,
        sorted,
        iter,
        next,
        callable,
        format,
        repr,
        ascii,
        chr,
        ord,
        hash,
        builtins.__import__,
        locals,
        dir,
    )
}
_SAFE_C_MODULES = {
    "math",
    "cmath",
    "_operator",
    "operator",
    "itertools",
    "_functools",
    "functools",
    "_abc",  # isinstance against an ABC
}
_IMMUTABLE_SELF = (str, bytes, tuple, int, float, complex, bool, frozenset, range, slice)
_CONTAINERS = (list, dict, set, bytearray, collections.deque)
_READERS = {
    "get",
    "keys",
    "values",
    "items",
    "index",
    "count",
    "copy",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
    "__getitem__",
    "__contains__",
    "__len__",
    "__iter__",
    "__reversed__",
    "fromkeys",
    "__class_getitem__",
    "__sizeof__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__or__",
    "__and__",
    "__sub__",
    "__xor__",
    "__hash__",
    "__format__",
    "__repr__",
    "__str__",
    "__reduce__",
    "__reduce_ex__",
    "__getattribute__",
    "__dir__",
}
_NUMPY_WRITERS = {
    "fill",
    "put",
    "itemset",
    "resize",
    "sort",
    "partition",
    "setflags",
    "copyto",
    "place",
    "putmask",
    "setfield",
    "tofile",
    "dump",
}
_SAFE_C_PACKAGES = ("jax", "jaxlib", "numpy", "ml_dtypes", "jaxmodule")

# The code of jaxmodule's functions and methods that change global state or a module or optimizer
# (`manual_seed`, `save`, `Module.to`, `Optimizer.step`, ...): refused when user code calls them.
# Each defining module registers its own with `refuse_calls` (this file imports no jaxmodule).
EFFECT_CODES: set[types.CodeType] = set()


def refuse_calls(*fns: Any) -> None:
    """Register functions (or classes, by their `__init__`) a checked forward may not call.

    >>> from jaxmodule.nn.modules import _purity
    >>> def reset_everything():
    ...     pass
    >>> _purity.refuse_calls(reset_everything)
    >>> reset_everything.__code__ in _purity.EFFECT_CODES
    True
    """
    for f in fns:
        f = getattr(f, "__init__") if isinstance(f, type) else f  # noqa: B009 - a class: its __init__
        code = getattr(f, "__code__", None)
        if code is None:
            raise TypeError(f"refuse_calls: expected functions, got {f!r}")
        EFFECT_CODES.add(code)


_MISSING = object()
_MODULE_DICTS = ("_parameters", "_buffers", "_modules")


class Checker:
    """`with Checker(held):` around a trace: raises `SideEffect` at the first effect of user
    code (see the module docstring). `held`: containers reachable from outside the forward (the
    module tree's attributes, the arguments), which user code may read but not mutate. After the
    block, `guards` lists the immutable globals and class attributes read, as
    `(namespace, name, is_dict)`: `namespace.get(name)` for a globals dict, `getattr` for a
    class."""

    def __init__(self, held: Any) -> None:
        self._held_roots = held
        self._held: tuple[tuple[int, int], set[int]] | None = None
        self._globals: dict[int, dict] = {}
        self._closed: list[Any] = []  # closure variables' values seen
        self.guards: dict[tuple[int, str], tuple[Any, str, bool]] = {}
        self.error: str | None = None
        self._previous: Any = None
        self._gc = False

    def __enter__(self) -> Checker:
        # the cyclic GC's callbacks and finalizers are not the forward's code: no collection
        # runs while checking (a finalizer would otherwise be refused, and an error in the hook
        # unsets it)
        self._gc = gc.isenabled()
        gc.disable()
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(self._previous)
        if self._gc:
            gc.enable()
        if self.error is not None and exc[0] is None:  # refused where the error was swallowed
            raise SideEffect(self.error)

    # ---- the hook -----------------------------------------------------------------------------
    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if _is_user(frame):
                self._enter(frame, code)
            elif code in EFFECT_CODES:
                caller = frame.f_back
                if caller is not None and _is_user(caller):
                    self._fail(caller.f_code, f"calls {_qualname(code)}")
        elif event == "c_call" and _is_user(frame):
            self._c_call(frame, arg)

    def _fail(self, code: types.CodeType, what: str) -> None:
        self.error = f"{_qualname(code)} {what}"
        raise SideEffect(self.error)

    def _enter(self, frame: types.FrameType, code: types.CodeType) -> None:
        scan = _scan(code)
        if scan.bad is not None:
            self._fail(code, scan.bad)
        g = frame.f_globals
        self._globals[id(g)] = g
        if scan.self_attrs:
            self._class_attributes(frame, code, scan.self_attrs)
        for name in scan.globals:
            if name in g:
                v = g[name]
            elif hasattr(builtins, name):
                continue
            else:
                continue  # a NameError when the code runs
            if (isinstance(v, _CONSTANT_KINDS) or callable(v)) and not isinstance(
                v, (jax.Array, np.ndarray)
            ):
                continue
            if _is_value_constant(v):
                self.guards[(id(g), name)] = (g, name, True)
                continue
            self._fail(code, f"reads the global {name!r}, a {type(v).__name__} it could change")
        if code.co_freevars:  # closure variables: read as they are now (no guard)
            local = frame.f_locals
            for name in code.co_freevars:
                v = local.get(name)
                if isinstance(v, (jax.Array, np.ndarray)):
                    self._fail(code, f"reads the closure variable {name!r}, an array")
                self._closed.append(v)

    def _class_attributes(
        self, frame: types.FrameType, code: types.CodeType, names: tuple[str, ...]
    ) -> None:
        """`self.x` where x is a class attribute (`scale = 2.0` in the class body): not part of
        the module's cache key, so an immutable one is guarded (a new value on the class is seen
        on the next call) and a mutable one (a list, a dict) refuses the forward."""
        obj = frame.f_locals.get(code.co_varnames[0])
        d = getattr(obj, "__dict__", None)
        if d is None or isinstance(obj, type):
            return
        cls = type(obj)
        for name in names:
            if name in d or any(name in (d.get(k) or ()) for k in _MODULE_DICTS):
                continue
            v = getattr(cls, name, _MISSING)
            if v is _MISSING or callable(v) or hasattr(v, "__get__"):
                continue  # methods and descriptors: their code is checked when it runs
            if _is_value_constant(v):
                self.guards[(id(cls), name)] = (cls, name, False)
                continue
            self._fail(code, f"reads the class attribute {name!r}, a {type(v).__name__}")

    def _c_call(self, frame: types.FrameType, fn: Any) -> None:
        owner = getattr(fn, "__self__", None)
        name = getattr(fn, "__name__", "")
        if owner is None or isinstance(owner, types.ModuleType):
            module = getattr(owner, "__name__", None) or getattr(fn, "__module__", None) or ""
            if module == "builtins":
                if id(fn) in _SAFE_BUILTINS:
                    return
            elif module in _SAFE_C_MODULES:
                return
            elif module.split(".")[0] in _SAFE_C_PACKAGES and ".random" not in module:
                if name not in _NUMPY_WRITERS:
                    return
            objclass = getattr(fn, "__objclass__", None)  # an unbound method descriptor
            if objclass is not None and (issubclass(objclass, _IMMUTABLE_SELF) or name in _READERS):
                return
            prefix = "" if module in ("", "builtins") else module + "."
            self._fail(frame.f_code, f"calls {prefix}{name}")
        if isinstance(owner, _IMMUTABLE_SELF):
            return
        if isinstance(owner, type):  # a class method of a built-in, jax or numpy class
            if owner.__module__.split(".")[0] in ("builtins", *_SAFE_C_PACKAGES):
                return
            self._fail(frame.f_code, f"calls {owner.__qualname__}.{name}")
        if isinstance(owner, _CONTAINERS):
            if name in _READERS or id(owner) not in self._held_ids():
                return
            self._fail(
                frame.f_code, f"calls {type(owner).__name__}.{name} on a container it does not own"
            )
        package = type(owner).__module__.split(".")[0]
        if package in _SAFE_C_PACKAGES and not type(owner).__module__.startswith("numpy.random"):
            if name not in _NUMPY_WRITERS:
                return
        self._fail(frame.f_code, f"calls {type(owner).__qualname__}.{name}")

    def _held_ids(self) -> set[int]:
        """Ids of the containers reachable from the module tree, the arguments and the globals of
        the user code seen so far (two levels deep)."""
        if self._held is not None and self._held[0] == (len(self._globals), len(self._closed)):
            return self._held[1]
        held: set[int] = set()

        def add(v: Any, depth: int) -> None:
            if isinstance(v, _CONTAINERS) and id(v) not in held:
                held.add(id(v))
                if depth:
                    for x in v.values() if isinstance(v, dict) else v:
                        add(x, depth - 1)
            elif isinstance(v, tuple) and depth:
                for x in v:
                    add(x, depth - 1)

        add(self._held_roots, 3)
        for g in self._globals.values():
            for v in g.values():
                add(v, 1)
        for v in self._closed:
            add(v, 1)
        self._held = ((len(self._globals), len(self._closed)), held)
        return held
