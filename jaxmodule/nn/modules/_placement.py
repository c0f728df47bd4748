"""Where a module's arrays live: `Module.named_shardings()` and the placement notes in `repr`.

Both are jaxmodule additions (torch has one device per tensor and shows none in a module's repr).

The repr rule: when the arrays of the model being printed all sit on one device (the normal
case), `repr(model)` is exactly torch's. When they span more than one device (a sharded model,
or layers on different devices), every module that owns parameters or buffers gets its arrays'
placement appended to the first line of its repr, and the printed root gets the mesh once::

    Net(  # mesh: {'data': 8}
      (fc1): Linear(in_features=64, out_features=128, bias=True)  [weight: P('data', None), bias: P()]
      (fc2): Linear(in_features=128, out_features=10, bias=True)  [P()]
    )

One placement per array, in `_parameters` then `_buffers` order; a single `[text]` when all of
a module's arrays share it. A placement is the `PartitionSpec` of a `NamedSharding` on the mesh
in the header (`P('data', None)`), followed by ` on {'x': 2}` for another mesh and by its memory
kind when not the default (`P() pinned_host`); the device of a `SingleDeviceSharding`
(`cpu:3`, `cuda:0`); `meta` or `meta P('data', None)` for a meta cell (a `jax.ShapeDtypeStruct`)
without or with a planned sharding. The header's mesh is the one most arrays use.

All of this runs only inside `repr`: nothing is added to module calls or parameter access.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from ..parameter import _TensorCell

__all__ = [
    "PlacementMixin",
    "sharding_of",
    "placement_text",
    "mesh_text",
    "device_text",
    "ModelPlacement",
    "placement_repr",
]

_Sharding = jax.sharding.Sharding


def sharding_of(x: Any) -> _Sharding | None:
    """The sharding of an array, a cell's array, or a meta cell's `jax.ShapeDtypeStruct` (its
    planned sharding, or None); None for host (numpy) data. A tracer gives its abstract sharding.

    >>> import jax.numpy as jnp
    >>> type(sharding_of(jnp.ones(2))).__name__
    'SingleDeviceSharding'
    """
    v = x._value if isinstance(x, _TensorCell) else x
    if isinstance(v, jax.core.Tracer):
        return getattr(jax.typeof(v), "sharding", None)
    if isinstance(v, (jax.Array, jax.ShapeDtypeStruct)):
        return v.sharding
    return None


def mesh_text(mesh: Any) -> str:
    """A mesh's axes and sizes: `{'data': 4, 'model': 2}`."""
    return (
        "{"
        + ", ".join(f"{name!r}: {size}" for name, size in zip(mesh.axis_names, mesh.axis_sizes))
        + "}"
    )


def device_text(device: jax.Device) -> str:
    """torch's spelling of a device: 'cpu:3', 'cuda:0', 'tpu:1'."""
    return f"{'cuda' if device.platform == 'gpu' else device.platform}:{device.id}"


def placement_text(x: Any, mesh: str | None = None) -> str:
    """Short text for where an array (or a cell's array) lives; `mesh` is the `mesh_text` of the
    mesh that goes without saying (the repr's header), any other mesh is written out.

    >>> import jax, numpy as np
    >>> from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    >>> m = Mesh(np.array(jax.devices()[:1]), ('data',))
    >>> placement_text(jax.device_put(np.ones((2, 2)), NamedSharding(m, P('data', None))), "{'data': 1}")
    "P('data', None)"
    """
    v = x._value if isinstance(x, _TensorCell) else x
    s = sharding_of(v)
    meta = isinstance(v, jax.ShapeDtypeStruct)
    if s is None:
        return "meta" if meta else "host"
    if isinstance(s, jax.sharding.NamedSharding):
        text = repr(s.spec)
        own = mesh_text(s.mesh)
        if own != mesh:
            text += f" on {own}"
        if s.memory_kind not in (None, "device"):
            text += f" {s.memory_kind}"
    elif isinstance(s, jax.sharding.SingleDeviceSharding):
        text = device_text(next(iter(s.device_set)))
    else:
        text = f"{type(s).__name__}({len(s.device_set)} devices)"
    return f"meta {text}" if meta else text


def _own_arrays(module: Any) -> list[tuple[str, _TensorCell]]:
    return [
        (n, c) for n, c in (*module._parameters.items(), *module._buffers.items()) if c is not None
    ]


