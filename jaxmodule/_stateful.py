"""`Stateful`: the protocol of objects that hold arrays outside cells (optimizers, GradScaler).

A `Parameter`, `Buffer` or `Generator` holds one array in a `_value` slot, and every tool that
moves arrays in and out of a computation knows cells. Some objects hold more: an optimizer keeps
its optax states and its group options as arrays, a GradScaler its scale. They offer that state
through the methods of `Stateful`, and these consumers use nothing else:

- `jaxmodule.compile` (`_compile/`): the layout lists the Stateful objects a step reaches and
  threads `_jm_state_get()`'s pytree through the jitted program as inputs and outputs; the
  per-call fast path uses the copy-free `_jm_state_view` / `_jm_state_install` pair; a program
  discovered on one optimizer replays its Python-side change onto another through the host pair.
- `_swap.report` / `Transaction` and `_compile/_program.py`: snapshot the state before a trace
  and put it back when the trace fails or ends; `_compile/_sharding.py` places it on the mesh.
- `GradScaler.step`: keeps the optimizer's old state where gradients were not finite.

The methods keep their `_jm_` prefix: implementers are torch-named classes (`Optimizer`), whose
public namespace stays torch's. An implementer subclasses `Stateful` (which gives it the defaults
of the optional methods) and may also have a `param_groups` attribute in torch's layout (a list of
dicts with a "params" list of cells): compile then gathers those cells too.

>>> import jax.numpy as jnp
>>> class Counter(Stateful):
...     def __init__(self) -> None:
...         self.count = jnp.zeros(())
...     def _jm_state_get(self):
...         return {"count": self.count}
...     def _jm_state_set(self, state):
...         self.count = state["count"]
>>> c = Counter()
>>> isinstance(c, Stateful), c._jm_state_view()["count"].shape
(True, ())
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Stateful", "is_stateful_object", "is_versioned"]


@runtime_checkable
class Stateful(Protocol):
    """An object whose array state (besides any cells it refers to) travels as one pytree.

    Required: `_jm_state_get` and `_jm_state_set`. Optional, with defaults when subclassing:
    `_jm_state_view` / `_jm_state_install` (copy-free variants for the compiled fast path),
    `_jm_host_state` / `_jm_host_update` (Python-side state a step changes),
    `_jm_state_version`, `_jm_value_version` and `_jm_trace_key`.
    """

    @abstractmethod
    def _jm_state_get(self) -> Any:
        """All mutable array state as one pytree; its structure is part of a compiled plan, so it
        changes only when the object changes structurally. Fresh containers: a caller may keep
        the result as a snapshot while the object moves on."""

    @abstractmethod
    def _jm_state_set(self, state: Any) -> None:
        """Install a pytree of `_jm_state_get`'s structure; values may be tracers (inside a trace)
        or another device's arrays. The object must not keep the caller's containers."""

    def _jm_state_view(self) -> Any:
        """`_jm_state_get` without copying containers, for handing straight to a jitted call
        that only reads them (compile's per-call fast path). Default: `_jm_state_get()`."""
        return self._jm_state_get()

    def _jm_state_install(self, state: Any) -> int | None:
        """`_jm_state_set` for a state of the same structure that nothing else holds (a jitted
        call's fresh output), so the containers may be kept as they are; it keeps the structure
        version, moves the value version and returns it (saving the fast path a call). Default:
        `_jm_state_set(state)`, then `_jm_value_version()`."""
        self._jm_state_set(state)
        return self._jm_value_version()

    def _jm_state_version(self) -> int | None:
        """An integer that moves whenever the structure of `_jm_state_get()` or `_jm_trace_key()`
        may have changed (not on value changes; `_jm_state_install` keeps it), or None (the
        default): unknown."""
        return None

    def _jm_value_version(self) -> int | None:
        """An integer that moves whenever an array of `_jm_state_get()` may have been replaced
        (a value set, an eager step, a load, `_jm_state_install`), and whenever
        `_jm_state_version` moves; or None (the default): unknown. It may bring the object up to
        date first (an optimizer turns options set on a group into arrays).

        With both versions, compile's fast path keeps the state's leaves from its last call and
        checks only this one (taking it from its own install's return); it flattens the state
        again when it moved, so two compiled steps sharing an optimizer each start from the
        other's update. Without, it flattens the state on every call and compares its
        structure."""
        return None

    def _jm_trace_key(self) -> Hashable:
        """The Python-side options a traced step depends on beyond the state's structure (an
        optimizer's static options such as `nesterov`, and which options are zero), or None (the
        default: none). A compiled plan is reused only while it is unchanged."""
        return None

    def _jm_host_state(self) -> Any:
        """Comparable Python-side state a step may change (not arrays), or None (the default):
        compile records its change while discovering a program and replays it on later calls."""
        return None

    def _jm_host_update(self, before: Any, after: Any) -> None:
        """Apply the change `before -> after` of `_jm_host_state` seen while discovering a
        program. Default: nothing (no host state)."""
        return None


def is_stateful_object(x: Any) -> bool:
    """Whether `x` implements `Stateful` (a subclass or a class with all its methods). A class
    check, cached by `abc` per type, so it costs about one dict lookup after the first."""
    return issubclass(type(x), Stateful)


def is_versioned(x: Any) -> bool:
    """Whether a Stateful object tells both versions (`_jm_state_version`, `_jm_value_version`):
    compile's fast path then keeps its leaves between calls and its float32 options travel
    packed (`_compile/_states.py`)."""
    return x._jm_state_version() is not None and x._jm_value_version() is not None
