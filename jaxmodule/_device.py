"""Map torch device spellings ('cpu', 'cuda:1', 'gpu', 'tpu', torch.device, jax.Device) to JAX."""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["resolve_device", "is_device_spec"]

_KIND_ALIASES = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "tpu": "tpu", "rocm": "gpu",
                 "xpu": "xpu", "ipu": "ipu", "mtia": "mtia", "mps": "METAL"}


def _all_devices() -> list:
    found = []
    for backend in ("cpu", "gpu", "tpu"):
        try:
            found.extend(jax.devices(backend))
        except RuntimeError:
            pass
    return found


def is_device_spec(x: Any) -> bool:
    """True if `x` looks like a device (string, jax.Device, torch.device, int index)."""
    if isinstance(x, jax.Device):
        return True
    if type(x).__name__ == "device" and type(x).__module__.startswith("torch"):
        return True
    if isinstance(x, str):
        return x.split(":")[0].lower() in _KIND_ALIASES
    return False


def resolve_device(spec: Any, default_kind: str = "gpu") -> jax.Device:
    """Return the jax.Device for a torch-style device spec.

    Args:
        spec: 'cpu', 'cuda', 'cuda:1', 'gpu', 'tpu', an int index (of `default_kind`),
            a `torch.device` or a `jax.Device`.

    Raises:
        RuntimeError: the kind or index is absent; the message lists the devices that exist.
    """
    if isinstance(spec, jax.Device):
        return spec
    if type(spec).__module__.startswith("torch"):
        spec = str(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        kind, index = default_kind, spec
    elif isinstance(spec, str):
        name, _, idx = spec.partition(":")
        kind = _KIND_ALIASES.get(name.lower())
        if kind is None:
            raise RuntimeError(f"Expected one of cpu, cuda, gpu, tpu, xpu, ipu, mtia device type at start of device string: {spec}")
        try:
            index = int(idx) if idx else 0
        except ValueError:
            raise RuntimeError(f"Invalid device string: '{spec}'") from None
    else:
        raise TypeError(f"expected a device (str, int, torch.device or jax.Device), got {type(spec).__name__}")
    try:
        devs = jax.devices(kind) if kind in ("cpu", "gpu", "tpu") else []
    except RuntimeError:
        devs = []
    if not devs:
        raise RuntimeError(
            f"no '{spec}' device is available to JAX (asked for platform '{kind}'); "
            f"the devices that exist are: {_all_devices()}")
    if not 0 <= index < len(devs):
        raise RuntimeError(
            f"device index {index} is out of range for '{kind}': {len(devs)} device(s) exist: {devs}")
    return devs[index]
