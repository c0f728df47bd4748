"""`save` / `load`: torch.save and torch.load for JAX arrays, backed by orbax.

A checkpoint is a directory (named as you like, `model.pth` included):

    model.pth/
      jaxmodule.json   manifest: containers, key order, Python leaves, array records (written last)
      arrays/          orbax PyTree checkpoint of the arrays; sharded arrays are written shard by shard

`load` also reads files written by `torch.save` (zip or legacy format) and `.safetensors` files,
so `jaxmodule.load('torch_model.pth')` returns a state_dict ready for `load_state_dict`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from . import _atomic
from ._format import assemble, build, check_manifest, ocp, records_keys, restore_args
from ._placement import Placer

__all__ = ["save", "load"]

_ARRAYS = "arrays"


def _as_path(f: Any, fn: str) -> Path:
    if hasattr(f, "read") or hasattr(f, "write"):
        raise NotImplementedError(
            f"jaxmodule.{fn}: file objects are not supported (a checkpoint is a directory); pass a path")
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"jaxmodule.{fn}: f must be a str or os.PathLike path, got {type(f).__name__}")
    return Path(os.path.abspath(os.fspath(f)))


def save(obj: Any, f: str | os.PathLike) -> None:
    """Save an object (state_dict, optimizer state, nested containers of arrays) to a checkpoint.

    Mirrors `torch.save`. The write is atomic: the checkpoint is assembled in a hidden sibling
    directory and swapped into place, so a crash never leaves `f` damaged or half-written.

    Args:
        obj: arrays (jax, numpy, Parameter, Buffer, torch tensors), dict, OrderedDict, list, tuple,
            set, None, bool, int, float, complex, str, bytes, or `jaxmodule.Generator`, nested.
        f: the checkpoint path (a directory is created there).

    >>> import jax.numpy as jnp, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> save({'w': jnp.ones(3), 'step': 7}, os.path.join(d, 'ckpt.pth'))
    >>> load(os.path.join(d, 'ckpt.pth'))['step']
    7

    Differences from torch: `f` must be a path (a checkpoint is a directory, not a file);
    arbitrary Python objects (classes, functions) cannot be stored, as with
    `torch.load(weights_only=True)`; torch tensors come back as jax arrays.
    """
    path = _as_path(f, "save")
    if not path.parent.is_dir():
        raise RuntimeError(f"Parent directory {path.parent} does not exist.")
    if path.is_dir() and not (path / _atomic.MANIFEST).is_file() and any(path.iterdir()):
        raise IsADirectoryError(
            f"jaxmodule.save: {path} is an existing directory that is not a jaxmodule checkpoint; "
            "refusing to replace it")
    manifest, stored = build(obj, kind="save")
    tmp = _atomic.temp_sibling(path)
    try:
        tmp.mkdir()
        if stored:
            o = ocp()
            with o.Checkpointer(o.PyTreeCheckpointHandler()) as ck:
                ck.save(tmp / _ARRAYS, args=o.args.PyTreeSave(stored))
        _atomic.fsync_tree(tmp)
        _atomic.write_json(tmp / _atomic.MANIFEST, manifest)  # its presence marks `tmp` complete
        _atomic.replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic.remove_siblings(path)


def _locate(path: Path) -> Path:
    if os.path.lexists(path):
        return path
    recovered = _atomic.find_recoverable(path)
    if recovered is not None:
        return recovered
    raise FileNotFoundError(f"jaxmodule.load: no checkpoint at {path}: the path does not exist")


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head[:1] == b"\x80":  # a pickle: torch's legacy (non-zip) format
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return "safetensors"
    return "unknown"


def _describe_directory(path: Path) -> str:
    names = {p.name for p in path.iterdir()}
    if not names:
        return "an empty directory"
    if any((path / n / _atomic.MANIFEST).is_file() or (path / n / "manifest").is_dir()
           for n in names if n.isdigit()):
        return ("a jaxmodule.checkpoint.CheckpointManager directory (one checkpoint per step); "
                "open it with CheckpointManager(path).restore(step) or load(path / '<step>')")
    if "_CHECKPOINT_METADATA" in names or "_METADATA" in names:
        return "an orbax checkpoint without a jaxmodule manifest; read it with orbax directly"
    return f"a directory without a {_atomic.MANIFEST} manifest"


def read_manifest(path: Path, where: Path) -> dict:
    try:
        manifest = _atomic.read_json(path)
    except ValueError as e:
        raise RuntimeError(f"jaxmodule.load: {where} has a damaged manifest ({path.name} is not valid "
                           f"JSON: {e}); the checkpoint is incomplete or corrupted") from None
    check_manifest(manifest, str(where))
    return manifest


def _load_dir(path: Path, shown: Path, map_location: Any, verify: bool) -> Any:
    if (path / _atomic.MANIFEST).is_file():
        manifest_file, arrays_dir = path / _atomic.MANIFEST, path / _ARRAYS
    elif (path / "manifest" / _atomic.MANIFEST).is_file():  # one step of a CheckpointManager
        manifest_file, arrays_dir = path / "manifest" / _atomic.MANIFEST, path / _ARRAYS
    else:
        raise ValueError(f"jaxmodule.load: {shown} is not a jaxmodule checkpoint: it is "
                         f"{_describe_directory(path)}")
    manifest = read_manifest(manifest_file, shown)
    placer = Placer(map_location, records_keys(manifest), str(shown))
    o = ocp()
    restored: dict[str, Any] = {}
    with o.Checkpointer(o.PyTreeCheckpointHandler()) as ck:
        cache: list[Any] = []

        def saved_sharding(name: str) -> Any:
            if not cache:
                cache.append(ck.metadata(arrays_dir).item_metadata.tree)
            return cache[0][name].sharding.to_jax_sharding()

        args, placements = restore_args(manifest, placer, saved_sharding)
        if args:
            if not arrays_dir.is_dir():
                raise RuntimeError(f"jaxmodule.load: {shown} is damaged: its array data "
                                   f"({arrays_dir.name}/) is missing")
            try:
                restored = ck.restore(arrays_dir, args=o.args.PyTreeRestore(restore_args=args))
            except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
                raise RuntimeError(f"jaxmodule.load: {shown} is damaged: reading its arrays failed "
                                   f"({type(e).__name__}: {str(e)[:500]})") from e
    return assemble(manifest, dict(restored), placements, str(shown), verify)


def load(f: str | os.PathLike, map_location: Any = None, *, weights_only: bool | None = None,
         mmap: bool | None = None, verify: bool = True) -> Any:
    """Load an object saved by `save`, or a file written by `torch.save` or safetensors.

    Mirrors `torch.load`.

    Args:
        f: the checkpoint path.
        map_location: where arrays go, placed while reading: None (where they were saved, else
            the default device), a device ('cpu', 'cuda:0', jax.Device), a
            `jax.sharding.Sharding`, a dict (torch's location remap `{'cuda:1': 'cuda:0'}`, or
            array key -> device/Sharding), or a callable `fn(meta, location)`; see
            `jaxmodule.checkpoint._placement`.
        weights_only: accepted for torch compatibility; loading never runs pickled code.
        mmap: not supported (True raises NotImplementedError).
        verify: check every array against the CRC32 recorded when it was saved.

    Raises:
        FileNotFoundError: `f` does not exist.
        ValueError: `f` is not a jaxmodule checkpoint (or is a CheckpointManager directory).
        RuntimeError: the checkpoint is damaged or truncated.

    Differences from torch: numpy arrays come back as numpy arrays; 64-bit torch tensors stay
    numpy unless JAX's x64 mode is on; a device that does not exist here falls back to the
    default device when `map_location` is None (torch raises).
    """
    if mmap:
        raise NotImplementedError("jaxmodule.load: mmap=True is not supported")
    shown = _as_path(f, "load")
    path = _locate(shown)
    if path.is_dir():
        return _load_dir(path, shown, map_location, verify)
    kind = _sniff(path)
    if kind == "torch":
        from ..utils import load_torch_state_dict

        return load_torch_state_dict(path, map_location=map_location)
    if kind == "safetensors":
        from ..utils import load_safetensors

        return load_safetensors(path, map_location=map_location)
    raise ValueError(f"jaxmodule.load: {shown} is not a jaxmodule checkpoint (a directory), a "
                     "torch.save file or a safetensors file")
