"""Map torch device spellings ('cpu', 'cuda:1', 'gpu', 'tpu', torch.device, jax.Device) to JAX,
and `device`: torch.device's role, a place name that is also a context manager.

`with jaxmodule.device("meta"):` (or `"cpu:3"`, a `jax.Device`, a `jax.sharding.Sharding`) makes
the modules built inside it live there; a layer's `device=` argument does the same for that layer.
This file only holds the current place (`PLACEMENT`, read with one attribute check by every
Module constructor); how a module is built there is in `nn/modules/_conversion.py`.
"""

from __future__ import annotations

from typing import Any

import jax

__all__ = [
    "resolve_device",
    "is_device_spec",
    "device",
    "META",
    "PLACEMENT",
    "is_meta_spec",
    "placement_target",
    "device_type",
]

META = "meta"  # the placement target of the meta device (arrays become jax.ShapeDtypeStruct)

_KIND_ALIASES = {
    "cuda": "gpu",
    "gpu": "gpu",
    "cpu": "cpu",
    "tpu": "tpu",
    "rocm": "gpu",
    "xpu": "xpu",
    "ipu": "ipu",
    "mtia": "mtia",
    "mps": "METAL",
}


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
    if isinstance(x, device):
        return True
    if isinstance(x, str):
        return x.split(":")[0].lower() in _KIND_ALIASES or is_meta_spec(x)
    return False


def is_meta_spec(x: Any) -> bool:
    """True for the meta device: 'meta', `jaxmodule.device('meta')`, `torch.device('meta')`."""
    if isinstance(x, device):
        return x.target is META
    if isinstance(x, str):
        return x.lower() in ("meta", "meta:0")
    if type(x).__name__ == "device" and type(x).__module__.startswith("torch"):
        return str(x) == "meta"
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
    if isinstance(spec, device):
        if isinstance(spec.target, jax.Device):
            return spec.target
        spec = spec.target if spec.target is META else spec
    if is_meta_spec(spec):
        raise RuntimeError(
            "the meta device holds shapes and dtypes only, it is not a jax.Device: build under "
            "jaxmodule.device('meta') or move a module with module.to('meta'), and allocate with "
            "module.to_empty(device=...)"
        )
    if type(spec).__module__.startswith("torch"):
        spec = str(spec)
    kind: str | None
    if isinstance(spec, int) and not isinstance(spec, bool):
        kind, index = default_kind, spec
    elif isinstance(spec, str):
        name, _, idx = spec.partition(":")
        kind = _KIND_ALIASES.get(name.lower())
        if kind is None:
            raise RuntimeError(
                f"Expected one of cpu, cuda, gpu, tpu, xpu, ipu, mtia device type at start of device string: {spec}"
            )
        try:
            index = int(idx) if idx else 0
        except ValueError:
            raise RuntimeError(f"Invalid device string: '{spec}'") from None
    else:
        raise TypeError(f"expected a device (str, int, torch.device or jax.Device), got {spec!r}")
    try:
        # this process's devices: with several processes, 'cuda:0' is each process's first GPU
        devs = jax.local_devices(backend=kind) if kind in ("cpu", "gpu", "tpu") else []
    except RuntimeError:
        devs = []
    if not devs:
        raise RuntimeError(
            f"no '{spec}' device is available to JAX (asked for platform '{kind}'); "
            f"the devices that exist are: {_all_devices()}"
        )
    if not 0 <= index < len(devs):
        raise RuntimeError(
            f"device index {index} is out of range for '{kind}': {len(devs)} device(s) exist: {devs}"
        )
    return devs[index]


def placement_target(spec: Any) -> Any:
    """Normalise a place: `META`, a `jax.sharding.Sharding`, or a `jax.Device` (any spelling
    `resolve_device` accepts). Raises as `resolve_device` does for an unknown device."""
    if isinstance(spec, device):
        return spec.target
    if isinstance(spec, jax.sharding.Sharding):
        return spec
    if is_meta_spec(spec):
        return META
    return resolve_device(spec)


_TORCH_TYPES = {"gpu": "cuda"}


def device_type(target: Any) -> str:
    """torch's device type name of a place: 'cpu', 'cuda', 'tpu' or 'meta'."""
    if target is META:
        return META
    if isinstance(target, jax.sharding.Sharding):
        target = next(iter(target.device_set))
    return _TORCH_TYPES.get(target.platform, target.platform)


