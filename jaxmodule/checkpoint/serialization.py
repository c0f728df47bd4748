"""`save` / `load`: torch.save and torch.load for JAX arrays, backed by orbax.

A path ending in `.pth`, `.pt` or `.bin` gets torch's own file format (`_torch_file`: the zip
`torch.save` writes, produced without torch; `torch.load` reads it). Any other path gets a
checkpoint directory:

    model.pth/
      jaxmodule.json   manifest: containers, key order, Python leaves, array records with CRC32s,
                       the list of files, and its own checksum (written last)
      arrays/          orbax PyTree checkpoint of the arrays; sharded arrays are written shard by shard

`load` also reads files written by `torch.save` (zip or legacy format) and `.safetensors` files,
so `jaxmodule.load('torch_model.pth')` returns a state_dict ready for `load_state_dict`.
What is and is not promised: docs/checkpoint_guarantees.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _atomic, _multiprocess, _torch_file
from ._format import assemble, build, ocp, records_keys, restore_args
from ._lock import WriterLock, pinned
from ._manifest import MANIFEST, check_files, inventory, parse, seal, unaccounted
from ._placement import Placer

__all__ = ["save", "load", "register_file_reader"]

# Readers of the single-file formats `load` accepts ("torch", "safetensors"), keyed by what
# `_sniff` returns. `jaxmodule.utils` implements them and registers them when it is imported
# (it sits above checkpoint, so this file does not import it).
_FILE_READERS: dict[str, Callable[..., Any]] = {}


def register_file_reader(kind: str, reader: Callable[..., Any]) -> None:
    """Make `load` read a file of `kind` with `reader(path, map_location=...)`."""
    _FILE_READERS[kind] = reader


_ARRAYS = "arrays"
_READ_ATTEMPTS = 8


class _NotACheckpoint(ValueError, RuntimeError):
    """`load` was given something that is not a checkpoint (a ValueError, and a RuntimeError as
    every other load failure is)."""


def _as_path(f: Any, fn: str) -> Path:
    if hasattr(f, "read") or hasattr(f, "write"):
        raise NotImplementedError(
            f"jaxmodule.{fn}: file objects are not supported (a checkpoint is a directory); pass a path"
        )
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(
            f"jaxmodule.{fn}: f must be a str or os.PathLike path, got {type(f).__name__}"
        )
    return Path(os.path.abspath(os.fspath(f)))


def _file_ancestor(path: Path) -> Path | None:
    """The nearest ancestor of `path` that exists and is not a directory, if any."""
    for parent in path.parents:
        if os.path.exists(parent):
            return None if parent.is_dir() else parent
    return None


def _check_replaceable(path: Path) -> None:
    """IsADirectoryError unless `path` may be replaced: missing, a file (as torch.save
    overwrites), an empty directory, or a jaxmodule checkpoint that holds nothing else."""
    if not os.path.lexists(path) or path.is_symlink() or not path.is_dir():
        return
    if not any(path.iterdir()):
        return
    reason, manifest = "", None
    if not (path / MANIFEST).is_file():
        reason = f"no {MANIFEST}"
    else:
        try:
            manifest = parse((path / MANIFEST).read_bytes(), str(path))
        except RuntimeError as e:
            reason = f"its manifest cannot be read: {e}"
    extra = unaccounted(path, manifest)
    if manifest is not None and not extra:
        return
    reason = reason or "it holds entries its manifest does not list"
    shown = ", ".join(repr(x) for x in extra[:10]) + (" ..." if len(extra) > 10 else "")
    raise IsADirectoryError(
        f"jaxmodule.save: {path} is an existing directory that is not a jaxmodule "
        f"checkpoint; refusing to replace it ({reason}; unexpected entries: [{shown}]); "
        "move or delete them first"
    )


def save(obj: Any, f: str | os.PathLike) -> None:
    """Save an object (state_dict, optimizer state, nested containers of arrays) to a checkpoint.

    Mirrors `torch.save`. The write is atomic: the checkpoint is assembled in a hidden sibling
    directory and swapped into place, so a crash never leaves `f` damaged or half-written.
    Writers to one path take turns: a second `save` to the same path (another thread or
    process) waits until the first one has finished. The replaced checkpoint is deleted once
    any `load` still reading it is done. Guarantees: docs/checkpoint_guarantees.md.

    In a multi-process run (`jaxmodule.distributed.init_process_group`), every process calls
    `save` with the same path, as with a collective: each writes the shards of the arrays it
    holds, process 0 writes the manifest and swaps the checkpoint in, and every process returns
    once it is in place. Arrays held by one process only (numpy, or on one device) are saved
    from process 0's values. If any process fails, all of them raise and nothing is replaced.

    A path ending in `.pth`, `.pt` or `.bin` gets torch's own file format instead (the zip that
    `torch.save` writes, produced without torch), so `torch.load(f, weights_only=True)` reads it
    and `model.load_state_dict(torch.load(f))` works in torch. It is written atomically (a
    temporary sibling file, flushed, renamed into place). Arrays become plain tensors (Parameters
    and Buffers too); numpy vs jax and sharding are not recorded, so `load` gives back jax arrays
    (64-bit ones as numpy unless x64 is on). A `jaxmodule.Generator` cannot be stored there. In a
    multi-process run every path, `.pth` included, gets the sharded checkpoint directory (a torch
    file would need every array whole on one process).

    Args:
        obj: arrays (jax, numpy, Parameter, Buffer, torch tensors), dict, OrderedDict, list, tuple,
            set, None, bool, int, float, complex, str, bytes, or `jaxmodule.Generator`, nested.
        f: the checkpoint path (a directory is created there; a file for `.pth`/`.pt`/`.bin`).

    Raises:
        IsADirectoryError: `f` is a directory that is not a jaxmodule checkpoint holding nothing
            but its own files (it is left untouched).
        RuntimeError: the parent directory does not exist or is a file.
        TypeError: `obj` holds something that cannot be stored (a Module or optimizer: the
            message shows how to save its `state_dict()`).

    >>> import jax.numpy as jnp, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> save({'w': jnp.ones(3), 'step': 7}, os.path.join(d, 'ckpt'))
    >>> load(os.path.join(d, 'ckpt'))['step']
    7
    >>> save({'w': jnp.ones(3), 'step': 7}, os.path.join(d, 'model.pth'))  # torch.load reads it
    >>> os.path.isfile(os.path.join(d, 'model.pth')), load(os.path.join(d, 'model.pth'))['step']
    (True, 7)

    Differences from torch: `f` must be a path; other than `.pth`/`.pt`/`.bin`, a checkpoint
    is a directory that `jaxmodule.load` reads and `torch.load` cannot; a Module or
    optimizer is refused with the fix (save its `state_dict()`, as torch recommends);
    arbitrary Python objects (classes, functions) cannot be stored, as with
    `torch.load(weights_only=True)`; torch tensors come back as jax arrays; a directory that is
    not a checkpoint is never replaced.
    """
    path = _as_path(f, "save")
    if _multiprocess.is_multiprocess():
        _save_collective(obj, path)
        return
    _check_parent(path)
    if _torch_file.wants_torch_file(path):
        _save_torch_file(obj, path)
        return
    manifest, stored = build(obj, kind="save")
    with WriterLock(_atomic.lock_path(path)):
        _check_replaceable(path)
        tmp = _atomic.make_temp(path)
        try:
            _write_arrays(tmp, stored)
            _commit(tmp, path, manifest)
        except BaseException:
            _atomic.discard(tmp)
            raise
        _atomic.remove_stale_siblings(path)


def _save_torch_file(obj: Any, path: Path) -> None:
    """Write torch's file format at `path` atomically: a temporary sibling file, flushed, then
    swapped into place; nothing is touched if `obj` cannot be stored."""
    plan = _torch_file.prepare(obj)
    with WriterLock(_atomic.lock_path(path)):
        _check_replaceable(path)
        tmp = _atomic.temp_sibling(path)
        try:
            _torch_file.write_torch_file_at(plan, tmp)
            _atomic.replace_dir(tmp, path)  # swaps a file in as it swaps a directory
        except BaseException:
            _atomic.discard(tmp)
            raise
        _atomic.remove_stale_siblings(path)
        _torch_file.remove_stale_temp_files(path)


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        blocker = _file_ancestor(path)
        if blocker is not None:
            raise RuntimeError(
                f"jaxmodule.save: cannot create {path}: its parent {blocker} is a file, "
                "not a directory"
            )
        raise RuntimeError(f"Parent directory {path.parent} does not exist.")


def _write_arrays(tmp: Path, stored: dict[str, Any]) -> None:
    """Write the arrays into `tmp` (collective in a multi-process run: every process writes its
    shards into the same `tmp`)."""
    if stored:
        o = ocp()
        with o.Checkpointer(o.PyTreeCheckpointHandler()) as ck:
            ck.save(tmp / _ARRAYS, args=o.args.PyTreeSave(stored))


def _commit(tmp: Path, path: Path, manifest: dict) -> None:
    """Flush `tmp`, write its manifest last (its presence marks `tmp` complete), swap it in."""
    _atomic.fsync_tree(tmp)
    manifest["files"], manifest["dirs"] = inventory(tmp, skip=(_atomic.WRITING, _atomic.DISCARD))
    _atomic.write_json(tmp / MANIFEST, seal(manifest))
    _atomic.finish_temp(tmp)
    _atomic.replace_dir(tmp, path)


def _step(
    rv: _multiprocess.Rendezvous, key: str, fn: Callable[[], Any], value: str = ""
) -> tuple[Any, list[str]]:
    """Run this process's part `fn` of a collective step, then agree with every process on its
    outcome: re-raise this process's error, or PeerFailed for another's."""
    try:
        out = fn()
    except BaseException as e:
        rv.all_ok(key, error=e)
        raise
    return out, rv.all_ok(key, value=value)


def _save_collective(obj: Any, path: Path) -> None:
    """`save` called by every process of a multi-process run (same `obj` structure, same path).

    All processes agree on one temporary directory, which process 0 creates (holding the path's
    writer lock) and publishes; every process writes its shards into it; process 0 alone writes
    the manifest and swaps the directory into place; the others return once it has. Arrays that
    live on one process only (numpy, or a jax array on this process's devices) are written from
    process 0's values."""
    rv = _multiprocess.Rendezvous("save", str(path))
    (manifest, stored), paths = _step(
        rv, "built", lambda: build(obj, kind="save", local_as_numpy=True), value=str(path)
    )
    if len(set(paths)) != 1:
        raise ValueError(
            f"jaxmodule.save: every process must save to the same path; the processes gave {paths}"
        )
    lock = WriterLock(_atomic.lock_path(path))
    if rv.primary:
        try:
            _check_parent(path)
            lock.acquire()
            _check_replaceable(path)
            tmp = _atomic.make_temp(path)
        except BaseException as e:
            lock.release()
            rv.publish("tmp", error=e)
            raise
        rv.publish("tmp", tmp.name)
    else:
        tmp = path.parent / rv.fetch("tmp")
    if not rv.primary:
        _step(rv, "written", lambda: _write_arrays(tmp, stored))
        rv.fetch("committed")  # process 0 has swapped the checkpoint in and released the lock
        return
    try:
        _step(rv, "written", lambda: _write_arrays(tmp, stored))
        _commit(tmp, path, manifest)
    except BaseException as e:
        _atomic.discard(tmp)
        lock.release()
        rv.publish("committed", error=e)
        raise
    _atomic.remove_stale_siblings(path)
    lock.release()
    rv.publish("committed")


def _locate(path: Path) -> Path:
    if os.path.lexists(path):
        return path
    recovered = _atomic.find_recoverable(path)
    if recovered is not None:
        return recovered
    blocker = _file_ancestor(path)
    if blocker is not None:
        raise FileNotFoundError(
            f"jaxmodule.load: no checkpoint at {path}: {blocker} is a file, not a directory"
        )
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


def _manifest_file(path: Path) -> Path | None:
    """The manifest of a `save` checkpoint or of one CheckpointManager step, if present."""
    for candidate in (path / MANIFEST, path / "manifest" / MANIFEST):
        if candidate.is_file():
            return candidate
    return None


def _not_a_checkpoint(path: Path, shown: Path) -> Exception:
    names = {p.name for p in path.iterdir()}
    if _ARRAYS in names or MANIFEST + ".part" in names:
        return RuntimeError(
            f"jaxmodule.load: {shown} is damaged: its manifest {MANIFEST} is missing"
        )
    if not names:
        what = "an empty directory"
    elif any((path / n / "manifest" / MANIFEST).is_file() for n in names if n.isdigit()):
        what = (
            "a jaxmodule.checkpoint.CheckpointManager directory (one checkpoint per step); "
            "open it with CheckpointManager(path).restore(step) or load(path / '<step>')"
        )
    elif "_CHECKPOINT_METADATA" in names or "_METADATA" in names:
        what = "an orbax checkpoint without a jaxmodule manifest; read it with orbax directly"
    else:
        what = f"a directory without a {MANIFEST} manifest"
    return _NotACheckpoint(f"jaxmodule.load: {shown} is not a jaxmodule checkpoint: it is {what}")


def _load_dir(path: Path, shown: Path, map_location: Any, verify: bool) -> Any:
    """Read the checkpoint directory `path` (`shown` in messages)."""
    manifest_file = _manifest_file(path)
    if manifest_file is None:
        raise _not_a_checkpoint(path, shown)
    manifest = parse(manifest_file.read_bytes(), str(shown))
    check_files(path, manifest, str(shown))
    placer = Placer(map_location, records_keys(manifest), str(shown))
    arrays_dir = path / _ARRAYS
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
                raise RuntimeError(
                    f"jaxmodule.load: {shown} is damaged: its array data "
                    f"({arrays_dir.name}/) is missing"
                )
            try:
                restored = ck.restore(arrays_dir, args=o.args.PyTreeRestore(restore_args=args))
            except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
                raise RuntimeError(
                    f"jaxmodule.load: {shown} is damaged: reading its arrays failed "
                    f"({type(e).__name__}: {str(e)[:500]})"
                ) from e
    return assemble(manifest, dict(restored), placements, str(shown), verify)


def _stamp(path: Path) -> tuple:
    """The directory at `path` and its manifest bytes, now. Equal stamps before and after a read
    mean that one checkpoint was read."""
    try:
        st = os.stat(path)
        manifest_file = _manifest_file(path)
        return (
            st.st_dev,
            st.st_ino,
            manifest_file.read_bytes() if manifest_file is not None else None,
        )
    except OSError:
        return (None,)


def read_checkpoint(shown: Path, map_location: Any, verify: bool) -> Any:
    """Read what is at `shown`, whole. A checkpoint directory is pinned while it is read (see
    `_lock.pinned`); where pinning is not available, it is read again if a writer replaced it
    meanwhile."""
    for attempt in range(_READ_ATTEMPTS):
        path = _locate(shown)
        if not path.is_dir():
            return _load_file(path, shown, map_location)
        with pinned(path) as stable:
            if stable is None:
                continue  # replaced between opening and pinning: look again
            if stable != path:  # a view of this one directory that no writer can change
                return _load_dir(stable, shown, map_location, verify)
            before = _stamp(path)
            try:
                out = _load_dir(path, shown, map_location, verify)
            except (RuntimeError, OSError, ValueError):
                if _stamp(path) == before:
                    raise
            else:
                if _stamp(path) == before:
                    return out
        time.sleep(0.01 * (attempt + 1))
    raise RuntimeError(
        f"jaxmodule.load: {shown} was replaced {_READ_ATTEMPTS} times while being read; "
        "try again when its writer pauses"
    )


def _load_file(path: Path, shown: Path, map_location: Any) -> Any:
    reader = _FILE_READERS.get(_sniff(path))
    if reader is not None:
        return reader(path, map_location=map_location)
    raise _NotACheckpoint(
        f"jaxmodule.load: {shown} is not a jaxmodule checkpoint (a directory), a "
        "torch.save file or a safetensors file"
    )


def load(
    f: str | os.PathLike,
    map_location: Any = None,
    *,
    weights_only: bool | None = None,
    mmap: bool | None = None,
    verify: bool = True,
) -> Any:
    """Load an object saved by `save`, or a file written by `torch.save` or safetensors.

    Mirrors `torch.load`. A `save` racing this read never mixes two checkpoints: the result is
    the old one or the new one, whole.

    In a multi-process run every process may call `load`: a sharded array comes back with the
    sharding it was saved with (or the one `map_location` gives), an array saved on one device
    on the matching device of this process, else on this process's default device.

    Args:
        f: the checkpoint path.
        map_location: where arrays go, placed while reading: None (where they were saved, else
            the default device), a device ('cpu', 'cuda:0', jax.Device), a
            `jax.sharding.Sharding`, a dict (torch's location remap `{'cuda:1': 'cuda:0'}`, or
            array key -> device/Sharding), or a callable `fn(meta, location)`; see
            `jaxmodule.checkpoint._placement`.
        weights_only: accepted for torch compatibility; loading never runs pickled code.
        mmap: not supported (True raises NotImplementedError).
        verify: check every array against the CRC32 recorded when it was saved (the manifest's
            own checksum and the file sizes are always checked).

    Raises:
        FileNotFoundError: `f` does not exist.
        ValueError: `f` is not a jaxmodule checkpoint (or is a CheckpointManager directory);
            this error is also a RuntimeError.
        RuntimeError: the checkpoint is damaged or truncated (the message names the path and
            what is wrong).

    Differences from torch: numpy arrays come back as numpy arrays; 64-bit torch tensors stay
    numpy unless JAX's x64 mode is on; a device that does not exist here falls back to the
    default device when `map_location` is None (torch raises).
    """
    if mmap:
        raise NotImplementedError("jaxmodule.load: mmap=True is not supported")
    return read_checkpoint(_as_path(f, "load"), map_location, verify)
