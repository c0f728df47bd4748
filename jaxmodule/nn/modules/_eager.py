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

Your own module classes can declare themselves too (`@jaxmodule.nn.utils.pure_forward`, the same
function): then a whole block (attention, MLP, the model) is one program per input shape, as long
as every module inside it is declared pure as well (the built-in layers are). Python side effects
in such a forward (a print, appending to a list) then happen only when a new program is traced:
declare only forwards without them.

The cached program is used only when all of these hold, else the plain forward runs:

- the switch is on: `JAXMODULE_EAGER_JIT=0` in the environment (read at import) turns it off,
  `set_eager_jit(False)` at runtime;
- the exact class registered (a subclass that overrides `forward` is not trusted) and its `when`
  test passes (Dropout only when it draws nothing, BatchNorm only when it updates no statistics),
  and the same for every submodule, none of which has hooks (value checks of a submodule's
  arguments, such as Embedding's index range, are skipped inside the parent's program, as in a
  compiled step);
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

import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import jax

from ... import _structure
from ..._swap import recording
from ...amp import autocast_mode
from ..functional._eager_jit import (
    ENABLED,
    all_arrays,
    eager_trace,
    is_eager_jit_enabled,
    set_eager_jit,
)
from . import _pytree

__all__ = [
    "ENABLED",
    "RULES",
    "TREE_ONLY",
    "CHECKS",
    "SKIP",
    "register_pure_forward",
    "pure_forward",
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

# Class -> the eager argument check its forward makes on concrete values (Embedding's index range),
# run before the cached program of a call of that module itself (inside a declared-pure parent's
# program such checks are skipped, as in a compiled step).
CHECKS: dict[type, Callable[[Any, tuple, dict], None]] = {}

# Modules with submodules whose whole tree passed the checks, with the structure counter then (any
# hook, mode, attribute or registration change moves it). Weak: keeps no module alive.
_VERIFIED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

T = TypeVar("T", bound=type)


def register_pure_forward(
    *classes: type,
    when: Callable[[Any], bool] | None = None,
    alone: bool = True,
    check: Callable[[Any, tuple, dict], None] | None = None,
) -> None:
    """Declare each class's `forward` (its own or inherited) a pure function of the module's
    arrays, its inputs and its plain attributes: it writes no cell, draws no random numbers, reads
    no concrete values and has no Python side effects; optionally only while `when(module)` is
    true. Subclasses are not covered: each class registers itself. `alone=False`: pure inside a
    declared-pure parent, but a call of the module itself is never cached. `check(module, args,
    kwargs)`: the forward's checks of concrete argument values, run eagerly before the cached
    program (they raise the forward's error).

    >>> from jaxmodule.nn.modules import _eager
    >>> from jaxmodule import nn
    >>> class Scale(nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x
    >>> _eager.register_pure_forward(Scale)
    >>> Scale in _eager.RULES
    True
    """
    for cls in classes:
        if not isinstance(cls, type) or not callable(getattr(cls, "forward", None)):
            raise TypeError(
                f"register_pure_forward: expected Module classes with a forward, got {cls!r}"
            )
    for cls in classes:
        RULES[cls] = when
        if not alone:
            TREE_ONLY.add(cls)
        if check is not None:
            CHECKS[cls] = check


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


class _NotPure(Exception):
    """Raised while tracing a declared-pure forward that reached state outside its own arrays."""


def _apply(module: Any, args: tuple, kwargs: dict, autocast_state: tuple) -> Any:
    del autocast_state  # static: only keys the cache (the forward reads the live state)
    own = {id(c) for c in _pytree.module_cells(module)[0]}
    structure = _structure.counters.structure
    with recording(every=True) as rec:  # runs only while jit traces: the check costs no call
        try:
            out = module.forward(*args, **kwargs)
        except Exception as e:  # e.g. the generator refusing a draw inside jit
            _check_pure(module, rec, own, structure, e)
            raise
    _check_pure(module, rec, own, structure, None)
    return out


def _check_pure(
    module: Any, rec: Any, own: set[int], structure: int, cause: Exception | None
) -> None:
    """Raise `_NotPure` if the traced forward set a module attribute (the structure counter
    moved), wrote a cell or read one outside the module."""
    if _structure.counters.structure != structure:
        raise _NotPure(f"{type(module).__qualname__}.forward sets module attributes") from cause
    foreign = [c for i, c in rec.touched.items() if i not in own and i not in rec.created]
    if rec.written or foreign:
        kinds = {type(c).__name__ for c in foreign}
        what = (
            "draws random numbers"
            if "Generator" in kinds
            else "writes state"
            if rec.written
            else f"reads a {type(foreign[0]).__name__} that is not its own"
        )
        raise _NotPure(f"{type(module).__qualname__}.forward {what}") from cause


_JITTED = jax.jit(_apply, static_argnums=(3,))


def _tree_ok(module: Any) -> bool:
    """Every submodule registered (its `when` passing), without hooks or an instance forward, and
    at least one of them computing (a Sequential of Identity or eval Dropout returns its input
    object itself, as torch's does); cached per structure version."""
    if _VERIFIED.get(module) == _structure.counters.structure:
        return True
    if all(type(m) in TREE_ONLY for m in module.modules() if m is not module):
        return False
    for m in module.modules():
        cls = type(m)
        when = RULES.get(cls)
        if (
            cls not in RULES
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
            return False
    _VERIFIED[module] = _structure.counters.structure
    return True


def _drop(cls: type, reason: str) -> None:
    RULES.pop(cls, None)
    if not cls.__module__.startswith("jaxmodule."):
        warnings.warn(
            f"{reason}: it is not a pure forward, so its eager calls run op by op "
            "(see jaxmodule.nn.utils.pure_forward)",
            stacklevel=4,
        )


def call(module: Any, args: tuple, kwargs: dict) -> Any:
    """The output of the cached jit program for `module(*args, **kwargs)`, or `SKIP` when the
    conditions in the module docstring do not hold; then (and after a failed trace) the caller
    runs the plain forward, which raises a user error as it would eagerly. `Module._call_impl`
    calls this only for a registered class with no hooks registered."""
    cls = type(module)
    if module._modules:
        if cls in TREE_ONLY or not _tree_ok(module):
            return SKIP
    else:
        when = RULES.get(cls)
        if (
            cls not in RULES
            or cls in TREE_ONLY
            or (when is not None and not when(module))
            or "forward" in module.__dict__
        ):
            return SKIP
    if (
        not eager_trace()
        or not all_arrays((args, kwargs))
        or not all(isinstance(c._value, jax.Array) for c in _pytree.module_cells(module)[0])
    ):
        return SKIP
    check = CHECKS.get(cls)
    if check is not None:
        check(module, args, kwargs)
    try:
        return _JITTED(module, args, kwargs, autocast_mode.state())
    except _NotPure as e:
        _drop(cls, str(e))
    except jax.errors.JAXTypeError:  # the forward reads concrete values: never try this class again
        RULES.pop(cls, None)
    except Exception:  # noqa: S110 - the plain forward raises the user's error with its eager traceback
        pass
    return SKIP
