"""Agreement between the processes of a multi-process run (`jax.distributed`).

`jaxmodule.save` and `CheckpointManager` are called by every process of a multi-process run with
the same arguments, in the same order (like any collective). Each such call opens one
`Rendezvous`: a key prefix in the coordination service's key-value store, made unique by a
per-kind counter that every process advances in step (`jaxmodule/save/3/...`). Through it the
primary process (process 0) shares what only it decides (the temporary directory's name) or the
error that stopped it, and every process reports whether its part succeeded, so no process waits
forever on a peer that has already failed.

Nothing here touches the JAX backend: a run is multi-process when `jax.distributed` is
initialized with more than one process. A single process never opens a rendezvous.

>>> from jaxmodule.checkpoint._multiprocess import is_multiprocess
>>> is_multiprocess()
False
"""

from __future__ import annotations

import collections
import itertools
from typing import Any

from jax._src import distributed as _jax_distributed  # the coordination client (orbax reads it too)

__all__ = [
    "is_multiprocess",
    "process_index",
    "process_count",
    "set_timeout",
    "timeout_s",
    "Rendezvous",
    "PeerFailed",
    "barrier",
]

_DEFAULT_TIMEOUT_S = 1800.0  # torch's default process-group timeout (30 minutes)
_timeout_s = _DEFAULT_TIMEOUT_S
_COUNTERS: collections.defaultdict[str, itertools.count] = collections.defaultdict(itertools.count)
_OK = "ok:"
_ERR = "error:"


class PeerFailed(RuntimeError):
    """Another process of the run failed its part of a collective checkpoint operation."""


def _client() -> Any:
    return _jax_distributed.global_state.client


def process_count() -> int:
    """The number of processes of the run (1 when `jax.distributed` is not initialized)."""
    return _jax_distributed.global_state.num_processes if _client() is not None else 1


def process_index() -> int:
    """This process's index in the run (0 when `jax.distributed` is not initialized)."""
    return _jax_distributed.global_state.process_id if _client() is not None else 0


def is_multiprocess() -> bool:
    """Whether this is one process of a multi-process run (a cheap check; no backend needed)."""
    return _client() is not None and _jax_distributed.global_state.num_processes > 1


def set_timeout(seconds: float | None) -> None:
    """How long a collective operation waits for its peers (None: torch's 30 minutes)."""
    global _timeout_s
    _timeout_s = _DEFAULT_TIMEOUT_S if seconds is None else float(seconds)


def timeout_s() -> float:
    """The current wait limit for collective operations, in seconds."""
    return _timeout_s


def _ms() -> int:
    return max(1, int(_timeout_s * 1000))


def barrier(what: str) -> None:
    """Wait until every process has called `barrier(what)` as often as this one has."""
    client = _client()
    if client is None or not is_multiprocess():
        return
    client.wait_at_barrier(f"jaxmodule/{what}/{next(_COUNTERS['barrier/' + what])}", _ms())


class Rendezvous:
    """One collective operation of kind `what` (e.g. 'save'), seen by every process.

    >>> # on every process:  rv = Rendezvous('save', str(path))
    >>> # process 0:         rv.publish('tmp', name)      others:  name = rv.fetch('tmp')
    >>> # every process:     rv.all_ok('written', error)  (raises PeerFailed if any failed)
    """

    def __init__(self, what: str, subject: str) -> None:
        self.what = what
        self.subject = subject
        self.prefix = f"jaxmodule/{what}/{next(_COUNTERS[what])}"
        self.rank = process_index()
        self.size = process_count()
        self._client = _client()

    @property
    def primary(self) -> bool:
        return self.rank == 0

    def _get(self, key: str) -> str:
        try:
            return self._client.blocking_key_value_get(f"{self.prefix}/{key}", _ms())
        except Exception as e:  # noqa: BLE001 - the coordination service raises XlaRuntimeError
            raise PeerFailed(
                f"jaxmodule.{self.what}: {self.subject}: process {self.rank} waited "
                f"{_timeout_s:g} s for its peers at '{key}' and gave up "
                f"({type(e).__name__}: {str(e)[:200]})"
            ) from None

    def publish(
        self, key: str, value: str | None = None, error: BaseException | None = None
    ) -> None:
        """(primary) Share `value`, or the `error` that stopped the primary, under `key`."""
        text = _OK + (value or "") if error is None else _ERR + f"{type(error).__name__}: {error}"
        self._client.key_value_set(f"{self.prefix}/{key}", text)

    def fetch(self, key: str) -> str:
        """(non-primary) The value the primary published under `key`; PeerFailed if it failed."""
        text = self._get(key)
        if text.startswith(_ERR):
            raise PeerFailed(
                f"jaxmodule.{self.what}: {self.subject}: process 0 failed "
                f"({text[len(_ERR) :]}); nothing was changed by this process"
            )
        return text[len(_OK) :]

    def all_ok(self, key: str, error: BaseException | None = None, value: str = "") -> list[str]:
        """Report this process's outcome of step `key` and collect everyone's `value`s.

        Raises PeerFailed naming the first process that failed (this one's own error, if any,
        is raised by the caller, not here)."""
        text = _OK + value if error is None else _ERR + f"{type(error).__name__}: {error}"
        self._client.key_value_set(f"{self.prefix}/{key}/{self.rank}", text)
        values = []
        for r in range(self.size):
            got = text if r == self.rank else self._get(f"{key}/{r}")
            if got.startswith(_ERR) and r != self.rank:
                raise PeerFailed(
                    f"jaxmodule.{self.what}: {self.subject}: process {r} failed "
                    f"({got[len(_ERR) :]})"
                )
            values.append(got[len(_OK) :] if got.startswith(_OK) else "")
        return values
