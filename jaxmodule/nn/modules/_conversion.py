"""dtype and device conversion of a Module's parameters and buffers (`to`, `half`, `cuda`, ...).

All of them replace the arrays held in the cells (so optimizers keep their references) and
return the module. Devices map onto `jax.device_put`; see `jaxmodule/_device.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..._device import is_device_spec, resolve_device
from ..._dtype import check_x64, is_floating, is_floating_or_complex, to_dtype

__all__ = ["ConversionMixin"]


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
            raise TypeError(f"to() received an invalid combination of arguments: got {type(a).__name__}; "
                            "expected a device, a dtype, a jax.sharding.Sharding or an array")
    if dtype is not None:
        dtype = to_dtype(dtype)
        if not is_floating_or_complex(dtype):
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}")
    if device is not None and not isinstance(device, jax.sharding.Sharding):
        device = resolve_device(device)
    return device, dtype


class ConversionMixin:
    """The dtype/device half of `Module` (mixed into it)."""

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
        return self._apply(lambda t: t.astype(dt) if is_floating(t.dtype) else t)

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
        complex arrays are cast.

        >>> from jaxmodule import nn
        >>> import jax.numpy as jnp
        >>> nn.Linear(2, 2).to("cpu", jnp.float16).weight.dtype
        dtype('float16')
        """
        device, dtype = _parse_to(args, kwargs)
        if dtype is not None:
            check_x64(dtype, f"to({dtype})")

        def convert(t: jax.Array) -> jax.Array:
            if dtype is not None and is_floating_or_complex(t.dtype):
                t = t.astype(dtype)
            if device is not None:
                t = jax.device_put(t, device)
            return t

        return self._apply(convert)

    def _move(self, spec: Any) -> Any:
        dev = resolve_device(spec)
        return self._apply(lambda t: jax.device_put(t, dev))

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
        """Replace every array by an uninitialised one (zeros in JAX) on `device`. Mirrors torch."""
        dev = device if isinstance(device, jax.sharding.Sharding) else resolve_device(device)
        return self._apply(lambda t: jax.device_put(jnp.zeros(t.shape, t.dtype), dev), recurse=recurse)


def _indexed(kind: str, device: Any) -> Any:
    if device is None:
        return kind
    if isinstance(device, int) and not isinstance(device, bool):
        return f"{kind}:{device}"
    return device
