"""dtype and device conversion of a Module's parameters and buffers (`to`, `half`, `cuda`, ...),
and building a module in place (`device=`, `with jaxmodule.device(...)`, the meta device).

All conversions replace the arrays held in the cells (so optimizers keep their references) and
return the module. Devices map onto `jax.device_put`; see `jaxmodule/_device.py`.

Placement at construction: `Module.__init_subclass__` wraps each subclass's `__init__` with
`placed_init`. A normal construction pays one attribute check and one dict lookup. When a
`device=` argument is given or a `jaxmodule.device(...)` context is active, the OUTERMOST
constructor builds the whole module there (inner constructors run as usual):

- meta: the constructor runs under `jax.eval_shape`, so every jnp operation is traced, not
  computed, and nothing is allocated; each cell then holds a `jax.ShapeDtypeStruct` (as do module
  attributes holding arrays made there). The global generator is swapped for a traced copy of
  its key and restored, so it does not advance (torch does not advance it for meta either).
- a device: the constructor runs under `jax.default_device(device)`.
- a Sharding: the constructor runs, then each parameter and buffer is `jax.device_put` on it.

`to_empty` allocates each array directly where it lives: zeros made by a jitted function with
`out_shardings`, so no device ever holds the whole of a sharded array.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from ..._device import META, PLACEMENT, is_device_spec, placement_target, resolve_device
from ..._dtype import check_x64, is_floating, is_floating_or_complex, to_dtype
from ..._random import default_generator
from ..._swap import swapped
from ..._tensor import meta_array
from ..parameter import Buffer, Parameter

if TYPE_CHECKING:  # annotations only: module.py builds Module on this mixin
    from .module import Module

__all__ = ["ConversionMixin", "placed_init"]

_Meta = jax.ShapeDtypeStruct
_Tracer = jax.core.Tracer
_NO_DATA = (
    "Cannot copy out of meta tensor; no data! Please use jaxmodule.nn.Module.to_empty() instead of "
    "jaxmodule.nn.Module.to() when moving module from meta to a different device."
)
_REGISTRIES = frozenset(("_parameters", "_buffers", "_modules", "_jm_tree"))


# ---- building in place -------------------------------------------------------------------------
def placed_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a Module subclass's `__init__` so that `device=` and `jaxmodule.device(...)` place it."""

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if PLACEMENT.building or (PLACEMENT.target is None and kwargs.get("device") is None):
            init(self, *args, **kwargs)
        else:
            _build_placed(init, self, args, kwargs)

    return __init__


def _build_placed(init: Callable[..., None], module: Any, args: tuple, kwargs: dict) -> None:
    dev = kwargs.get("device")
    target = PLACEMENT.target if dev is None else placement_target(dev)
    PLACEMENT.building = True
    try:
        if target is META:
            _build_meta(init, module, args, kwargs)
        elif isinstance(target, jax.Device):
            with jax.default_device(target):
                init(module, *args, **kwargs)
        else:  # a Sharding
            init(module, *args, **kwargs)
            module.to(target)
    finally:
        PLACEMENT.building = False


def _build_meta(init: Callable[..., None], module: Any, args: tuple, kwargs: dict) -> None:
    gen = default_generator

    def build(key: jax.Array) -> None:
        with swapped([gen], [key]):  # draws advance a traced copy; the real key is put back
            init(module, *args, **kwargs)
            for m in module.modules():
                _meta_values(m)

    jax.eval_shape(build, gen._value)


def _meta_values(m: Any) -> None:
    """Replace the tracers a meta build left in `m`'s cells and attributes by ShapeDtypeStructs."""
    for cell in (*m._parameters.values(), *m._buffers.values()):
        if cell is not None and isinstance(cell._value, _Tracer):
            cell._value = meta_array(cell._value)
    d = m.__dict__
    d.pop("_jm_tree", None)  # a pytree cache built during the trace
    for k, v in list(d.items()):
        if k not in _REGISTRIES and isinstance(v, _Tracer):
            d[k] = meta_array(v)


def _astype(t: Any, dtype: Any) -> Any:
    return meta_array(t, dtype) if isinstance(t, _Meta) else t.astype(dtype)


def _put(t: Any, where: Any) -> Any:
    if isinstance(t, _Meta):
        raise NotImplementedError(_NO_DATA)
    return jax.device_put(t, where)


@functools.cache
def _zeros_fn(shape: tuple[int, ...], dtype: Any, sharding: Any) -> Callable[[], jax.Array]:
    return jax.jit(functools.partial(jnp.zeros, shape, dtype), out_shardings=sharding)


