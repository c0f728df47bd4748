"""Crash-safe replacement of a checkpoint directory.

`save` writes the whole checkpoint into a hidden sibling `.{name}.jmtmp-<id>`, flushes every file
to disk, writes the manifest last (its presence marks the directory complete), then swaps the
sibling into place:

* Linux `renameat2(RENAME_EXCHANGE)` swaps the two directories in one atomic step, so the path
  always holds a complete checkpoint (the old one before, the new one after);
* elsewhere, the old directory is renamed to `.{name}.jmold-<id>` and the new one renamed into
  place. A crash between those two renames leaves the path missing but both complete copies as
  siblings; `find_recoverable` lets `load` use the newest of them.

Leftover siblings are removed by the next successful save to the same path. Two processes
saving to one path at the same time is not supported.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "temp_sibling", "fsync_tree", "write_json", "read_json", "replace_dir",
           "find_recoverable", "remove_siblings"]

MANIFEST = "jaxmodule.json"
_TMP = ".jmtmp-"
_OLD = ".jmold-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def temp_sibling(path: Path, tag: str = _TMP) -> Path:
    return path.parent / f".{path.name}{tag}{uuid.uuid4().hex[:12]}"


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


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


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


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def replace_dir(new: Path, final: Path) -> None:
    """Move the complete directory `new` to `final`, replacing what is there without a window
    in which `final` holds a partial checkpoint."""
    if not os.path.lexists(final):
        os.rename(new, final)
    elif _exchange(new, final):
        _remove(new)  # `new` now holds the previous checkpoint
    else:
        old = temp_sibling(final, _OLD)
        os.rename(final, old)
        os.rename(new, final)
        _remove(old)
    _fsync_path(final.parent, directory=True)


def _is_complete(p: Path) -> bool:
    try:
        return read_json(p / MANIFEST).get("format") == "jaxmodule.checkpoint"
    except (OSError, ValueError, AttributeError):
        return False


def find_recoverable(final: Path) -> Path | None:
    """For a missing `final`: the newest complete sibling left by an interrupted replace."""
    parent = final.parent
    if not parent.is_dir():
        return None
    prefix = f".{final.name}"
    found = []
    for child in parent.iterdir():
        rest = child.name[len(prefix):] if child.name.startswith(prefix) else ""
        if (rest.startswith(_TMP) or rest.startswith(_OLD)) and _is_complete(child):
            found.append((read_json(child / MANIFEST).get("created_ns", 0), child))
    return max(found)[1] if found else None


def remove_siblings(final: Path, keep: Path | None = None) -> None:
    """Delete temporary/old siblings of `final` left by interrupted saves."""
    prefix = f".{final.name}"
    for child in final.parent.iterdir():
        rest = child.name[len(prefix):] if child.name.startswith(prefix) else ""
        if (rest.startswith(_TMP) or rest.startswith(_OLD)) and child != keep:
            _remove(child)
