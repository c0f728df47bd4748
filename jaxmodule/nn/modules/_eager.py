"""Fast eager mode: an uncompiled call of a pure layer runs one cached `jax.jit` program.

Eagerly, every `jax.numpy` op in a forward is a separate dispatch (tens of microseconds each), and
under eager autodiff (`jaxmodule.backward`, `jaxmodule.grad`) some ops (`lax.scan` in the RNNs)
are even lowered again on every call. A layer whose forward is a pure function of its arrays, its
inputs and its plain attributes declares so next to its class with `register_pure_forward`; then
`Module.__call__` (no hooks registered) runs that forward through one module-level `jax.jit`,
passing the module as a pytree. jit's own cache is keyed by the module's treedef (class, plain
attributes such as `training` or `eps`, parameter flags: `_pytree.ModuleTreeDef`), the input
shapes and dtypes, and the autocast state (a static argument). The module itself is never stored:
the cache keeps no module alive.

Your own module classes need no declaration: a class defined outside jaxmodule is an AUTO class
on its first eager call (`_classify`), and every program traced for it runs under
`_purity.Checker`, which refuses the class *before* its first Python side effect (a print, an
attribute set, appending to a list it does not own, `time.time()`, a global array read, ...):
then it joins PLAIN and runs op by op, so every effect happens once per call, as in torch. The
immutable globals and class attributes its code read (numbers, strings) join the cache key
(`GUARDS`), so rebinding one is seen on the next call. A whole block (attention, MLP, the
model) becomes one program per input shape when every module inside it is registered or AUTO.
`@jaxmodule.nn.utils.pure_forward`
declares a class pure without the check (its side effects then happen only while tracing),
`@jaxmodule.nn.utils.plain_forward` keeps it plain; `JAXMODULE_EAGER_JIT=declared` or
`set_auto_pure(False)` turns the automatic check off. `REJECTED` keeps why each class was refused.
A plain object held in an attribute (a config) keys the cache by identity (or value, if
hashable), so a field changed in place after a program was traced is not seen; assigning a new
object retraces.

The cached program is used only when all of these hold, else the plain forward runs:

- the switch is on: `JAXMODULE_EAGER_JIT=0` in the environment (read at import) turns it off,
  `set_eager_jit(False)` at runtime;
- the exact class registered or AUTO (a subclass of a built-in layer that only changes
  `__init__` takes that layer's `when` test; one with its own `forward` is checked as AUTO) and
  its `when` test passes (BatchNorm only when it updates no statistics), and the same for every
  submodule, none of which has hooks (value checks of a submodule's arguments, such as
  Embedding's index range, are skipped inside the parent's program, as in a compiled step); a
  module that draws now (`DRAWS`: Dropout in training) makes the program take the generator's
  key and return the advanced one, which happens only eagerly or in an eager backward's loss
  trace (under other autodiff such a tree runs plainly);
- `forward` is not replaced on the instance (nor on a submodule);
- the call is eager, or eager autodiff over eager values (`jax.grad` of a function calling the
  layer): under `jax.jit`, `jaxmodule.compile`, `vmap` or `eval_shape` the outer trace takes the
  layer as it always did;
- every array leaf of the arguments is a `jax.Array` (Python numbers, numpy arrays and other
  objects keep their eager meaning) and every cell holds a real array (not the meta device).

Declarations are checked when a program is traced: a forward that writes any cell (a buffer, a
KV cache), sets a module attribute (`self.calls += 1`), draws random numbers (the generator is a
cell) or reads a cell that is not its own (a global Parameter, which the program would freeze)
is not a pure forward; its class is dropped
from the registry (with a warning for classes declared outside jaxmodule) and runs plainly. A
trace failure falls back to the plain forward (which raises a user error as it always did); a
class whose forward reads concrete values (a JAX tracer error) is not tried again.

>>> import jax.numpy as jnp
>>> from jaxmodule import nn
>>> from jaxmodule.nn.modules import _eager
>>> layer = nn.Linear(3, 2)
>>> fast = layer(jnp.ones((1, 3)))
>>> previous = _eager.set_eager_jit(False)
>>> bool(jnp.allclose(fast, layer(jnp.ones((1, 3)))))
True
>>> _eager.set_eager_jit(previous)
False
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import jax
from jax._src.core import EvalTrace, trace_ctx  # whether the call is eager (no public API)

from ... import _structure
from ..._dtype import get_default_dtype
from ..._grad_mode import is_grad_enabled
from ..._random import default_generator
from ..._replay import is_replay_trace
from ..._swap import recording
from ...amp import autocast_mode
from ..functional._eager_jit import (
    ENABLED,
    all_arrays,
    eager_trace,
    is_eager_jit_enabled,
    set_eager_jit,
)
from . import _purity, _pytree
from ._purity import refuse_calls

__all__ = [
    "ENABLED",
    "RULES",
    "TREE_ONLY",
    "CHECKS",
    "SKIP",
    "AUTO",
    "PLAIN",
    "REJECTED",
    "register_pure_forward",
    "pure_forward",
    "plain_forward",
    "set_auto_pure",
    "set_eager_jit",
    "is_eager_jit_enabled",
    "call",
]

# `ENABLED` (one flag `Module._call_impl` reads per call), `set_eager_jit` and
# `is_eager_jit_enabled` are the switch shared with the functionals (`nn/functional/_eager_jit.py`).

# What `call` returns when the plain forward must run.
SKIP = object()

# Exact class -> its `when` test, or None (always). Exact, so that a subclass with its own forward
# (which may print, append, write state) is never cached.
RULES: dict[type, Callable[[Any], bool] | None] = {}

# Registered classes cached only as part of a declared-pure parent, never called alone: Identity
# (returns its input object itself, as torch's does) and holders without a forward (ModuleList).
TREE_ONLY: set[type] = set()

# Class -> `draws(module)`: the module draws from the default generator now (Dropout in training).
# Inside a cached program such draws are allowed: the generator's key is an argument of the
# program and the advanced key an output, so the stream is the plain path's, bit for bit.
DRAWS: dict[type, Callable[[Any], bool]] = {}

# Class -> the eager argument check its forward makes on concrete values (Embedding's index range),
# run before the cached program of a call of that module itself (inside a declared-pure parent's
# program such checks are skipped, as in a compiled step).
CHECKS: dict[type, Callable[[Any, tuple, dict], None]] = {}

# User classes in RULES because they were not declared but every trace of them is checked for
# Python side effects (`_purity.Checker`): see "Your own classes" in the module docstring.
AUTO: set[type] = set()

# Classes whose calls always run plainly: judged not cacheable (a jaxmodule class without a
# declaration, a refused or `plain_forward` class). `Module._call_impl` asks `call` about any class
# not in this set: one set lookup per call.
PLAIN: set[type] = set()

# Classes refused, with the reason (a side effect, a cell write, a trace error, `plain_forward`).
REJECTED: dict[type, str] = {}

# Whether undeclared user classes are tried (`JAXMODULE_EAGER_JIT=declared` turns that off).
AUTO_ENABLED = [os.environ.get("JAXMODULE_EAGER_JIT", "1") != "declared"]

# Structures (module treedefs: class, attributes such as `training`, children) of AUTO classes
# whose traced forward wrote a cell, drew random numbers or read a foreign cell: that depends on
# the mode (`F.dropout(x, p, self.training)` draws only in training), so only the structure runs
# plainly. Bounded.
_PLAIN_TREES: set[Any] = set()

# Auto class -> how many of its traces failed with an ordinary error (refused at 3).
_FAILURES: dict[type, int] = {}

# Auto class -> the immutable globals and class attributes its traces read, as
# (namespace, name, is_dict), whose values join the cache key.
GUARDS: dict[type, tuple[tuple[Any, str, bool], ...]] = {}

# Moves whenever a class enters or leaves RULES, so that verified trees are checked again.
_RULES_VERSION = [0]

# Modules with submodules whose whole tree passed the checks: the structure counter and rules
# version then (any hook, mode, attribute or registration change moves them), and whether a class
# in it is checked automatically. Weak: keeps no module alive.
_VERIFIED: weakref.WeakKeyDictionary[Any, tuple[int, int, tuple[bool, bool]]] = (
    weakref.WeakKeyDictionary()
)

T = TypeVar("T", bound=type)


def _check_classes(name: str, classes: tuple) -> None:
    for cls in classes:
        if not isinstance(cls, type) or not callable(getattr(cls, "forward", None)):
            raise TypeError(f"{name}: expected Module classes with a forward, got {cls!r}")


def register_pure_forward(
    *classes: type,
    when: Callable[[Any], bool] | None = None,
    alone: bool = True,
    check: Callable[[Any, tuple, dict], None] | None = None,
    draws: Callable[[Any], bool] | None = None,
) -> None:
    """Declare each class's `forward` (its own or inherited) a pure function of the module's
    arrays, its inputs and its plain attributes: it writes no cell, draws no random numbers, reads
    no concrete values and has no Python side effects; optionally only while `when(module)` is
    true. Subclasses are not covered: each class registers itself. `alone=False`: pure inside a
    declared-pure parent, but a call of the module itself is never cached. `check(module, args,
    kwargs)`: the forward's checks of concrete argument values, run eagerly before the cached
    program (they raise the forward's error). `draws(module)`: the forward draws from the default
    generator now; the program then takes and returns the generator's key (only in an eager call
    or the loss trace of an eager backward, not under other autodiff).

    >>> from jaxmodule.nn.modules import _eager
    >>> from jaxmodule import nn
    >>> class Scale(nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x
    >>> _eager.register_pure_forward(Scale)
    >>> Scale in _eager.RULES
    True
    """
    _check_classes("register_pure_forward", classes)
    for cls in classes:
        RULES[cls] = when
        AUTO.discard(cls)
        PLAIN.discard(cls)
        REJECTED.pop(cls, None)
        if not alone:
            TREE_ONLY.add(cls)
        if check is not None:
            CHECKS[cls] = check
        if draws is not None:
            DRAWS[cls] = draws
    _RULES_VERSION[0] += 1


def pure_forward(cls: T) -> T:
    """Class decorator: eager calls of this module run one cached `jax.jit` program per input
    shape (see `register_pure_forward` for what "pure" promises, and the module docstring).

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> @nn.utils.pure_forward
    ... class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 4)
    ...     def forward(self, x):
    ...         return x + jnp.tanh(self.fc(x))
    >>> Block()(jnp.ones((2, 4))).shape
    (2, 4)
    """
    register_pure_forward(cls)
    return cls


def plain_forward(cls: T) -> T:
    """Class decorator: eager calls of this module always run its forward op by op, never as a
    cached program (for a forward whose effects the automatic check cannot see, e.g. a C
    extension that keeps state).

    >>> from jaxmodule import nn
    >>> from jaxmodule.nn.modules import _eager
    >>> @nn.utils.plain_forward
    ... class Counter(nn.Module):
    ...     def forward(self, x):
    ...         return x
    >>> Counter in _eager.PLAIN
    True
    """
    _check_classes("plain_forward", (cls,))
    _refuse(cls, "declared with plain_forward", warn=False)
    return cls


def set_auto_pure(enabled: bool) -> bool:
    """Whether undeclared user classes are tried as cached programs (each trace checked for side
    effects); returns the previous setting. Off: only built-in layers and declared classes.

    >>> from jaxmodule.nn.modules import _eager
    >>> previous = _eager.set_auto_pure(False)
    >>> _eager.set_auto_pure(previous)
    False
    """
    previous = AUTO_ENABLED[0]
    AUTO_ENABLED[0] = bool(enabled)
    for cls in AUTO:
        RULES.pop(cls, None)
    AUTO.clear()
    PLAIN.difference_update([c for c in PLAIN if c not in REJECTED])
    _RULES_VERSION[0] += 1
    return previous


def _refuse(cls: type, reason: str, warn: bool) -> None:
    """Run `cls` plainly from now on (`reason` kept in REJECTED), warning if asked."""
    RULES.pop(cls, None)
    AUTO.discard(cls)
    PLAIN.add(cls)
    REJECTED[cls] = reason
    _RULES_VERSION[0] += 1
    if warn and not cls.__module__.startswith("jaxmodule."):
        warnings.warn(
            f"{reason}: it is not a pure forward, so its eager calls run op by op "
            "(see jaxmodule.nn.utils.pure_forward)",
            stacklevel=4,
        )


def _classify(cls: type) -> bool:
    """First call of a class not in RULES: a user class (its forward, or a method its inherited
    jaxmodule forward calls, is user code) joins RULES as an AUTO class, with the `when` test of a
    registered jaxmodule class it inherits its forward from; anything else joins PLAIN."""
    owner = next((c for c in cls.__mro__ if "forward" in c.__dict__), None)
    if (
        owner is None
        or cls in REJECTED
        or not AUTO_ENABLED[0]
        or cls.__module__.startswith("jaxmodule.")
        or (owner.__module__.startswith("jaxmodule.") and owner not in RULES)
    ):
        PLAIN.add(cls)
        return False
    RULES[cls] = RULES.get(owner)
    AUTO.add(cls)
    if owner in TREE_ONLY:
        TREE_ONLY.add(cls)
    if owner in CHECKS:
        CHECKS[cls] = CHECKS[owner]
    _RULES_VERSION[0] += 1
    return True


class _NotPure(Exception):
    """Raised while tracing a declared-pure forward that reached state outside its own arrays."""


def _apply(module: Any, args: tuple, kwargs: dict, key: tuple, gen: Any) -> tuple:
    """The traced body of a cached call. `key` (static: autocast state, whether to check for side
    effects, and for checked classes the guarded globals' values, the default dtype and the grad
    mode) only keys the cache: the forward reads the live state."""
    own = {id(c) for c in _pytree.module_cells(module)[0]}
    if gen is not None:  # the generator's key is an argument: drawing is reading and writing it
        own.add(id(default_generator))
        previous, default_generator._value = default_generator._value, gen
    structure = _structure.counters.structure
    with recording(every=True) as rec:  # runs only while jit traces: the check costs no call
        try:
            if key[1]:
                held = ([m.__dict__ for m in module.modules()], args, kwargs)
                with _purity.Checker(held) as checker:
                    out = module.forward(*args, **kwargs)
                if not all(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(out)):
                    raise _NotPure(f"{type(module).__qualname__}.forward returns non-array values")
                known = {(id(g[0]), g[1]): g for g in GUARDS.get(type(module), ())}
                GUARDS[type(module)] = tuple({**known, **checker.guards}.values())
            else:
                out = module.forward(*args, **kwargs)
        except Exception as e:  # e.g. the generator refusing a draw inside jit
            _check_pure(module, rec, own, structure, e, gen is not None)
            raise
        finally:
            if gen is not None:
                gen, default_generator._value = default_generator._value, previous
    _check_pure(module, rec, own, structure, None, gen is not None)
    return out, gen


def _check_pure(
    module: Any,
    rec: Any,
    own: set[int],
    structure: int,
    cause: Exception | None,
    drawing: bool = False,
) -> None:
    """Raise `_NotPure` if the traced forward set a module attribute (the structure counter
    moved), wrote a cell or read one outside the module (`drawing`: the generator's key is the
    program's argument and output, so drawing from it is allowed)."""
    if _structure.counters.structure != structure:
        raise _NotPure(f"{type(module).__qualname__}.forward sets module attributes") from cause
    foreign = [c for i, c in rec.touched.items() if i not in own and i not in rec.created]
    written = [i for i in rec.written if not (drawing and i == id(default_generator))]
    if written or foreign:
        kinds = {type(c).__name__ for c in foreign}
        what = (
            "draws random numbers"
            if "Generator" in kinds
            else "writes state"
            if written
            else f"reads a {type(foreign[0]).__name__} that is not its own"
        )
        raise _NotPure(f"{type(module).__qualname__}.forward {what}") from cause


_JITTED = jax.jit(_apply, static_argnums=(3,))  # (module, args, kwargs, key, generator key)


def _tree_check(module: Any) -> tuple[bool, bool] | None:
    """None unless every submodule is registered or an AUTO class (its `when` passing), without
    hooks or an instance forward, and at least one of them computes (a Sequential of Identity or
    eval Dropout returns its input object itself, as torch's does); else whether any class in the
    tree is AUTO (its trace is then checked for side effects) and whether any draws now (`DRAWS`).
    Cached per structure and rules version."""
    seen = _VERIFIED.get(module)
    if seen is not None and seen[:2] == (_structure.counters.structure, _RULES_VERSION[0]):
        return seen[2]
    if all(type(m) in TREE_ONLY for m in module.modules() if m is not module):
        return None
    for m in module.modules():
        cls = type(m)
        when = RULES.get(cls)
        if (
            (cls not in RULES and (cls in PLAIN or not _classify(cls)))
            or (when is not None and not when(m))
            or "forward" in m.__dict__
            or (
                m is not module
                and (
                    m._forward_hooks
                    or m._forward_pre_hooks
                    or m._backward_hooks
                    or m._backward_pre_hooks
                )
            )
        ):
            return None
    modules = list(module.modules())
    verdict = (
        any(type(m) in AUTO for m in modules),
        any(type(m) in DRAWS and DRAWS[type(m)](m) for m in modules),
    )
    _VERIFIED[module] = (_structure.counters.structure, _RULES_VERSION[0], verdict)
    return verdict


def call(module: Any, args: tuple, kwargs: dict) -> Any:
    """The output of the cached jit program for `module(*args, **kwargs)`, or `SKIP` when the
    conditions in the module docstring do not hold; then (and after a failed trace) the caller
    runs the plain forward, which raises a user error as it would eagerly. `Module._call_impl`
    calls this only for a registered class with no hooks registered."""
    cls = type(module)
    if cls not in RULES and not _classify(cls):
        return SKIP
    if module._modules:
        verdict = None if cls in TREE_ONLY else _tree_check(module)
        if verdict is None:
            return SKIP
        auto, draws = verdict
    else:
        when = RULES.get(cls)
        if (
            cls in TREE_ONLY
            or (when is not None and not when(module))
            or "forward" in module.__dict__
        ):
            return SKIP
        auto = cls in AUTO
        draws = cls in DRAWS and DRAWS[cls](module)
    if (
        not eager_trace()
        or (auto and _PLAIN_TREES and _pytree.module_cells(module)[1] in _PLAIN_TREES)
        or not all_arrays((args, kwargs))
        or not all(isinstance(c._value, jax.Array) for c in _pytree.module_cells(module)[0])
    ):
        return SKIP
    gen = None
    if draws:  # the key in and out: only eagerly or in an eager backward's loss trace
        if not (type(trace_ctx.trace) is EvalTrace or is_replay_trace()):
            return SKIP  # under other autodiff the new key could be a tracer
        gen = default_generator._value
    check = CHECKS.get(cls)
    if check is not None:
        check(module, args, kwargs)
    if auto:
        guards = GUARDS.get(cls, ())
        key: tuple = (
            autocast_mode.state(),
            True,
            tuple(
                ns.get(name) if is_dict else getattr(ns, name, None) for ns, name, is_dict in guards
            ),
            get_default_dtype(),
            is_grad_enabled(),  # a user forward may branch on it
        )
    else:
        key = (autocast_mode.state(), False)
    try:
        out, new_key = _JITTED(module, args, kwargs, key, gen)
        if gen is not None:
            default_generator._value = new_key
        return out
    except _NotPure as e:
        if auto:  # state use depends on the mode and attributes: refuse this structure only
            if len(_PLAIN_TREES) >= 256:
                _PLAIN_TREES.clear()
            _PLAIN_TREES.add(_pytree.module_cells(module)[1])
            REJECTED[cls] = str(e)
        else:
            _refuse(cls, str(e), warn=True)
    except _purity.SideEffect as e:
        _refuse(cls, str(e), warn=False)
    except jax.errors.JAXTypeError as e:  # the forward reads concrete values: never try again
        _refuse(
            cls, f"{cls.__qualname__}.forward reads concrete values ({type(e).__name__})", False
        )
    except Exception as e:  # noqa: S110 - the plain forward raises the user's error with its eager traceback
        if auto:  # a user error (a wrong shape) may be fixed; a class failing thrice is refused
            _FAILURES[cls] = _FAILURES.get(cls, 0) + 1
            if _FAILURES[cls] >= 3:
                reason = f"{cls.__qualname__}.forward failed to trace ({type(e).__name__})"
                _refuse(cls, reason, False)
    return SKIP


refuse_calls(set_eager_jit, set_auto_pure, register_pure_forward)  # a forward switching the cache
