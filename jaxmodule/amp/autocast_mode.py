"""`autocast`: run matmul-like ops in a lower precision while weights stay float32."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from .._dtype import to_dtype

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "autocast_inputs", "state"]


class _Local(threading.local):
    state: tuple = (False, None)  # the default in every thread (no exception on first read)


_local = _Local()


def state() -> tuple:
    """The current (enabled, dtype) pair; part of every compiled plan's key (read per call)."""
    return _local.state


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """True inside an enabled `autocast` region. Mirrors `torch.is_autocast_enabled`."""
    return state()[0]


def get_autocast_dtype(device_type: str | None = None) -> Any:
    """The dtype ops are cast to inside `autocast` (None outside)."""
    return state()[1]


def autocast_inputs(*arrays: Any) -> tuple:
    """Cast floating arrays to the autocast dtype when autocast is on; used by F.linear, conv,
    attention and RNN cells. Outside autocast the arrays are returned unchanged."""
    enabled, dtype = state()
    if not enabled:
        return arrays
    return tuple(
        a.astype(dtype) if a is not None and jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
        for a in arrays
    )


class autocast:  # noqa: N801 - torch name
    """Context manager / decorator enabling mixed precision. Mirrors `torch.autocast`.

    Args:
        device_type: 'cpu', 'cuda', 'gpu' or 'tpu' (accepted for torch compatibility; the
            policy is the same on every device).
        dtype: the compute dtype; bfloat16 by default (float16 on 'cuda', as torch).
        enabled: False makes the region a no-op.

    Inside the region, `F.linear`, the convolutions, attention and RNN cells cast their inputs and
    weights to `dtype`; everything else (softmax, norms, losses) keeps its input dtype. Gradients
    flow back to the float32 parameters. Differences from torch: the op list is jaxmodule's
    (above), and a `jax.jit`-compiled function must enter autocast inside itself (a
    `jaxmodule.compile`d function may be called inside the region: its plan is keyed on it).
    """

    def __init__(
        self,
        device_type: str = "cpu",
        dtype: Any = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,
    ) -> None:
        if dtype is None:
            dtype = jnp.float16 if device_type in ("cuda", "gpu") else jnp.bfloat16
        self.dtype = to_dtype(dtype)
        if not jnp.issubdtype(self.dtype, jnp.floating):
            raise ValueError(f"autocast: dtype must be a floating dtype, got {self.dtype}")
        self.device = device_type
        self.enabled = bool(enabled)

    def __enter__(self) -> autocast:
        self._prev = state()
        _local.state = (True, self.dtype) if self.enabled else (False, None)
        return self

    def __exit__(self, *exc: object) -> None:
        _local.state = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device, self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper
