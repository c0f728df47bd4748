"""The hooked call path of `Module.__call__`: forward pre-hooks, backward hooks, forward hooks.

`Module.__call__` (and a compiled module's uncompiled call) come here only when some hook is
registered; the hooks themselves are kept in `_hooks.py`, backward hooks run in
`_backward_hooks.py`.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import _hooks
from ._backward_hooks import forward_with_backward_hooks

__all__ = ["call_with_hooks"]


def call_with_hooks(module: Any, args: tuple, kwargs: dict) -> Any:
    """Run `module.forward` with forward pre-hooks, forward hooks and backward hooks, as torch."""
    result = None
    called_always: set = set()
    try:
        if _hooks._global_forward_pre_hooks or module._forward_pre_hooks:
            for hook_id, hook in (
                *_hooks._global_forward_pre_hooks.items(),
                *module._forward_pre_hooks.items(),
            ):
                if hook_id in module._forward_pre_hooks_with_kwargs:
                    out = hook(module, args, kwargs)
                    if out is not None:
                        if isinstance(out, tuple) and len(out) == 2:
                            args, kwargs = out
                        else:
                            raise RuntimeError(
                                "forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                f"but got {out}."
                            )
                else:
                    out = hook(module, args)
                    if out is not None:
                        args = out if isinstance(out, tuple) else (out,)

        if (
            module._backward_hooks
            or module._backward_pre_hooks
            or _hooks._global_backward_hooks
            or _hooks._global_backward_pre_hooks
        ):
            result = forward_with_backward_hooks(module, args, kwargs)
        else:
            result = module.forward(*args, **kwargs)

        if _hooks._global_forward_hooks or module._forward_hooks:
            for hook_id, hook in (
                *_hooks._global_forward_hooks.items(),
                *module._forward_hooks.items(),
            ):
                if (
                    hook_id in module._forward_hooks_always_called
                    or hook_id in _hooks._global_forward_hooks_always_called
                ):
                    called_always.add(hook_id)
                result = _forward_hook(module, hook_id, hook, args, kwargs, result)
        return result
    except Exception:
        for hooks, always, kind in (
            (
                _hooks._global_forward_hooks,
                _hooks._global_forward_hooks_always_called,
                "global module",
            ),
            (module._forward_hooks, module._forward_hooks_always_called, "module"),
        ):
            for hook_id, hook in list(hooks.items()):
                if hook_id in always and hook_id not in called_always:
                    try:
                        result = _forward_hook(module, hook_id, hook, args, kwargs, result)
                    except Exception as e:
                        warnings.warn(
                            f"{kind} forward hook with ``always_call=True`` raised an exception "
                            f"that was silenced as another error was raised in forward: {e}",
                            stacklevel=2,
                        )
        raise


def _forward_hook(
    module: Any, hook_id: int, hook: Any, args: tuple, kwargs: dict, result: Any
) -> Any:
    """Run one forward hook (with kwargs if it was registered so); its non-None return replaces
    the result."""
    if (
        hook_id in module._forward_hooks_with_kwargs
        or hook_id in _hooks._global_forward_hooks_with_kwargs
    ):
        out = hook(module, args, kwargs, result)
    else:
        out = hook(module, args, result)
    return result if out is None else out