class ModelPlacement:
    """How a model's arrays are spread, computed once per `repr` or `summary`.

    `spread`: the arrays span more than one device (then placements are worth showing);
    `mesh`: the `mesh_text` of the mesh most arrays use (None when no array has a NamedSharding).
    """

    def __init__(self, cells: Iterable[Any]) -> None:
        devices: set = set()
        meshes: Counter = Counter()
        abstract_spread = False
        for cell in cells:
            s = sharding_of(cell)
            if s is None:
                continue
            if isinstance(s, jax.sharding.NamedSharding):
                meshes[mesh_text(s.mesh)] += 1
            try:
                devices |= s.device_set
            except ValueError:  # a NamedSharding over an AbstractMesh (a planned placement)
                abstract_spread = abstract_spread or (
                    isinstance(s, jax.sharding.NamedSharding) and s.mesh.size > 1
                )
        self.spread: bool = abstract_spread or len(devices) > 1
        self.mesh: str | None = meshes.most_common(1)[0][0] if meshes else None

    @classmethod
    def of(cls, module: Any) -> ModelPlacement:
        """The placement of every parameter and buffer of `module` and its descendants."""
        seen: set[int] = set()
        cells = []
        for m in module.modules():
            for _, c in _own_arrays(m):
                if id(c) not in seen:
                    seen.add(id(c))
                    cells.append(c)
        return cls(cells)

    def module_note(self, module: Any) -> str:
        """`[weight: P('data', None), bias: P()]` for `module`'s own arrays; `[P()]` when they all
        agree; '' when it owns none."""
        texts = [(name, placement_text(c, self.mesh)) for name, c in _own_arrays(module)]
        if not texts:
            return ""
        if len({t for _, t in texts}) == 1:
            return f"[{texts[0][1]}]"
        return "[" + ", ".join(f"{name}: {t}" for name, t in texts) + "]"


def _append_to_first_line(text: str, note: str) -> str:
    if not note:
        return text
    first, nl, rest = text.partition("\n")
    return f"{first}  {note}{nl}{rest}"


_printing = threading.local()  # .view: the ModelPlacement of the repr in progress on this thread


def placement_repr(repr_fn: Callable[[Any], str]) -> Callable[[Any], str]:
    """Wrap a module's `__repr__` so that it shows placements when the model is spread.

    The outermost wrapped call (the printed root) computes the `ModelPlacement` once for the
    nested calls and adds the mesh header; when the model is not spread the text is unchanged.
    """
    if getattr(repr_fn, "_jm_placement_repr", False):
        return repr_fn

    @functools.wraps(repr_fn)
    def __repr__(self: Any) -> str:  # noqa: N807
        view = getattr(_printing, "view", None)
        if view is not None:
            text = repr_fn(self)
            return _append_to_first_line(text, view.module_note(self)) if view.spread else text
        try:
            view = ModelPlacement.of(self)
        except Exception:  # noqa: BLE001 - a half-built module: print it as torch would
            return repr_fn(self)
        _printing.view = view
        try:
            text = repr_fn(self)
        finally:
            _printing.view = None
        if not view.spread:
            return text
        text = _append_to_first_line(text, view.module_note(self))
        return _append_to_first_line(text, f"# mesh: {view.mesh}" if view.mesh else "")

    __repr__._jm_placement_repr = True  # type: ignore[attr-defined]
    return __repr__


def _is_array_entry(x: Any) -> bool:
    return isinstance(x, (_TensorCell, jax.Array, jax.ShapeDtypeStruct, np.ndarray, np.generic))


class PlacementMixin:
    """The placement half of `Module` (mixed into it): `named_shardings` and, for every subclass
    that defines its own `__repr__` (`ModuleList`, user classes), the placement notes of
    `placement_repr` (`Module.__repr__` is wrapped where it is defined)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__repr__")
        if own is not None:
            cls.__repr__ = placement_repr(own)  # type: ignore[method-assign]

    def named_shardings(self, prefix: str = "") -> OrderedDict[str, _Sharding | None]:
        """The `jax.sharding.Sharding` of every array `state_dict()` holds, under the same keys in
        the same order (parameters and persistent buffers; a tied weight under each of its keys;
        entries that are not arrays, such as `_extra_state`, are left out). A meta cell gives
        its planned sharding, or None. A jaxmodule addition: torch has no such method.

        The result is a `map_location` for `jaxmodule.load` and checkpoint restores, which puts
        each array straight into that sharding. Keys are '/'-joined paths into the saved object:
        for a saved `model.state_dict()` use `model.named_shardings()`; for a saved
        `{'model': model.state_dict(), ...}` use `model.named_shardings(prefix='model/')`.
        Drop None entries first if the model has meta cells without a planned sharding.

        >>> import jax, numpy as np
        >>> from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        >>> from jaxmodule import nn
        >>> model = nn.Linear(4, 2)
        >>> mesh = Mesh(np.array(jax.devices()[:1]), ('data',))
        >>> model.weight._value = jax.device_put(model.weight._value, NamedSharding(mesh, P('data', None)))
        >>> {k: type(s).__name__ for k, s in model.named_shardings().items()}
        {'weight': 'NamedSharding', 'bias': 'SingleDeviceSharding'}
        >>> list(model.named_shardings(prefix='model/'))
        ['model/weight', 'model/bias']
        """
        if not isinstance(prefix, str):
            raise TypeError(
                f"{type(self).__name__}.named_shardings: prefix must be a str, "
                f"got {type(prefix).__name__}"
            )
        entries = self.state_dict(prefix=prefix, keep_vars=True)  # type: ignore[attr-defined]
        return OrderedDict((k, sharding_of(v)) for k, v in entries.items() if _is_array_entry(v))
