"""The scheduler base class and the helpers every scheduler file shares (`lr_scheduler` and
`_lr_cyclic` both build on it; it imports neither)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._swap import defer
from .optimizer import Optimizer

__all__ = ["LRScheduler"]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where "
    "possible. Please use `scheduler.step()` to step the scheduler. During the deprecation, if "
    "epoch is different from None, the closed form is used instead of the new chainable form, "
    "where available."
)


def _format_param(name: str, optimizer: Optimizer, param: Any) -> list[Any]:
    """One value per param group (a scalar is repeated)."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(param)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(param)
    return [param] * len(optimizer.param_groups)


def _group_values(optimizer: Optimizer, key: str) -> list[Any]:
    return [group[key] for group in optimizer.param_groups]


def _set_group_value(group: dict[str, Any], key: str, value: Any) -> None:
    """Write a value; an array-valued option stays an array of its dtype (torch fills in place)."""
    old = group[key]
    group[key] = jnp.asarray(value, old.dtype) if isinstance(old, jax.Array) else value


def _deferred_in_compile(step: Callable) -> Callable:
    """Make a scheduler's `step` run after each compiled call when called inside one."""

    @functools.wraps(step)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if defer(self, wrapper, args, kwargs):
            return None
        return step(self, *args, **kwargs)

    return wrapper


class LRScheduler:
    """Base class of the schedulers. Mirrors `torch.optim.lr_scheduler.LRScheduler`.

    Args:
        optimizer: the wrapped optimizer.
        last_epoch: index of the last epoch (-1 starts fresh and records 'initial_lr').

    Differences from torch: `optimizer.step` is not patched; the optimizer records its own calls
    for the "scheduler stepped before optimizer" warning. Inside a `jaxmodule.compile`d step,
    `step()` is deferred: it runs after every call of the compiled step (it only changes Python
    numbers, which the optimizer turns into traced values), exactly where torch's
    `optimizer.step(); scheduler.step()` order puts it.
    """

    _get_lr_called_within_step = False
    _is_initial = False
    # `jaxmodule.compile` guards a reached scheduler by identity: its deferred `step` is part of
    # a compiled program, which must not run another scheduler's step after a rebinding
    _jm_host_calls = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _deferred_in_compile(cls.__dict__["step"])  # type: ignore[method-assign]  # wrapping is the point

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming scheduler with last_epoch >= 0."
                    )
        self.base_lrs: list[Any] = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[Any]:
        """The learning rates the last `step()` set."""
        return self._last_lr

    def get_lr(self) -> list[Any]:
        """The chainable-form learning rates for the current `last_epoch`."""
        raise NotImplementedError

    def _warn_get_lr(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use "
                "`get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to `epoch`, deprecated) and write the new learning rates."""
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. You "
                "should call them in the opposite order: `optimizer.step()` before "
                "`lr_scheduler.step()`.",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed = getattr(self, "_get_closed_form_lr", None)
                values = closed() if closed is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            _set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")


LRScheduler.step = _deferred_in_compile(LRScheduler.step)  # type: ignore[method-assign]
