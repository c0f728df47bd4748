"""The on-disk format shared by `save`/`load` and `CheckpointManager`.

A checkpoint is a JSON manifest (see `_tree` for the object tree, `_manifest` for its checksum
and schema) plus an orbax PyTree checkpoint holding every non-empty array under the key
`a<index>`. Zero-size arrays (orbax refuses them) live only in the manifest as dtype and shape.
Every array's bytes carry a CRC32 that `assemble` checks after reading.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._dtype import x64_enabled
from ..nn.parameter import Buffer, Parameter
from ._manifest import FORMAT, VERSION
from ._placement import Placer, location_of
from ._tree import ArrayRecord, crc32_of, decode, encode

__all__ = ["ocp", "build", "restore_args", "assemble", "records_keys"]


def ocp() -> Any:
    """orbax.checkpoint, imported on first use (importing it costs about a second)."""
    import orbax.checkpoint as _ocp

    return _ocp


def build(obj: Any, kind: str, local_as_numpy: bool = False) -> tuple[dict, dict[str, Any]]:
    """Return (manifest, orbax tree of the arrays to store) for `obj` (the manifest not sealed).

    `local_as_numpy` (a multi-process save): a jax array held by this process alone is stored
    as numpy, which orbax writes from the primary process (it refuses process-local jax arrays).
    """
    records: list[ArrayRecord] = []
    tree = encode(obj, records)
    stored: dict[str, Any] = {}
    entries = []
    for i, r in enumerate(records):
        value = r.value
        shape = tuple(int(d) for d in value.shape)
        entry: dict[str, Any] = {
            "key": r.key,
            "kind": r.kind,
            "dtype": jnp.dtype(value.dtype).name,
            "shape": list(shape),
            "location": location_of(value),
        }
        if r.extra is not None:
            entry["extra"] = r.extra
        if value.size > 0:
            entry["stored"] = True
            if isinstance(value, jax.Array) and value.is_deleted():
                raise RuntimeError(
                    f"jaxmodule.save: array {r.key!r} has been deleted (donated to a "
                    "jitted call); save the value returned by that call instead"
                )
            if not isinstance(value, jax.Array) or value.is_fully_addressable:
                entry["crc32"] = crc32_of(np.asarray(value))
                if local_as_numpy and isinstance(value, jax.Array):
                    value = np.asarray(value)
            stored[f"a{i}"] = value
        else:
            entry["stored"] = False
        entries.append(entry)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "created_ns": time.time_ns(),
        "tree": tree,
        "arrays": entries,
    }
    return manifest, stored


def _meta(entry: dict) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(entry["shape"]), jnp.dtype(entry["dtype"]))


def _wants_jax(entry: dict) -> bool:
    if entry["kind"] in ("numpy", "npscalar"):
        return False
    # 64-bit data (e.g. int64 from a torch tensor) stays numpy unless JAX's x64 mode is on.
    return jnp.dtype(entry["dtype"]).itemsize < 8 or x64_enabled() or entry["kind"] == "jax"


def restore_args(
    manifest: dict, placer: Placer, saved_sharding: Callable[[str], Any]
) -> tuple[dict[str, Any], dict[int, Any]]:
    """orbax restore args for the stored arrays, and the placement for each array index."""
    o = ocp()
    args: dict[str, Any] = {}
    placements: dict[int, Any] = {}
    for i, entry in enumerate(manifest["arrays"]):
        if not _wants_jax(entry):
            placements[i] = None
            if entry.get("stored"):
                args[f"a{i}"] = o.RestoreArgs(restore_type=np.ndarray)
            continue
        name = f"a{i}"
        sharding = placer(
            entry["key"],
            _meta(entry),
            entry.get("location", "cpu"),
            functools.partial(saved_sharding, name),
        )
        placements[i] = sharding
        if entry.get("stored"):
            args[name] = o.ArrayRestoreArgs(
                sharding=sharding,
                global_shape=tuple(entry["shape"]),
                dtype=jnp.dtype(entry["dtype"]),
            )
    return args, placements


def assemble(
    manifest: dict,
    restored: dict[str, Any],
    placements: dict[int, Any],
    path: str,
    verify: bool = True,
) -> Any:
    """Check the restored arrays against the manifest and rebuild the saved object."""
    expected = {f"a{i}" for i, e in enumerate(manifest["arrays"]) if e.get("stored")}
    got = set(restored)
    if got != expected:
        missing = sorted(expected - got, key=lambda k: int(k[1:]))
        raise RuntimeError(
            f"jaxmodule.load: {path} is damaged: arrays missing from its data: "
            f"{[manifest['arrays'][int(k[1:])]['key'] for k in missing]}"
        )
    arrays: list[Any] = []
    for i, entry in enumerate(manifest["arrays"]):
        dtype, shape = jnp.dtype(entry["dtype"]), tuple(entry["shape"])
        if entry.get("stored"):
            value = restored[f"a{i}"]
            if tuple(value.shape) != shape or jnp.dtype(value.dtype) != dtype:
                raise RuntimeError(
                    f"jaxmodule.load: {path} is damaged: array {entry['key']!r} was saved as {dtype}{list(shape)} "
                    f"but its data reads as {jnp.dtype(value.dtype)}{list(value.shape)}"
                )
            if (
                verify
                and "crc32" in entry
                and (not isinstance(value, jax.Array) or value.is_fully_addressable)
            ):
                if crc32_of(np.asarray(value)) != entry["crc32"]:
                    raise RuntimeError(
                        f"jaxmodule.load: {path} is damaged: the data of array "
                        f"{entry['key']!r} fails its checksum"
                    )
        elif placements.get(i) is None:
            value = np.zeros(shape, dtype)
        else:
            value = jax.device_put(np.zeros(shape, dtype), placements[i])
        kind = entry["kind"]
        if kind == "npscalar":
            value = np.asarray(value)[()]
        elif kind == "Parameter":
            value = Parameter._wrap(value, bool(entry.get("extra", True)))
        elif kind == "Buffer":
            value = Buffer._wrap(value, bool(entry.get("extra", True)))
        arrays.append(value)
    try:
        return decode(manifest["tree"], arrays)
    except RecursionError:
        raise RuntimeError(
            f"jaxmodule.load: {path} has a damaged manifest: its object tree is nested too deeply"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to rebuild means the tree is not one save wrote
        raise RuntimeError(
            f"jaxmodule.load: {path} has a damaged manifest: {type(e).__name__}: {str(e)[:200]}"
        ) from e


def records_keys(manifest: dict) -> list[str]:
    return [e["key"] for e in manifest["arrays"]]
