"""Crash-safe replacement of a checkpoint directory, and the clean-up of what crashes leave.

`save` (holding the path's `WriterLock`) writes the whole checkpoint into a hidden sibling
`.{name}.jmtmp-<token>` (12 hex digits), flushes every file to disk, writes the manifest last,
then swaps the sibling into place:

* Linux `renameat2(RENAME_EXCHANGE)` swaps the two directories in one atomic step, so the path
  always holds a complete checkpoint (the old one before, the new one after);
* elsewhere, the old directory is renamed to `.{name}.jmold-<token>` and the new one renamed into
  place. A crash between those two renames leaves the path missing but both complete copies as
  siblings; `find_recoverable` lets `load` use the newest of them.

Ownership markers make every sibling jaxmodule may delete provably its own: a temporary directory
holds `.jaxmodule-writing` (token, pid, host) from its creation until its manifest is written,
and a directory being deleted holds `.jaxmodule-discard`, removed last. `remove_stale_siblings`
runs under the writer lock (so no other writer of this path is alive) and deletes a sibling only
when its name is exactly jaxmodule's and it is (a) marked with its own token by a process that is
not alive here, (b) empty, or (c) a complete checkpoint whose manifest lists everything in it.
Anything else with a similar name is the user's and stays. A directory is deleted only after
its readers are done (see `_lock.exclusive`).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from ._lock import exclusive
from ._manifest import MANIFEST, check_files, read, unaccounted

__all__ = [
    "MANIFEST",
    "WRITING",
    "DISCARD",
    "temp_sibling",
    "lock_path",
    "make_temp",
    "finish_temp",
    "fsync_tree",
    "write_json",
    "replace_dir",
    "discard",
    "find_recoverable",
    "remove_stale_siblings",
]

WRITING = ".jaxmodule-writing"
DISCARD = ".jaxmodule-discard"
_TMP = ".jmtmp-"
_OLD = ".jmold-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def temp_sibling(path: Path, tag: str = _TMP) -> Path:
    """A fresh sibling name `.{name}{tag}<token>` (not created)."""
    return path.parent / f".{path.name}{tag}{uuid.uuid4().hex[:12]}"


def lock_path(path: Path) -> Path:
    """The lock file of the writers of `path`."""
    return path.parent / f".{path.name}.jmlock"


def _token(child: Path, final: Path) -> str | None:
    """The token of a sibling named exactly as jaxmodule names those of `final`, else None."""
    m = re.fullmatch(re.escape(f".{final.name}") + r"\.jm(?:tmp|old)-([0-9a-f]{12})", child.name)
    return m.group(1) if m else None


def _write_marker(directory: Path, name: str) -> None:
    token = directory.name[-12:]
    text = json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname()})
    with open(directory / name, "w", encoding="utf-8") as fh:
        fh.write(text)


def make_temp(final: Path) -> Path:
    """Create the temporary sibling a save writes into, marked as this process's."""
    tmp = temp_sibling(final)
    tmp.mkdir()
    _write_marker(tmp, WRITING)
    return tmp


def finish_temp(tmp: Path) -> None:
    """Drop the writing marker of a complete temporary directory (it is then a checkpoint)."""
    os.unlink(tmp / WRITING)
    _fsync_path(tmp, directory=True)


def _fsync_path(p: Path, directory: bool) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(p, flags)
    except OSError:
        return  # platforms that cannot open directories (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` to stable storage."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name, directory=False)
        _fsync_path(Path(dirpath), directory=True)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON to `path` through a temporary file, fsync, rename."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False when the platform cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE) failed: {os.strerror(err)}")


def discard(p: Path) -> bool:
    """Delete a file, link or one of jaxmodule's own directories; returns whether it is gone.

    A directory is deleted only once its readers are done (`exclusive`; after a minute of
    waiting it is left for a later clean-up). It is marked first and its marker removed last,
    so a crash midway leaves something `remove_stale_siblings` recognises. Best effort: errors
    leave the rest in place.
    """
    try:
        if not os.path.lexists(p):
            return True
        if p.is_symlink() or not p.is_dir():
            p.unlink(missing_ok=True)
            return True
        with exclusive(p) as taken:
            if not taken:
                return False
            if not (p / DISCARD).exists():
                _write_marker(p, DISCARD)
            for child in p.iterdir():
                if child.name == DISCARD:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            (p / DISCARD).unlink(missing_ok=True)
            p.rmdir()
        return True
    except OSError:
        return False


def replace_dir(new: Path, final: Path) -> None:
    """Move the complete directory `new` to `final`, replacing what is there without a window
    in which `final` holds a partial checkpoint."""
    if not os.path.lexists(final):
        os.rename(new, final)
    elif _exchange(new, final):
        discard(new)  # `new` now holds the previous checkpoint (or file)
    else:
        old = temp_sibling(final, _OLD)
        os.rename(final, old)
        os.rename(new, final)
        discard(old)
    _fsync_path(final.parent, directory=True)


def _complete(p: Path) -> dict | None:
    """The manifest of a complete checkpoint directory `p` (every listed file present), else None."""
    try:
        if (p / DISCARD).exists():
            return None
        manifest = read(p / MANIFEST, str(p))
        check_files(p, manifest, str(p))
        return manifest
    except (OSError, RuntimeError):
        return None


def find_recoverable(final: Path) -> Path | None:
    """For a missing `final`: the newest complete sibling left by an interrupted replace."""
    if not final.parent.is_dir():
        return None
    found = []
    for child in final.parent.iterdir():
        if _token(child, final) is not None and child.is_dir() and not child.is_symlink():
            manifest = _complete(child)
            if manifest is not None:
                found.append((manifest.get("created_ns", 0), child.name, child))
    return max(found)[2] if found else None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_marker(path: Path) -> dict | None:
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing, or cut short by a crash while it was written
    return marker if isinstance(marker, dict) else None


def _abandoned(d: Path, token: str) -> bool:
    """Whether jaxmodule's sibling `d` is provably its own and its writer gone (the caller holds
    the writer lock, so no live writer of this path uses it)."""
    names = set(os.listdir(d))
    markers = names & {WRITING, DISCARD}
    if names <= {WRITING, DISCARD}:
        return True  # empty, or nothing but jaxmodule's markers
    for name in sorted(markers):
        marker = _read_marker(d / name)
        if marker is None:
            continue  # judged by its contents below
        if marker.get("token") != token:
            return False
        same_host = marker.get("host") == socket.gethostname()
        return not (
            same_host and marker.get("pid") != os.getpid() and _pid_alive(marker.get("pid"))
        )
    try:
        manifest = read(d / MANIFEST, str(d))
    except (OSError, RuntimeError):
        return False
    return not unaccounted(d, manifest, extra=tuple(markers))


def remove_stale_siblings(final: Path) -> None:
    """Delete what interrupted saves of `final` left beside it (call with the writer lock held)."""
    for child in final.parent.iterdir():
        token = _token(child, final)
        if token is None or child.is_symlink() or not child.is_dir():
            continue
        try:
            stale = _abandoned(child, token)
        except OSError:
            stale = False
        if stale:
            discard(child)
