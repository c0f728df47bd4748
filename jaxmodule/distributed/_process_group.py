"""torch.distributed's process group, over `jax.distributed`.

`init_process_group` reads torch's rendezvous conventions (`env://` with MASTER_ADDR,
MASTER_PORT, WORLD_SIZE, RANK; `tcp://host:port`) and starts `jax.distributed` with them:
process `rank` of `world_size`, process 0 hosting the coordination service at
`MASTER_ADDR:MASTER_PORT`. Afterwards `jax.devices()` lists the devices of every process and a
computation over a mesh of them runs across processes (on CPU through gloo collectives).

A JAX process owns all of its host's local devices, so a rank here is a process (usually one per
host), not one per GPU as in torch's usual launch; `get_world_size()` is the number of processes,
`len(jax.devices())` the number of devices.

Example (every process runs the same script; the 2-process loopback test in
`tests/distributed/test_multiprocess.py` runs exactly this)::

    import jaxmodule.distributed as dist
    dist.init_process_group('gloo', init_method='tcp://10.0.0.1:29500', world_size=2, rank=0)
    dist.get_rank(), dist.get_world_size()   # (0, 2)
"""

from __future__ import annotations

import datetime
import os
from typing import Any
from urllib.parse import parse_qs, urlparse

import jax
import numpy as np
from jax._src import xla_bridge
from jax.extend import backend as _jax_backend

from .._random import default_generator
from ..checkpoint import _multiprocess

__all__ = [
    "init_process_group",
    "is_initialized",
    "is_available",
    "get_rank",
    "get_world_size",
    "get_backend",
    "barrier",
    "destroy_process_group",
]

_NOT_INITIALIZED = (
    "Default process group has not been initialized, please make sure to call init_process_group."
)
# torch backend name -> the cross-process collectives JAX uses on CPU (GPUs use NCCL, TPUs ICI).
_CPU_COLLECTIVES = {"gloo": "gloo", "nccl": "gloo", "ucc": "gloo", "xccl": "gloo", "mpi": "mpi"}
_backend: str | None = None


def is_available() -> bool:
    """Whether the distributed package is available (always True, as in torch builds with it)."""
    return True


def is_initialized() -> bool:
    """Whether the default process group (`jax.distributed`) has been initialized."""
    return jax.distributed.is_initialized()


def _require_initialized() -> None:
    if not jax.distributed.is_initialized():
        raise ValueError(_NOT_INITIALIZED)


def _rendezvous_error(scheme: str, msg: str) -> ValueError:
    return ValueError(f"Error initializing torch.distributed using {scheme}:// rendezvous: {msg}")


def _env_int(name: str, scheme: str) -> int:
    value = os.environ.get(name)
    if not value:
        raise _rendezvous_error(scheme, f"environment variable {name} expected, but not set")
    try:
        return int(value)
    except ValueError:
        raise _rendezvous_error(
            scheme, f"environment variable {name} must be an integer, got {value!r}"
        ) from None


def _rendezvous(init_method: str, world_size: int, rank: int) -> tuple[str, int, int]:
    """(coordinator 'host:port', world_size, rank) from torch's `init_method` and arguments."""
    url = urlparse(init_method)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if "rank" in query:
        rank = int(query["rank"])
    if "world_size" in query:
        world_size = int(query["world_size"])
    if url.scheme == "env":
        if rank == -1:
            rank = _env_int("RANK", "env")
        if world_size == -1:
            world_size = _env_int("WORLD_SIZE", "env")
        host = os.environ.get("MASTER_ADDR")
        if not host:
            raise _rendezvous_error("env", "environment variable MASTER_ADDR expected, but not set")
        port = _env_int("MASTER_PORT", "env")
    elif url.scheme == "tcp":
        if url.port is None:
            raise _rendezvous_error("tcp", "port number missing")
        if rank == -1:
            raise _rendezvous_error("tcp", "rank parameter missing")
        if world_size == -1:
            raise _rendezvous_error("tcp", "world size parameter missing")
        host, port = url.hostname or "127.0.0.1", url.port
    elif url.scheme == "file":
        raise NotImplementedError(
            f"init_process_group: init_method={init_method!r}: file:// "
            "rendezvous is not supported by jax.distributed; use 'env://' "
            "(MASTER_ADDR, MASTER_PORT) or 'tcp://host:port'"
        )
    else:
        raise ValueError(
            f"init_process_group: init_method must be 'env://' or 'tcp://host:port', "
            f"got {init_method!r}"
        )
    if not 0 <= int(port) < 2**16:
        raise ValueError(f"port must have value from 0 to 65535 but was {port}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"init_process_group: rank must be in [0, world_size) and world_size >= 1, "
            f"got rank={rank}, world_size={world_size}"
        )
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{host}:{int(port)}", world_size, rank


def _check_backend(backend: Any) -> str:
    """torch's backend string ('gloo', 'nccl', 'cpu:gloo,cuda:nccl', ...) -> CPU collectives."""
    if backend is None:
        return "gloo"
    if not isinstance(backend, str):
        raise ValueError("Backend constructor parameter must be string-ish")
    names = [part.split(":")[-1].strip().lower() for part in backend.split(",")]
    unknown = [n for n in names if n not in _CPU_COLLECTIVES]
    if unknown:
        raise ValueError(
            f"init_process_group: unknown backend {backend!r}; expected one of "
            f"{sorted(_CPU_COLLECTIVES)} (or 'device:backend' pairs)"
        )
    return "mpi" if "mpi" in names else "gloo"


def _timeout_seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if not isinstance(timeout, datetime.timedelta):
        raise TypeError(
            f"Expected timeout argument to be of type datetime.timedelta, got "
            f"{type(timeout).__name__}"
        )
    return timeout.total_seconds()


