"""The manifest `jaxmodule.json`: its checksum, its schema, and the inventory of its checkpoint.

The manifest carries a CRC32 of itself in the field `manifest_crc32`: the CRC32 of the canonical
JSON of every other field (`json.dumps(rest, sort_keys=True, separators=(",", ":"),
ensure_ascii=True)`, UTF-8). The canonical form does not depend on how the file was spaced, so
the manifest orbax writes for a `CheckpointManager` step is checked the same way.

A checkpoint written by `save` also lists every file and directory it holds (`files`: relative
path -> size in bytes, `dirs`: relative paths). `load` checks the sizes before orbax reads
anything; `save` replaces an existing checkpoint only when everything in it is listed.

Format versions: 2 (checksum required), 1 (written before checksums; read without one).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from ._tree import storable

__all__ = [
    "MANIFEST",
    "FORMAT",
    "VERSION",
    "seal",
    "parse",
    "read",
    "inventory",
    "check_files",
    "unaccounted",
]

MANIFEST = "jaxmodule.json"
FORMAT = "jaxmodule.checkpoint"
VERSION = 2
_READABLE = (1, 2)
_CHECKSUM = "manifest_crc32"
_KINDS = frozenset({"jax", "numpy", "npscalar", "Parameter", "Buffer", "torch"})
_MAX_DIMS = 64


def _canonical_crc(body: dict) -> int:
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF


def seal(manifest: dict) -> dict:
    """Add the manifest's own checksum (in place); returns `manifest`."""
    manifest.pop(_CHECKSUM, None)
    manifest[_CHECKSUM] = _canonical_crc(manifest)
    return manifest


def _damaged(where: str, what: str) -> RuntimeError:
    return RuntimeError(f"jaxmodule.load: {where} has a damaged manifest ({what})")


