"""A persistent XLA compilation cache on by default, as `torch.compile` keeps its compiled code.

JAX can keep compiled executables on disk (`jax_compilation_cache_dir`) so a second run of a
script loads them instead of compiling again, but leaves it off by default, and even when on it
only writes programs that took over a second to compile, which skips nearly every program a CPU
training script compiles. `import jaxmodule` therefore turns it on:

* the directory is `$JAXMODULE_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxmodule/xla`, else
  `~/.cache/jaxmodule/xla`; `JAXMODULE_CACHE_DIR=off` (or `0`, `false`, `no`) disables it;
* a cache the user configured is left alone: `JAX_COMPILATION_CACHE_DIR` set, or
  `jax.config.jax_compilation_cache_dir` already set before `import jaxmodule`;
* programs are written from `MIN_COMPILE_TIME_SECS` of compile time on (JAX's default is 1 s),
  unless `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` is set or the value was changed already.
  The size threshold keeps JAX's default (0: no minimum);
* a directory that cannot be created or written (a read-only home) means no cache, logged at
  debug level on the `"jaxmodule"` logger; the import never fails because of it.

Setting the option at import time takes effect even after the user compiled something: JAX opens
the cache on the first compilation that finds a directory configured, and never before. Trace
caches are untouched; only XLA's compile step is skipped on a hit. As JAX warns, the cache is
trusted code: the directories created here are private to the user (mode 0o700).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import jax

__all__ = ["MIN_COMPILE_TIME_SECS", "cache_dir_from_env", "enable_default_cache"]

MIN_COMPILE_TIME_SECS = 0.1
"""Programs that compile faster than this are not written (eager single-op programs mostly)."""

_OFF = frozenset({"off", "0", "false", "no"})
_DIR_OPTION = "jax_compilation_cache_dir"
_TIME_OPTION = "jax_persistent_cache_min_compile_time_secs"
_JAX_TIME_DEFAULT = 1.0
_log = logging.getLogger("jaxmodule")


def cache_dir_from_env(environ: Mapping[str, str]) -> str | None:
    """The cache directory jaxmodule would use under `environ`, or None where it stays off.

    Args:
        environ: the environment to read (`os.environ` at import).

    >>> cache_dir_from_env({"JAXMODULE_CACHE_DIR": "/tmp/xla"})
    '/tmp/xla'
    >>> cache_dir_from_env({"JAXMODULE_CACHE_DIR": "off"}) is None
    True
    >>> cache_dir_from_env({"JAX_COMPILATION_CACHE_DIR": "/mine"}) is None
    True
    >>> cache_dir_from_env({"XDG_CACHE_HOME": "/c"})
    '/c/jaxmodule/xla'
    """
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None  # the user chose JAX's cache themselves
    explicit = environ.get("JAXMODULE_CACHE_DIR", "").strip()
    if explicit.lower() in _OFF:
        return None
    if explicit:
        return os.path.expanduser(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxmodule", "xla")


def _usable(path: str) -> bool:
    """Create `path` (private to the user) and check it can be written; False on any failure."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as err:
        _log.debug("no persistent XLA cache: cannot create %s (%s)", path, err)
        return False
    if not os.access(path, os.W_OK | os.X_OK):
        _log.debug("no persistent XLA cache: %s is not writable", path)
        return False
    return True


def _cache_already_open() -> bool:
    """Whether JAX already opened a persistent cache in this process (then it stays as it is)."""
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - JAX moved its internals; the config check remains
        return False
    return getattr(compilation_cache, "_cache", None) is not None


def enable_default_cache(environ: Mapping[str, str] | None = None) -> str | None:
    """Point JAX's persistent compilation cache at jaxmodule's directory unless the user chose.

    Args:
        environ: the environment to read; `os.environ` when None.

    Returns:
        The directory now in use, or None where jaxmodule changed nothing.
    """
    environ = os.environ if environ is None else environ
    if getattr(jax.config, _DIR_OPTION) or _cache_already_open():
        return None  # configured in code (or from JAX's env var) before `import jaxmodule`
    path = cache_dir_from_env(environ)
    if path is None or not _usable(path):
        return None
    jax.config.update(_DIR_OPTION, path)
    user_set_time = (
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" in environ
        or getattr(jax.config, _TIME_OPTION) != _JAX_TIME_DEFAULT
    )
    if not user_set_time:
        jax.config.update(_TIME_OPTION, MIN_COMPILE_TIME_SECS)
    _log.debug("persistent XLA compilation cache at %s", path)
    return path
