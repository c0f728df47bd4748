"""Locks: `WriterLock` (one writer per checkpoint path) and directory pins (readers vs deletion).

An exclusive advisory lock (`fcntl.flock`) on a lock file. `save` locks `.{name}.jmlock` beside
the checkpoint for the whole write and waits while another writer holds it; a
`CheckpointManager` locks `.jaxmodule.lock` inside its directory from its first save to `close()`
and refuses to write while another manager holds it. The lock dies with its process (the kernel
drops it), so a killed writer never blocks the next one.

The lock file is removed on release, and only by its holder, while it still holds it; an acquirer
that finds the path no longer names the file it locked (a holder removed it meanwhile) starts
over. So two writers can never hold locks on two different files at one path.

Readers never take the writer lock. A reader `pinned`s the checkpoint directory it reads: a
shared flock on the directory itself, and (Linux) a path through `/proc/self/fd` that keeps
naming that very directory even after a writer swaps a new checkpoint into its place. Before
deleting a checkpoint directory, jaxmodule takes an `exclusive` flock on it, which waits (up to
a minute) for its readers; so a reader never sees files vanish or change under it.

flock works on local file systems and, on Linux, on NFS (as a POSIX lock). Where `fcntl` does not
exist (Windows), the locks do nothing and concurrent writers are not detected.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "LockedError", "pinned", "exclusive"]

_PROC_FD = "/proc/self/fd"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


class LockedError(RuntimeError):
    """Another live writer holds the lock (raised only by a non-waiting acquire)."""


class WriterLock:
    """Exclusive lock on the file `path`; a context manager that waits for the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ('pid N on host H'), or 'unknown'."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            return "unknown"
        return text or "unknown"

    def acquire(self, wait: bool = True) -> WriterLock:
        """Take the lock; with `wait=False`, raise LockedError when another writer holds it."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this WriterLock")
        if fcntl is None:  # pragma: no cover - Windows
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                raise LockedError(f"{self.path} is held by {self.holder()}") from None
            except BaseException:
                os.close(fd)
                raise
            if self._names(fd):
                break
            os.close(fd)  # the holder we waited for removed this file: lock the current one
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def _names(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        fst = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self.acquire(wait=True)

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def pinned(path: Path) -> Iterator[Path | None]:
    """Pin the directory `path` while reading it (see the module docstring).

    Yields a path that names this very directory for as long as the pin is held
    (`/proc/self/fd/N` on Linux); `path` itself where pinning is not available; None when `path`
    was replaced between opening and locking it (look it up again).
    """
    if fcntl is None or not os.path.isdir(_PROC_FD):
        yield path
        return
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        yield path  # vanished or unreadable: the read itself reports it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            st, fst = os.stat(path), os.fstat(fd)
        except FileNotFoundError:
            yield None
            return
        except OSError:  # a file system without flock on directories
            yield path
            return
        yield (
            Path(f"{_PROC_FD}/{fd}") if (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino) else None
        )
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive(path: Path, timeout: float = 60.0) -> Iterator[bool]:
    """Hold an exclusive flock on the directory `path`, waiting up to `timeout` seconds for its
    readers. Yields whether it was taken (True where locking is not available)."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        yield True
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    taken = False
                    break
                time.sleep(0.01)
            except OSError:
                taken = True
                break
        yield taken
    finally:
        os.close(fd)