def _empty_on(t: Any, target: Any) -> Any:
    """An uninitialised (zero) array shaped like `t`, made where it will live (see `to_empty`)."""
    if target is META:
        return meta_array(t)
    planned = t.sharding if isinstance(t, _Meta) else getattr(t, "sharding", None)
    if isinstance(target, jax.sharding.Sharding):
        sharding = target
    elif planned is not None and len(planned.device_set) > 1:
        sharding = planned  # a planned multi-device layout wins over a device name (torch FSDP2)
    else:
        sharding = jax.sharding.SingleDeviceSharding(target)
    return _zeros_fn(tuple(t.shape), jnp.dtype(t.dtype), sharding)()


def _is_dtype_spec(x: Any) -> bool:
    if isinstance(x, str):
        if is_device_spec(x):
            return False
        try:
            to_dtype(x)
        except TypeError:
            return False
        return True
    if type(x).__module__ == "torch" and type(x).__name__ == "dtype":
        return True
    try:
        jnp.dtype(x)
    except TypeError:
        return False
    return not isinstance(x, (int, jax.Device))


def _parse_to(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """torch's `to(device=None, dtype=None, non_blocking=False)` / `to(dtype)` / `to(tensor)`."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise TypeError(f"to() got an unexpected keyword argument '{sorted(unknown)[0]}'")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    for a in args:
        if isinstance(a, bool):  # non_blocking positional
            continue
        if isinstance(a, jax.sharding.Sharding) or is_device_spec(a) or isinstance(a, int):
            device = a
        elif hasattr(a, "dtype") and hasattr(a, "shape"):  # to(tensor): its dtype and device
            dtype = a.dtype
            devs = getattr(a, "devices", None)
            if callable(devs):
                device = next(iter(devs()))
        elif _is_dtype_spec(a):
            dtype = a
        elif isinstance(a, str):  # neither: resolve_device raises torch's RuntimeError for it
            device = a
        else:
            raise TypeError(
                f"to() received an invalid combination of arguments: got {type(a).__name__}; "
                "expected a device, a dtype, a jax.sharding.Sharding or an array"
            )
    if dtype is not None:
        dtype = to_dtype(dtype)
        if not is_floating_or_complex(dtype):
            raise TypeError(
                f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}"
            )
    if device is not None and not isinstance(device, jax.sharding.Sharding):
        device = placement_target(device)
    return device, dtype


class ConversionMixin:
    """The dtype/device half of `Module` (mixed into it)."""

    # Module's registries and traversal, used by the methods below.
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Buffer | None]
    named_modules: Callable[..., Iterator[tuple[str, Module]]]
    children: Callable[[], Iterator[Module]]

    def _own_cells(self, recurse: bool = True) -> list[tuple[str, Any]]:
        """(qualified name, cell) of every parameter and buffer, each shared cell once."""
        mods = self.named_modules() if recurse else [("", self)]
        out, seen = [], set()
        for prefix, m in mods:
            for name, cell in (*m._parameters.items(), *m._buffers.items()):
                if cell is not None and id(cell) not in seen:
                    seen.add(id(cell))
                    out.append((prefix + ("." if prefix else "") + name, cell))
        return out

    def _refuse_meta_move(self) -> None:
        if any(isinstance(c._value, _Meta) for _, c in self._own_cells()):
            raise NotImplementedError(_NO_DATA)

    def _apply(self, fn: Callable[[jax.Array], jax.Array], recurse: bool = True) -> Any:
        """Replace every parameter's and buffer's array (and grad) by `fn(array)`; children first."""
        if recurse:
            for module in self.children():
                module._apply(fn)
        for cell in (*self._parameters.values(), *self._buffers.values()):
            if cell is None:
                continue
            cell._value = fn(cell._value)
            if cell.grad is not None:
                cell.grad = fn(cell.grad)
        return self

    def _cast_floating(self, dtype: Any, what: str) -> Any:
        dt = to_dtype(dtype)
        check_x64(dt, what)
        return self._apply(lambda t: _astype(t, dt) if is_floating(t.dtype) else t)

    def float(self) -> Any:
        """Cast floating-point parameters and buffers to float32. Mirrors torch."""
        return self._cast_floating(jnp.float32, "float()")

    def double(self) -> Any:
        """Cast floating-point parameters and buffers to float64 (needs JAX x64 mode). Mirrors torch."""
        return self._cast_floating(jnp.float64, "double()")

    def half(self) -> Any:
        """Cast floating-point parameters and buffers to float16. Mirrors torch."""
        return self._cast_floating(jnp.float16, "half()")

    def bfloat16(self) -> Any:
        """Cast floating-point parameters and buffers to bfloat16. Mirrors torch."""
        return self._cast_floating(jnp.bfloat16, "bfloat16()")

    def type(self, dst_type: Any) -> Any:
        """Cast floating-point parameters and buffers to `dst_type`; integer buffers stay.

        Differs from torch (which casts every tensor): jaxmodule's contract keeps integer buffers
        such as BatchNorm's `num_batches_tracked` intact.
        """
        return self._cast_floating(dst_type, f"type({dst_type})")

    def to(self, *args: Any, **kwargs: Any) -> Any:
        """Move and/or cast parameters and buffers. Mirrors `torch.nn.Module.to`.

        Accepts `to(device)`, `to(dtype)`, `to(device, dtype)`, `to(array)`, keyword `device=`,
        `dtype=`, and a `jax.sharding.Sharding` in place of a device. Only floating-point and
        complex arrays are cast. `to('meta')` keeps shapes, dtypes and shardings and frees the
        data (each cell holds a `jax.ShapeDtypeStruct`); moving a meta module to a device raises
        NotImplementedError, as torch does: use `to_empty`.

        >>> from jaxmodule import nn
        >>> import jax.numpy as jnp
        >>> nn.Linear(2, 2).to("cpu", jnp.float16).weight.dtype
        dtype('float16')
        """
        device, dtype = _parse_to(args, kwargs)
        if dtype is not None:
            check_x64(dtype, f"to({dtype})")
        if device is not None and device is not META:
            self._refuse_meta_move()

        def convert(t: jax.Array) -> jax.Array:
            if dtype is not None and is_floating_or_complex(t.dtype):
                t = _astype(t, dtype)
            if (
                device is META
            ):  # a meta cell's MetaArray stands in for its array (_TensorCell._value)
                return meta_array(t)  # type: ignore[return-value]
            if device is not None:
                t = jax.device_put(t, device)
            return t

        return self._apply(convert)

    def _move(self, spec: Any) -> Any:
        dev = resolve_device(spec)
        self._refuse_meta_move()
        return self._apply(lambda t: _put(t, dev))

    def cpu(self) -> Any:
        """Move parameters and buffers to the first CPU device. Mirrors torch."""
        return self._move("cpu")

    def cuda(self, device: Any = None) -> Any:
        """Move to a GPU (`device` index, 'cuda:N' or jax.Device); RuntimeError if there is none."""
        return self._move(_indexed("cuda", device))

    def xpu(self, device: Any = None) -> Any:
        """Move to an XPU; JAX has none, so this raises RuntimeError listing the devices that exist."""
        return self._move(_indexed("xpu", device))

    def ipu(self, device: Any = None) -> Any:
        """Move to an IPU; JAX has none, so this raises RuntimeError listing the devices that exist."""
        return self._move(_indexed("ipu", device))

    def mtia(self, device: Any = None) -> Any:
        """Move to an MTIA; JAX has none, so this raises RuntimeError listing the devices that exist."""
        return self._move(_indexed("mtia", device))

    def to_empty(self, *, device: Any, recurse: bool = True) -> Any:
        """Replace every array by an uninitialised one (zeros in JAX) on `device`. Mirrors torch.

        Args:
            device: a device ('cpu', 'cuda:1', a jax.Device, ...), a `jax.sharding.Sharding`, or
                'meta'. A cell with a multi-device layout (a sharded array, or a meta cell whose
                ShapeDtypeStruct carries a planned sharding) keeps that layout when `device` names
                a device, as torch FSDP2's `to_empty(device="cuda")` keeps DTensor sharding; a
                Sharding given here applies to every array.
            recurse: also the submodules' parameters and buffers.

        Each array is made directly with its final sharding (a jitted zeros with
        `out_shardings`), so no device ever holds the whole of a sharded array. All new arrays
        are made before any cell changes: on an error (a sharding that does not divide a
        dimension) every cell keeps its value.

        >>> import jaxmodule
        >>> from jaxmodule import nn
        >>> with jaxmodule.device("meta"):
        ...     layer = nn.Linear(2, 3)
        >>> layer.to_empty(device="cpu").weight.is_meta
        False
        """
        target = placement_target(device)
        cells = self._own_cells(recurse)
        new = []
        for name, cell in cells:
            try:
                value = _empty_on(cell._value, target)
                grad = None if cell.grad is None else _empty_on(cell.grad, target)
            except (ValueError, TypeError, RuntimeError) as e:
                raise type(e)(
                    f"to_empty: cannot make '{name}' (shape {tuple(cell.shape)}, "
                    f"{jnp.dtype(cell.dtype)}) on {device}: {e}"
                ) from e
            new.append((value, grad))
        for (_, cell), (value, grad) in zip(cells, new):
            cell._value = value
            if grad is not None:
                cell.grad = grad
        return self


def _indexed(kind: str, device: Any) -> Any:
    if device is None:
        return kind
    if isinstance(device, int) and not isinstance(device, bool):
        return f"{kind}:{device}"
    return device