def _device_index(device_id: Any) -> list[int] | None:
    if device_id is None:
        return None
    if isinstance(device_id, int) and not isinstance(device_id, bool):
        return [device_id]
    index = getattr(device_id, "index", None)
    if isinstance(device_id, str):
        index = int(device_id.rpartition(":")[2]) if ":" in device_id else None
    if index is None:
        raise ValueError(
            f"init_process_group: device_id must be an int or a device with an index "
            f"(torch.device('cuda', 0), 'cuda:0'), got {device_id!r}"
        )
    return [int(index)]


def _release_unused_backend() -> np.ndarray | None:
    """Make room for `jax.distributed.initialize` when the backend is already up.

    Importing jaxmodule creates one array: the global generator's key. When nothing else lives on
    the backend, the backend is dropped and the key returned (as numpy), to be put back on the
    distributed backend with the same state; any other live array means JAX computed already,
    which JAX forbids before initialize."""
    if not xla_bridge.backends_are_initialized():
        return None
    key = default_generator.get_state()
    others = [a for a in jax.live_arrays() if a is not key]
    if others:
        shown = ", ".join(f"{a.dtype}{list(a.shape)}" for a in others[:5])
        raise RuntimeError(
            f"init_process_group must be called before any JAX computation: "
            f"{len(others)} array(s) already exist ({shown}{' ...' if len(others) > 5 else ''}); "
            "call it at the start of the program"
        )
    saved = np.asarray(key)
    _jax_backend.clear_backends()
    return saved


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: datetime.timedelta | None = None,
    world_size: int = -1,
    rank: int = -1,
    store: Any = None,
    group_name: str = "",
    pg_options: Any = None,
    device_id: Any = None,
) -> None:
    """Join a multi-process run. Mirrors `torch.distributed.init_process_group`.

    Call it in every process, first thing (before any JAX computation). Starts
    `jax.distributed` with process 0 (rank 0) hosting the coordination service.

    Args:
        backend: 'gloo' (default), 'nccl', 'mpi', 'ucc', 'xccl' or 'cpu:gloo,cuda:nccl'. JAX
            picks the device collectives itself; this chooses the CPU ones ('mpi' -> MPI, else gloo).
        init_method: 'env://' (default: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK) or
            'tcp://host:port' (`world_size` and `rank` given, or as '?rank=..&world_size=..').
        timeout: a `datetime.timedelta`: how long to wait for the other processes to connect, and
            for them at each `barrier()` and collective checkpoint save (default 30 minutes).
        world_size: the number of processes (-1: from the environment).
        rank: this process's index, 0 <= rank < world_size (-1: from the environment).
        store, group_name, pg_options: accepted for torch compatibility; `store` is not supported.
        device_id: restrict this process to one local accelerator (int or torch-style device).

    Raises:
        ValueError: called twice; an address, rank or world size is missing or invalid; unknown backend.
        RuntimeError: JAX has already computed something in this process.

    Example (torch's env:// variables; in-process tests run it in `tests/distributed/`)::

        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29500', WORLD_SIZE='1', RANK='0')
        init_process_group('gloo')
        get_world_size()   # 1
    """
    global _backend
    if jax.distributed.is_initialized():
        raise ValueError("trying to initialize the default process group twice!")
    if store is not None:
        raise NotImplementedError(
            "init_process_group: store= is not supported (jax.distributed runs "
            "its own coordination service); pass init_method instead"
        )
    collectives = _check_backend(backend)
    seconds = _timeout_seconds(timeout)
    local_ids = _device_index(device_id)
    address, world_size, rank = _rendezvous(init_method or "env://", world_size, rank)
    key = _release_unused_backend()
    jax.config.update("jax_cpu_collectives_implementation", collectives)
    kwargs: dict[str, Any] = (
        {} if seconds is None else {"initialization_timeout": max(1, int(seconds))}
    )
    try:
        jax.distributed.initialize(
            address, num_processes=world_size, process_id=rank, local_device_ids=local_ids, **kwargs
        )
    finally:
        if key is not None:
            default_generator.set_state(key)
    _multiprocess.set_timeout(seconds)
    _backend = backend or "gloo"


def get_rank(group: Any = None) -> int:
    """This process's rank (its `jax.process_index()`). Mirrors `torch.distributed.get_rank`.

    Raises:
        ValueError: the process group has not been initialized.
    """
    _require_initialized()
    return jax.process_index()


def get_world_size(group: Any = None) -> int:
    """The number of processes (`jax.process_count()`). Mirrors `torch.distributed.get_world_size`."""
    _require_initialized()
    return jax.process_count()


def get_backend(group: Any = None) -> str:
    """The backend name given to `init_process_group` ('gloo' by default)."""
    _require_initialized()
    return _backend or "gloo"


def barrier(group: Any = None, async_op: bool = False, device_ids: Any = None) -> None:
    """Wait until every process has reached this barrier. Mirrors `torch.distributed.barrier`.

    Uses the coordination service (no device computation); waits up to the `timeout` given to
    `init_process_group`.
    """
    _require_initialized()
    if async_op:
        raise NotImplementedError("barrier: async_op=True is not supported")
    _multiprocess.barrier("barrier")


def destroy_process_group(group: Any = None) -> None:
    """Leave the run: shuts `jax.distributed` down. Mirrors `torch.distributed.destroy_process_group`.

    Raises:
        AssertionError: nothing was initialized (torch raises the same).
    """
    global _backend
    if not jax.distributed.is_initialized():
        raise AssertionError("Process group cannot be None")
    jax.distributed.shutdown()
    _multiprocess.set_timeout(None)
    _backend = None
