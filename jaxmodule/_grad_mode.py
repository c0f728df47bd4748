"""`no_grad`, `enable_grad`, `set_grad_enabled`, `inference_mode`: torch's grad-mode switches.

In jaxmodule gradients come from `jaxmodule.grad`/`value_and_grad`, so grad mode has one job, as in
torch: in-place helpers (`fill_`, `mul_`, ...) on a parameter that requires grad are allowed only
while grad mode is off.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode"]

_F = TypeVar("_F", bound=Callable[..., Any])
_state = threading.local()


def is_grad_enabled() -> bool:
    """Return True unless inside `no_grad()` / `set_grad_enabled(False)`."""
    return getattr(_state, "enabled", True)


def _set(mode: bool) -> None:
    _state.enabled = mode


class _GradMode:
    """Context manager that is also a decorator (a fresh context per call)."""

    _mode: bool

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Bare decorator use (`@no_grad`, `@inference_mode`), as torch allows.
        if cls is not set_grad_enabled and len(args) == 1 and not kwargs and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        _set(self._mode)

    def __exit__(self, *exc: object) -> None:
        _set(self._prev)

    def __call__(self, fn: _F) -> _F:
        cls, args = type(self), self._ctor_args()

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            with cls(*args):
                return fn(*a, **k)

        return wrapper  # type: ignore[return-value]

    def _ctor_args(self) -> tuple:
        return ()

    def clone(self) -> _GradMode:
        return type(self)(*self._ctor_args())


class no_grad(_GradMode):  # noqa: N801 - torch name
    """Disable grad mode. Mirrors `torch.no_grad`; usable as a context manager or decorator.

    >>> import jaxmodule
    >>> with jaxmodule.no_grad():
    ...     jaxmodule.is_grad_enabled()
    False
    """

    _mode = False


class enable_grad(_GradMode):  # noqa: N801
    """Enable grad mode inside a `no_grad` region. Mirrors `torch.enable_grad`."""

    _mode = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """Set grad mode on or off; takes effect immediately, as in torch."""

    def __init__(self, mode: bool) -> None:
        self._mode = bool(mode)
        self._prev = is_grad_enabled()
        _set(self._mode)

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: _F) -> _F:
        _set(self._prev)  # as torch: decorating restores the mode set by the constructor
        return super().__call__(fn)

    def _ctor_args(self) -> tuple:
        return (self._mode,)


class inference_mode(_GradMode):  # noqa: N801
    """`no_grad` under torch's other name (`inference_mode(mode=True)`)."""

    def __init__(self, mode: bool = True) -> None:
        self._mode = not mode

    def _ctor_args(self) -> tuple:
        return (not self._mode,)
