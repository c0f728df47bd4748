"""Recompile logs: `JAXMODULE_LOGS=recompiles` or `jaxmodule.set_logs(recompiles=True)`.

As torch's `TORCH_LOGS=recompiles`: each retrace of a compiled function logs one record on the
Python logger `"jaxmodule.compile"` (level INFO) naming the function and why it traced again
(`argument 2: shape (32, 784) -> (16, 784)`, ``module `model.encoder`: train -> eval``,
``static argument `n`: 3 -> 4``). More than `RETRACE_WARNING_LIMIT` traces of one function log a
WARNING even when the flag is off: something changes on every call (a Python value that should
be an array, a model rebuilt each step, a mode switched back and forth).
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["set_logs", "retrace", "logger", "RETRACE_WARNING_LIMIT", "diff"]

logger = logging.getLogger("jaxmodule.compile")
RETRACE_WARNING_LIMIT = 8


class _Settings:
    """Process-wide log switches (one object, read on the retrace path only)."""

    def __init__(self) -> None:
        self.recompiles = "recompiles" in os.environ.get("JAXMODULE_LOGS", "").replace(
            " ", ""
        ).split(",")


settings = _Settings()


def set_logs(*, recompiles: bool | None = None) -> None:
    """Turn jaxmodule's logs on or off, as `torch._logging.set_logs`.

    Args:
        recompiles: log one INFO record on the `"jaxmodule.compile"` logger per retrace of a
            compiled function, with the reason. The environment variable
            `JAXMODULE_LOGS=recompiles` turns it on at import.

    >>> import jaxmodule
    >>> jaxmodule.set_logs(recompiles=True)
    >>> jaxmodule.set_logs(recompiles=False)
    """
    if recompiles is not None:
        settings.recompiles = bool(recompiles)
    if settings.recompiles and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every entry that differs between two descriptions."""
    out = []
    for k in before.keys() | after.keys():
        a, b = before.get(k, "absent"), after.get(k, "absent")
        if a != b or type(a) is not type(b):
            out.append(
                f"{k}: {a!r} -> {b!r}"
                if not isinstance(a, str) or not isinstance(b, str)
                else f"{k}: {a} -> {b}"
            )
    return sorted(out)


def retrace(fn: Any, reasons: list[str]) -> None:
    """Report a trace of compiled function `fn` (its `trace_count` already counts it)."""
    count = fn.trace_count
    if count <= 1:
        return
    name = getattr(fn, "__qualname__", None) or getattr(fn.fn, "__qualname__", repr(fn.fn))
    because = "; ".join(reasons) if reasons else "unknown reason"
    if settings.recompiles:
        logger.info("Recompiling function %s (trace %d): %s", name, count, because)
    if count == RETRACE_WARNING_LIMIT + 1:
        logger.warning(
            "function %s has been traced %d times (last reason: %s). Something changes on every "
            "call: pass numbers that vary as floats or arrays, keep models and modes fixed, or "
            "set JAXMODULE_LOGS=recompiles to see each reason.",
            name,
            count,
            because,
        )
