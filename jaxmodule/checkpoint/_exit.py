"""Pending asynchronous `CheckpointManager` saves are finished when the interpreter exits.

A manager is tracked, by a strong reference, from an asynchronous save until that save has
settled (so a manager the program dropped still gets its save finished), and by nothing
otherwise. At exit, every tracked manager is closed: its save is waited for and checked. The
program's exit status is kept; if a save cannot be completed, a message goes to stderr and the
process exits with status 1 instead.

This works for a script that ends, `sys.exit`, and an uncaught exception. It cannot work for
`os._exit`, a signal that kills the process, or a crash of the interpreter.

The hook is registered with `threading._register_atexit` (what `concurrent.futures` uses): those
hooks run before the interpreter shuts down thread pools, which orbax needs to finish a save.
A plain `atexit` hook runs after that, too late. Where the threading hook is missing, `atexit` is
used.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

__all__ = ["PENDING"]


class _PendingSaves:
    """The managers with an asynchronous save in flight."""

    def __init__(self) -> None:
        self._managers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._hooked = False

    def track(self, manager: Any) -> None:
        with self._lock:
            self._managers[id(manager)] = manager
            if not self._hooked:
                self._hooked = True
                register = getattr(threading, "_register_atexit", atexit.register)
                try:
                    register(self.finish_all)
                except RuntimeError:  # already shutting down
                    atexit.register(self.finish_all)

    def untrack(self, manager: Any) -> None:
        with self._lock:
            self._managers.pop(id(manager), None)

    def finish_all(self) -> None:
        """Close every tracked manager; on any failure, report it and exit with status 1."""
        with self._lock:
            managers = list(self._managers.values())
        failures = []
        for manager in managers:
            try:
                manager.close()
            except BaseException as e:  # noqa: BLE001 - report every manager, then exit
                failures.append(f"{type(e).__name__}: {e}")
        if failures:
            sys.stderr.write(
                "jaxmodule.checkpoint: at interpreter exit, "
                + "\n".join(failures)
                + "\nexiting with status 1\n"
            )
            sys.stderr.flush()
            sys.stdout.flush()
            logging.shutdown()
            os._exit(1)


PENDING = _PendingSaves()