class _Placement:
    """Where modules built now go. `target`: None (JAX's default), `META`, a jax.Device or a
    Sharding; `building`: a constructor placing its module is running (inner ones leave it be)."""

    __slots__ = ("target", "building")

    def __init__(self) -> None:
        self.target: Any = None
        self.building = False


PLACEMENT = _Placement()


class device:  # noqa: N801 - torch's name
    """A place for arrays, and a context manager building modules there. Mirrors `torch.device`.

    Args:
        spec: 'cpu', 'cpu:3', 'cuda', 'cuda:1', 'tpu', 'meta', an int index, a `torch.device`,
            a `jax.Device`, a `jax.sharding.Sharding`, or another `device`.
        index: the device index when `spec` is a type name only (`device('cuda', 1)`).

    Compares equal (and hashes equal) to the `jax.Device` it names, and answers its attributes
    (`platform`, `id`, ...); `.jax` is the jax.Device (or Sharding) itself, for `jax.device_put`.
    Inside `with device(spec):` every Module constructed lives on `spec`: 'meta' allocates
    nothing (parameters hold `jax.ShapeDtypeStruct`s), a device runs the constructors under
    `jax.default_device` (so plain `jnp` arrays made inside land there too), a Sharding places
    each parameter and buffer with `jax.device_put`.

    >>> import jaxmodule
    >>> from jaxmodule import nn
    >>> with jaxmodule.device("meta"):
    ...     layer = nn.Linear(4096, 4096)
    >>> layer.weight.is_meta, layer.weight.shape
    (True, (4096, 4096))
    >>> jaxmodule.device("cpu").type
    'cpu'

    Differences from torch: building under the context places modules (and, for a device,
    JAX's default device), while torch also redirects every tensor factory call; jaxmodule's
    factories (`jaxmodule.zeros(..., device=...)`) take 'meta' explicitly or from the context.
    The context is process-wide, not per thread.
    """

    __slots__ = ("target", "_saved")

    def __init__(self, spec: Any, index: int | None = None) -> None:
        if index is not None:
            if not isinstance(spec, str) or ":" in spec:
                raise TypeError(
                    f"device(): an index is given with a type name such as 'cuda', got {spec!r}"
                )
            spec = f"{spec}:{index}"
        self.target = placement_target(spec)
        self._saved: list[tuple[Any, Any]] = []

    @property
    def type(self) -> str:
        """'cpu', 'cuda', 'tpu' or 'meta' (torch's names)."""
        return device_type(self.target)

    @property
    def index(self) -> int | None:
        """The index among the devices of its kind (None for meta and for a sharding)."""
        t = self.target
        if not isinstance(t, jax.Device):
            return None
        return jax.devices(t.platform).index(t)

    @property
    def jax(self) -> Any:
        """The `jax.Device` or `jax.sharding.Sharding` named (None for meta)."""
        return None if self.target is META else self.target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("target", "_saved"):
            raise AttributeError(name)
        t = object.__getattribute__(self, "target")
        if t is META:
            raise AttributeError(f"'device' object (meta) has no attribute '{name}'")
        return getattr(t, name)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, device):
            return self.target == other.target
        if isinstance(other, (jax.Device, jax.sharding.Sharding)):
            return self.target == other
        if isinstance(other, str) or (
            type(other).__module__.startswith("torch") and type(other).__name__ == "device"
        ):
            try:
                return self.target == placement_target(other)
            except (RuntimeError, TypeError):
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.target)

    def __str__(self) -> str:
        i = self.index
        return self.type if i is None else f"{self.type}:{i}"

    def __repr__(self) -> str:
        if isinstance(self.target, jax.sharding.Sharding):
            return f"device({self.target!r})"
        i = self.index
        return (
            f"device(type='{self.type}')" if i is None else f"device(type='{self.type}', index={i})"
        )

    def __enter__(self) -> device:
        ctx = jax.default_device(self.target) if isinstance(self.target, jax.Device) else None
        if ctx is not None:
            ctx.__enter__()
        self._saved.append((PLACEMENT.target, ctx))
        PLACEMENT.target = self.target
        return self

    def __exit__(self, *exc: Any) -> None:
        target, ctx = self._saved.pop()
        PLACEMENT.target = target
        if ctx is not None:
            ctx.__exit__(*exc)
