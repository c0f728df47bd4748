"""Optimizer hooks: step pre/post hooks (per optimizer and global) and state_dict hooks.
Mirrors the hook API of `torch.optim.Optimizer`.

Under `jaxmodule.compile`, step hooks run while the step is traced (once per compilation), not
on every call: keep them free of side effects that must happen per step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..nn.modules._hooks import RemovableHandle

__all__ = ["register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"]

_global_step_pre_hooks: OrderedDict = OrderedDict()
_global_step_post_hooks: OrderedDict = OrderedDict()


def _add(hooks: OrderedDict, hook: Callable, prepend: bool = False) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    """Register `hook(optimizer, args, kwargs) -> None | (args, kwargs)` before every optimizer's step."""
    return _add(_global_step_pre_hooks, hook)


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    """Register `hook(optimizer, args, kwargs) -> None` after every optimizer's step."""
    return _add(_global_step_post_hooks, hook)


class HooksMixin:
    """The per-optimizer hook registries and the code that runs them."""

    def _hooks(self, name: str) -> OrderedDict:
        d = self.__dict__.get(name)
        if d is None:
            d = self.__dict__[name] = OrderedDict()
        return d

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(optimizer, args, kwargs) -> None | (new_args, new_kwargs)` before `step`."""
        return _add(self._hooks("_optimizer_step_pre_hooks"), hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(optimizer, args, kwargs) -> None` after `step`."""
        return _add(self._hooks("_optimizer_step_post_hooks"), hook)

    def register_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """`hook(optimizer) -> None` before `state_dict` builds the dict."""
        return _add(self._hooks("_optimizer_state_dict_pre_hooks"), hook, prepend)

    def register_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """`hook(optimizer, state_dict) -> state_dict | None` after `state_dict`."""
        return _add(self._hooks("_optimizer_state_dict_post_hooks"), hook, prepend)

    def register_load_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """`hook(optimizer, state_dict) -> state_dict | None` before `load_state_dict`."""
        return _add(self._hooks("_optimizer_load_state_dict_pre_hooks"), hook, prepend)

    def register_load_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """`hook(optimizer) -> None` after `load_state_dict`."""
        return _add(self._hooks("_optimizer_load_state_dict_post_hooks"), hook, prepend)

    def _call_with_step_hooks(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        pre = [*_global_step_pre_hooks.values(), *self._hooks("_optimizer_step_pre_hooks").values()]
        for hook in pre:
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        f"{hook} must return None or a tuple of (new_args, new_kwargs), "
                        f"but got {result}."
                    )
                args, kwargs = result
        out = fn(*args, **kwargs)
        for hook in [
            *_global_step_post_hooks.values(),
            *self._hooks("_optimizer_step_post_hooks").values(),
        ]:
            hook(self, args, kwargs)
        return out

    def _state_dict_with_hooks(self, build: Callable[[], dict]) -> dict:
        for hook in self._hooks("_optimizer_state_dict_pre_hooks").values():
            hook(self)
        sd = build()
        for hook in self._hooks("_optimizer_state_dict_post_hooks").values():
            result = hook(self, sd)
            if result is not None:
                sd = result
        return sd

    def _load_with_hooks(self, load: Callable[[dict], None], state_dict: dict) -> None:
        state_dict = state_dict.copy()
        for hook in self._hooks("_optimizer_load_state_dict_pre_hooks").values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        load(state_dict)
        for hook in self._hooks("_optimizer_load_state_dict_post_hooks").values():
            hook(self)
