"""`map_location` -> where each restored array goes (a `jax.sharding.Sharding`).

Accepted forms (torch's, plus JAX shardings):

* None: each array where it was saved when that device (or sharding's devices) exists here,
  else on the default device (in a multi-process run, devices of this process only);
* a device spec ('cpu', 'cuda:0', 'gpu', 'tpu:1', torch.device, jax.Device): every array there;
* a `jax.sharding.Sharding`: every array restored directly into it;
* a dict mapping saved locations to new ones (`{'cuda:1': 'cuda:0'}`, torch's remap form), or
  mapping array keys to placements (`{'fc.weight': NamedSharding(...), ...}`; a key is the
  '/'-joined key path, so a flat state_dict uses its own keys, a nested object 'model/fc.weight',
  or a tuple of keys); arrays not named keep the None behaviour;
* a callable `fn(meta, location)`: `meta` is a `jax.ShapeDtypeStruct`, `location` the saved
  location string; it returns a placement, None (saved placement) or `meta` itself (meaning
  "leave it on the host", as torch's `lambda storage, loc: storage` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax

from .._device import is_device_spec, resolve_device
from ..nn.modules._placement import device_text

__all__ = ["location_of", "Placer"]


def location_of(arr: Any) -> str:
    """torch-style location tag of a saved array: 'cpu' for host data, 'cuda:0', or 'sharded'."""
    if not isinstance(arr, jax.Array):
        return "cpu"
    devs = arr.sharding.device_set
    if len(devs) == 1:
        return device_text(next(iter(devs)))
    return "sharded"


def _as_sharding(spec: Any, what: str) -> jax.sharding.Sharding:
    if isinstance(spec, jax.sharding.Sharding):
        return spec
    if isinstance(spec, (str, int, jax.Device)) or is_device_spec(spec):
        return jax.sharding.SingleDeviceSharding(resolve_device(spec, default_kind="gpu"))
    raise TypeError(
        f"map_location: {what} must be a device (str, torch.device, jax.Device) or a "
        f"jax.sharding.Sharding, got {type(spec).__name__}"
    )


def _saved_device(location: str) -> jax.Device | None:
    platform, _, idx = location.partition(":")
    platform = {"cuda": "gpu"}.get(platform, platform)
    try:
        devs = jax.local_devices(
            backend=platform
        )  # this process's (all of them in a single process)
    except RuntimeError:
        return None
    for d in devs:
        if str(d.id) == idx:
            return d
    return None


class Placer:
    """Decides the sharding for each stored array of one load."""

    def __init__(self, map_location: Any, keys: list[str], path: str) -> None:
        self.map_location = map_location
        self.path = path
        self._by_key: dict[str, jax.sharding.Sharding] | None = None
        self._remap: dict[str, Any] | None = None
        self._all: jax.sharding.Sharding | None = None
        if isinstance(map_location, Mapping):
            if map_location and all(isinstance(k, str) and is_device_spec(k) for k in map_location):
                self._remap = dict(map_location)
            else:
                by_key = {}
                for k, v in map_location.items():
                    name = "/".join(str(p) for p in k) if isinstance(k, tuple) else str(k)
                    by_key[name] = _as_sharding(v, f"the entry for {k!r}")
                unknown = sorted(set(by_key) - set(keys))
                if unknown:
                    raise ValueError(
                        f"map_location names keys that are not arrays in {path}: {unknown}; "
                        f"array keys there: {keys[:20]}{' ...' if len(keys) > 20 else ''}"
                    )
                self._by_key = by_key
        elif map_location is not None and not callable(map_location):
            self._all = _as_sharding(map_location, "map_location")

    def default(self, location: str, saved_sharding: Callable[[], Any]) -> jax.sharding.Sharding:
        """Where an array goes when map_location says nothing about it."""
        if location == "sharded":
            try:
                s = saved_sharding()
                if s is not None:
                    return s
            except Exception:  # noqa: BLE001 - saved mesh devices are not all present here
                pass
        elif location != "cpu":
            d = _saved_device(location)
            if d is not None:
                return jax.sharding.SingleDeviceSharding(d)
        return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def __call__(
        self, key: str, meta: jax.ShapeDtypeStruct, location: str, saved_sharding: Callable[[], Any]
    ) -> jax.sharding.Sharding:
        ml = self.map_location
        if ml is None:
            s = self.default(location, saved_sharding)
        elif self._by_key is not None:
            s = self._by_key.get(key) or self.default(location, saved_sharding)
        elif self._remap is not None:
            target = self._remap.get(location)
            s = (
                self.default(location, saved_sharding)
                if target is None
                else _as_sharding(target, f"the remap target for {location!r}")
            )
        elif self._all is not None:
            s = self._all
        else:  # callable
            out = ml(meta, location)
            if out is None:
                s = self.default(location, saved_sharding)
            elif out is meta:
                s = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
            else:
                s = _as_sharding(out, f"the value map_location returned for {key!r}")
        try:
            s.shard_shape(meta.shape)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"map_location: the sharding for array {key!r} of shape {meta.shape} in "
                f"{self.path} does not fit it: {e}"
            ) from None
        return s