def parse(raw: bytes, where: str, name: str = MANIFEST) -> dict:
    """The manifest in `raw`, checked (format, version, checksum, schema); RuntimeError if not."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _damaged(
            where,
            f"{name} is not valid JSON: {str(e)[:200]}; the checkpoint is incomplete or corrupted",
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _damaged(where, f"no '{FORMAT}' format tag")
    version = manifest.get("version")
    if version not in _READABLE or isinstance(version, bool):
        raise RuntimeError(
            f"jaxmodule.load: {where} was written with checkpoint format version "
            f"{version!r}; this jaxmodule reads versions {list(_READABLE)}"
        )
    stored_crc = manifest.pop(_CHECKSUM, None)
    if stored_crc is None and version >= 2:
        raise RuntimeError(
            f"jaxmodule.load: {where} is damaged: its manifest {name} has no checksum"
        )
    if stored_crc is not None and stored_crc != _canonical_crc(manifest):
        raise RuntimeError(
            f"jaxmodule.load: {where} is damaged: its manifest {name} fails its checksum"
        )
    _check_schema(manifest, where)
    return manifest


def read(path: Path, where: str) -> dict:
    """`parse` the manifest file at `path`."""
    return parse(path.read_bytes(), where, path.name)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_entry(i: int, e: Any, where: str) -> None:
    if not isinstance(e, dict):
        raise _damaged(where, f"array record {i} is not an object")
    if (
        not isinstance(e.get("key"), str)
        or not isinstance(e.get("kind"), str)
        or e["kind"] not in _KINDS
    ):
        raise _damaged(where, f"array record {i} has no valid key and kind")
    dtype = e.get("dtype")
    try:
        ok = isinstance(dtype, str) and storable(jnp.dtype(dtype))
    except TypeError:
        ok = False
    if not ok:
        raise _damaged(where, f"array record {i} has an invalid dtype {dtype!r:.40}")
    shape = e.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(_is_int(d) and d >= 0 for d in shape)
    ):
        raise _damaged(where, f"array record {i} has an invalid shape {shape!r:.60}")
    empty = any(d == 0 for d in shape)
    if not isinstance(e.get("stored"), bool) or e["stored"] == empty:
        raise _damaged(where, f"array record {i}: 'stored' does not match its shape")
    crc = e.get("crc32")
    if crc is not None and not (_is_int(crc) and 0 <= crc < 2**32):
        raise _damaged(where, f"array record {i} has an invalid checksum")
    if not isinstance(e.get("location", "cpu"), str):
        raise _damaged(where, f"array record {i} has an invalid location")


def _safe_relative(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def _check_schema(m: dict, where: str) -> None:
    for field in ("tree", "arrays"):
        if field not in m:
            raise _damaged(where, f"field '{field}' missing")
    if not isinstance(m["arrays"], list):
        raise _damaged(where, "'arrays' is not a list")
    for i, entry in enumerate(m["arrays"]):
        _check_entry(i, entry, where)
    if not _is_int(m.get("created_ns", 0)):
        raise _damaged(where, "'created_ns' is not an integer")
    files, dirs = m.get("files", {}), m.get("dirs", [])
    if not isinstance(files, dict) or not all(
        _safe_relative(k) and _is_int(v) and v >= 0 for k, v in files.items()
    ):
        raise _damaged(where, "invalid file inventory")
    if not isinstance(dirs, list) or not all(_safe_relative(d) for d in dirs):
        raise _damaged(where, "invalid directory inventory")


def _walk(root: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """(files: rel -> size, dirs, links) under `root`, without following links."""
    files: dict[str, int] = {}
    dirs: list[str] = []
    links: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath).relative_to(root)
        for name in list(dirnames):
            rel = (base / name).as_posix()
            if os.path.islink(os.path.join(dirpath, name)):
                links.append(rel)
                dirnames.remove(name)
            else:
                dirs.append(rel)
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = (base / name).as_posix()
            if os.path.islink(full) or not os.path.isfile(full):
                links.append(rel)
            else:
                files[rel] = os.path.getsize(full)
    return files, sorted(dirs), sorted(links)


def inventory(root: Path, skip: tuple[str, ...] = ()) -> tuple[dict[str, int], list[str]]:
    """(files: rel -> size, dirs) under `root`, leaving out the top-level names in `skip`."""
    files, dirs, _ = _walk(root)
    keep = lambda rel: rel.split("/", 1)[0] not in skip  # noqa: E731
    return {k: v for k, v in sorted(files.items()) if keep(k)}, [d for d in dirs if keep(d)]


def check_files(root: Path, manifest: dict, where: str) -> None:
    """RuntimeError when a file the manifest lists is missing or has another size."""
    for rel, size in manifest.get("files", {}).items():
        top = rel.split("/", 1)[0]
        if "/" in rel and not (root / top).is_dir():
            raise RuntimeError(
                f"jaxmodule.load: {where} is damaged: its array data ({top}/) is missing"
            )
        try:
            got = os.stat(root / rel).st_size
        except FileNotFoundError:
            raise RuntimeError(
                f"jaxmodule.load: {where} is damaged: reading its arrays failed ({rel} is missing)"
            ) from None
        if got != size:
            raise RuntimeError(
                f"jaxmodule.load: {where} is damaged: reading its arrays failed "
                f"({rel} has {got} bytes, {size} were written)"
            )


def unaccounted(root: Path, manifest: dict | None, extra: tuple[str, ...] = ()) -> list[str]:
    """Entries under `root` that are not part of the checkpoint `manifest` describes (every
    entry but the manifest and `extra` when `manifest` is None)."""
    allowed_top = {MANIFEST, *extra}
    if manifest is None:
        return sorted(n for n in os.listdir(root) if n not in allowed_top)
    if "files" not in manifest:  # version 1: the manifest and orbax's arrays/ directory
        return sorted(
            n
            for n in os.listdir(root)
            if n not in allowed_top | {"arrays"} or (n == "arrays" and (root / n).is_symlink())
        )
    files, dirs, links = _walk(root)
    listed_files = set(manifest["files"]) | allowed_top
    listed_dirs = set(manifest.get("dirs", []))
    out = [rel for rel in files if rel not in listed_files]
    out += [rel for rel in dirs if rel not in listed_dirs]
    out += links
    return sorted(out)
