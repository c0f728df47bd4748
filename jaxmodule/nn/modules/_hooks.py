"""Hook handles and the global module hooks (the hooked call itself is in `_call.py`).

`Module.__call__` checks a handful of dicts and calls `forward` directly when none holds a hook;
only then does it go to `_call.call_with_hooks`. Hooks are Python callables run while the forward runs, so under
`jax.jit`/`jaxmodule.compile` they run at trace time, once per compilation, and see tracers.
Registering or removing a hook bumps the structure version, so compiled steps retrace.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ... import _structure

__all__ = [
    "RemovableHandle",
    "register_module_forward_pre_hook",
    "register_module_forward_hook",
    "register_module_backward_hook",
    "register_module_full_backward_pre_hook",
    "register_module_full_backward_hook",
    "register_module_buffer_registration_hook",
    "register_module_module_registration_hook",
    "register_module_parameter_registration_hook",
]


class RemovableHandle:
    """A handle that removes a hook. Mirrors `torch.utils.hooks.RemovableHandle`.

    Works as a context manager: the hook is removed on exit.
    """

    next_id: int = 0

    def __init__(self, hooks_dict: Any, *, extra_dict: Any = None) -> None:
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        if isinstance(extra_dict, dict):
            extra_dict = [extra_dict]
        self.extra_dict_ref = tuple(weakref.ref(d) for d in (extra_dict or ()))

    def remove(self) -> None:
        for ref in (self.hooks_dict_ref, *self.extra_dict_ref):
            d = ref()
            if d is not None and self.id in d:
                del d[self.id]
        _structure.bump()

    def __getstate__(self) -> tuple:
        return (self.hooks_dict_ref(), self.id, tuple(r() for r in self.extra_dict_ref))

    def __setstate__(self, state: tuple) -> None:
        hooks, self.id, extras = state
        self.hooks_dict_ref = weakref.ref(hooks if hooks is not None else OrderedDict())
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extras if d is not None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# ---- global hooks (torch.nn.modules.module's module-level registries) ------------------------
_global_forward_pre_hooks: OrderedDict = OrderedDict()
_global_forward_hooks: OrderedDict = OrderedDict()
_global_forward_hooks_always_called: OrderedDict = OrderedDict()
_global_forward_hooks_with_kwargs: OrderedDict = OrderedDict()
_global_backward_pre_hooks: OrderedDict = OrderedDict()
_global_backward_hooks: OrderedDict = OrderedDict()
_global_is_full_backward_hook: list = [None]
_global_buffer_registration_hooks: OrderedDict = OrderedDict()
_global_module_registration_hooks: OrderedDict = OrderedDict()
_global_parameter_registration_hooks: OrderedDict = OrderedDict()


def any_global_call_hooks() -> bool:
    return bool(
        _global_forward_pre_hooks
        or _global_forward_hooks
        or _global_backward_pre_hooks
        or _global_backward_hooks
    )


def add_hook(
    hooks: OrderedDict,
    hook: Callable,
    *,
    prepend: bool = False,
    also_remove_from: OrderedDict | list | None = None,
    mark_in: tuple = (),
) -> RemovableHandle:
    """Store `hook` in `hooks` (first if `prepend`) and return its handle.

    `mark_in`: dicts that record an option of this hook (`..._with_kwargs`, `..._always_called`):
    each gets `handle.id -> True`. `also_remove_from`: a dict or list of dicts the handle removes
    the id from as well on `remove()` (torch's `RemovableHandle(extra_dict=...)`); pass every
    option dict there, marked or not, as torch does.

    >>> from collections import OrderedDict
    >>> hooks, with_kwargs = OrderedDict(), OrderedDict()
    >>> h = add_hook(hooks, print, also_remove_from=with_kwargs, mark_in=(with_kwargs,))
    >>> h.id in hooks and with_kwargs[h.id]
    True
    >>> h.remove(); (len(hooks), len(with_kwargs))
    (0, 0)
    """
    handle = RemovableHandle(hooks, extra_dict=also_remove_from)
    hooks[handle.id] = hook
    for option_dict in mark_in:
        option_dict[handle.id] = True
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    _structure.bump()
    return handle


def register_module_forward_pre_hook(hook: Callable) -> RemovableHandle:
    """A forward pre-hook run for every module. Mirrors `torch.nn.modules.module.register_module_forward_pre_hook`."""
    return add_hook(_global_forward_pre_hooks, hook)


def register_module_forward_hook(
    hook: Callable, *, with_kwargs: bool = False, always_call: bool = False
) -> RemovableHandle:
    """A forward hook run for every module. Mirrors torch's global `register_module_forward_hook`."""
    options = []
    if with_kwargs:
        options.append(_global_forward_hooks_with_kwargs)
    if always_call:
        options.append(_global_forward_hooks_always_called)
    return add_hook(
        _global_forward_hooks,
        hook,
        also_remove_from=[_global_forward_hooks_always_called, _global_forward_hooks_with_kwargs],
        mark_in=tuple(options),
    )


def register_module_backward_hook(hook: Callable) -> RemovableHandle:
    """Legacy global backward hook (see `Module.register_backward_hook`)."""
    if _global_is_full_backward_hook[0] is True:
        raise RuntimeError(
            "Cannot use both regular backward hooks and full backward hooks as a global Module hook. Please use only one of them."
        )
    _global_is_full_backward_hook[0] = False
    return add_hook(_global_backward_hooks, hook)


def register_module_full_backward_pre_hook(hook: Callable) -> RemovableHandle:
    """Global full backward pre-hook (see `Module.register_full_backward_pre_hook`)."""
    return add_hook(_global_backward_pre_hooks, hook)


def register_module_full_backward_hook(hook: Callable) -> RemovableHandle:
    """Global full backward hook (see `Module.register_full_backward_hook`)."""
    if _global_is_full_backward_hook[0] is False:
        raise RuntimeError(
            "Cannot use both regular backward hooks and full backward hooks as a global Module hook. Please use only one of them."
        )
    _global_is_full_backward_hook[0] = True
    return add_hook(_global_backward_hooks, hook)


def register_module_buffer_registration_hook(hook: Callable) -> RemovableHandle:
    """`hook(module, name, buffer) -> None | Buffer`, run by every `register_buffer`."""
    return add_hook(_global_buffer_registration_hooks, hook)


def register_module_module_registration_hook(hook: Callable) -> RemovableHandle:
    """`hook(module, name, submodule) -> None | Module`, run by every submodule registration."""
    return add_hook(_global_module_registration_hooks, hook)


def register_module_parameter_registration_hook(hook: Callable) -> RemovableHandle:
    """`hook(module, name, param) -> None | Parameter`, run by every `register_parameter`."""
    return add_hook(_global_parameter_registration_hooks, hook)


def run_registration_hooks(hooks: OrderedDict, module: Any, name: str, value: Any) -> Any:
    for hook in hooks.values():
        out = hook(module, name, value)
        if out is not None:
            value = out
    return value
