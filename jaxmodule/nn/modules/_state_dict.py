"""`state_dict` / `load_state_dict` and their four hook kinds, as torch defines them.

One difference from torch, by contract: a load that fails changes nothing. Every cell written
during the load is recorded with its previous array (JAX arrays are immutable, so keeping the old
reference is a free snapshot), extra states are snapshotted, and all of it is restored before the
RuntimeError is raised.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from ... import _structure
from ..._tensor import as_array, is_torch_tensor
from ..parameter import Buffer, Parameter, _TensorCell, is_lazy
from ._hooks import RemovableHandle, add_hook

if TYPE_CHECKING:  # annotations only: module.py builds Module on this mixin
    from .module import Module

__all__ = ["StateDictMixin", "_IncompatibleKeys"]

_EXTRA_STATE_KEY_SUFFIX = "_extra_state"


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """`(missing_keys, unexpected_keys)` returned by `load_state_dict`. Mirrors torch's."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class _WrappedHook:
    """A load-state-dict pre-hook registered through the public API gets the module first."""

    def __init__(self, hook: Callable, module: Any = None) -> None:
        self.hook = hook
        self.module = module

    def __call__(self, *args: Any) -> Any:
        if self.module is not None:
            return self.hook(self.module, *args)
        return self.hook(*args)


# The undo log of the load in progress (None outside load_state_dict): ("cell", cell,
# (old_value, old_class)) entries (materializing a lazy cell changes its class) and ("extra",
# module, old_extra_state) entries.
_undo: list[tuple[str, Any, Any]] | None = None


@contextlib.contextmanager
def _transaction() -> Iterator[list[tuple[str, Any, Any]]]:
    global _undo
    log: list[tuple[str, Any, Any]] = []
    outer = _undo
    _undo = log
    try:
        yield log
    finally:
        _undo = outer


def _rollback(log: list[tuple[str, Any, Any]]) -> None:
    for kind, target, old in reversed(log):
        if kind == "cell":
            value, cls = old
            target.__class__ = cls  # a lazy cell materialized by the load becomes lazy again
            target._value = value
        else:
            target.set_extra_state(old)


def _is_loadable(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, _TensorCell)) or is_torch_tensor(x)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


class StateDictMixin:
    """The state_dict half of `Module` (mixed into it)."""

    # Set by Module.__init__; declared here for the methods below.
    _version: int
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Buffer | None]
    _non_persistent_buffers_set: set[str]
    _modules: dict[str, Module | None]
    _state_dict_pre_hooks: OrderedDict[int, Callable]
    _state_dict_hooks: OrderedDict[int, Callable]
    _load_state_dict_pre_hooks: OrderedDict[int, Callable]
    _load_state_dict_post_hooks: OrderedDict[int, Callable]

    # ---- saving --------------------------------------------------------------------------------
    def get_extra_state(self) -> Any:
        """Extra (non-array) state for the state_dict; override with `set_extra_state`."""
        raise RuntimeError(
            "Reached a code path in Module.get_extra_state() that should never be called. "
            "Please file an issue at https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml "
            "to report this bug."
        )

    def set_extra_state(self, state: Any) -> None:
        """Restore what `get_extra_state` returned; override together with it."""
        raise RuntimeError(
            "Reached a code path in Module.set_extra_state() that should never be called. "
            "Please file an issue at https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml "
            "to report this bug."
        )

    def _has_extra_state(self, method: str) -> bool:
        # overridden by a subclass (Module defines neither method; this mixin does)
        return getattr(type(self), method) is not getattr(StateDictMixin, method)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param._value
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf._value
        if self._has_extra_state("get_extra_state"):
            destination[prefix + _EXTRA_STATE_KEY_SUFFIX] = self.get_extra_state()

    def state_dict(
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """Every parameter and persistent buffer by dotted name, in torch's order and keys.

        Values are `jax.Array`s (or the `Parameter`/`Buffer` cells with `keep_vars=True`).
        Mirrors `torch.nn.Module.state_dict`.

        >>> from jaxmodule import nn
        >>> list(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).state_dict())
        ['0.weight', '0.bias', '2.weight', '2.bias']
        """
        if args:
            if len(args) > 3:
                raise TypeError(
                    f"state_dict() takes at most 3 positional arguments ({len(args)} given)"
                )
            destination = args[0]
            if len(args) > 1:
                prefix = args[1]
            if len(args) > 2:
                keep_vars = args[2]
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        local_metadata = dict(version=self._version)
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        for hook in self._state_dict_pre_hooks.values():
            hook(self, prefix, keep_vars)
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(
                    destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars
                )
        if not keep_vars and not prefix:
            _structure.export(destination.values())
        for hook in self._state_dict_hooks.values():
            result = hook(self, destination, prefix, local_metadata)
            if getattr(hook, "_from_public_api", False):
                if result is not None:
                    raise RuntimeError("state_dict post-hook must return None")
            elif result is not None:
                destination = result
        return destination

    # ---- loading -------------------------------------------------------------------------------
    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        """Load this module's own entries (not its children's). Mirrors torch's; override to
        convert old checkpoint layouts."""
        for hook in self._load_state_dict_pre_hooks.values():
            hook(
                state_dict,
                prefix,
                local_metadata,
                strict,
                missing_keys,
                unexpected_keys,
                error_msgs,
            )
        persistent_buffers = {
            k: v for k, v in self._buffers.items() if k not in self._non_persistent_buffers_set
        }
        local_state = {
            k: v
            for k, v in (*self._parameters.items(), *persistent_buffers.items())
            if v is not None
        }
        assign = local_metadata.get("assign_to_params_buffers", False)
        for name, cell in local_state.items():
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            if not _is_loadable(value):
                error_msgs.append(
                    f'While copying the parameter named "{key}", expected an array '
                    f"(jax.Array, numpy.ndarray or torch.Tensor) from checkpoint but received {type(value)}"
                )
                continue
            lazy = is_lazy(cell)
            if not lazy and len(cell.shape) == 0 and _shape(value) == (1,):
                value = value[0]
            if not lazy and _shape(value) != _shape(cell):
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {_shape(value)} from "
                    f"checkpoint, the shape in current model is {_shape(cell)}."
                )
                continue
            try:
                new = as_array(value)
                old, old_cls = cell._value, type(cell)
                if lazy:
                    cell.materialize(new.shape, dtype=new.dtype)
                elif not assign and new.dtype != old.dtype:
                    new = new.astype(old.dtype)
                if (
                    not lazy
                    and isinstance(old, jax.Array)
                    and isinstance(new, jax.Array)
                    and not isinstance(old, jax.core.Tracer)
                    and new.sharding != old.sharding
                ):
                    new = jax.device_put(new, old.sharding)
                elif isinstance(old, jax.ShapeDtypeStruct) and old.sharding is not None:
                    new = jax.device_put(
                        new, old.sharding
                    )  # a meta cell: onto its planned sharding
            except Exception as ex:  # noqa: BLE001 - reported with the key, like torch
                error_msgs.append(
                    f'While copying the parameter named "{key}", whose dimensions in the model are '
                    f"{_shape(cell)} and whose dimensions in the checkpoint are {_shape(value)}, "
                    f"an exception occurred : {ex.args}."
                )
                continue
            if _undo is not None:
                _undo.append(("cell", cell, (old, old_cls)))
            cell._value = new
        extra_key = prefix + _EXTRA_STATE_KEY_SUFFIX
        if self._has_extra_state("set_extra_state"):
            if extra_key in state_dict:
                if _undo is not None:
                    old_extra = (
                        self.get_extra_state() if self._has_extra_state("get_extra_state") else None
                    )
                    _undo.append(("extra", self, old_extra))
                self.set_extra_state(state_dict[extra_key])
            elif strict:
                missing_keys.append(extra_key)
        elif strict and extra_key in state_dict:
            unexpected_keys.append(extra_key)
        if strict:
            for key in state_dict:
                if key.startswith(prefix) and key != extra_key:
                    head = key[len(prefix) :].split(".", 1)
                    if len(head) > 1:
                        if head[0] not in self._modules:
                            unexpected_keys.append(key)
                    elif head[0] not in local_state:
                        unexpected_keys.append(key)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        """Copy parameters and buffers from `state_dict` (jax/numpy arrays or torch tensors).

        Mirrors `torch.nn.Module.load_state_dict`: returns `(missing_keys, unexpected_keys)`; with
        `strict=True` raises RuntimeError listing every missing key, unexpected key and shape
        mismatch at once. Differences: a failed load changes nothing (torch copies what matched
        before raising); `assign=True` keeps the incoming dtype but writes into the existing
        `Parameter` objects, so optimizers keep working; a meta parameter or buffer (built under
        `jaxmodule.device('meta')`) takes the loaded value, placed on its planned sharding if it
        has one (else where the value is: the default device for host data), where torch
        leaves it meta with a warning unless `assign=True`.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing_keys: list[str] = []
        unexpected_keys: list[str] = []
        error_msgs: list[str] = []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)
        if metadata is not None:
            state_dict._metadata = metadata  # type: ignore[attr-defined]

        def load(module: Any, local: Mapping[str, Any], prefix: str = "") -> None:
            local_metadata = {} if metadata is None else dict(metadata.get(prefix[:-1], {}))
            if assign:
                local_metadata["assign_to_params_buffers"] = assign
            module._load_from_state_dict(
                local, prefix, local_metadata, True, missing_keys, unexpected_keys, error_msgs
            )
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(
                        child,
                        {k: v for k, v in local.items() if k.startswith(child_prefix)},
                        child_prefix,
                    )
            incompatible = _IncompatibleKeys(missing_keys, unexpected_keys)
            for hook in module._load_state_dict_post_hooks.values():
                if hook(module, incompatible) is not None:
                    raise AssertionError(
                        "Hooks registered with ``register_load_state_dict_post_hook`` are not expected "
                        "to return new values, if incompatible_keys need to be modified, it should be done inplace."
                    )

        with _transaction() as log:
            try:
                load(self, state_dict)
            except BaseException:
                _rollback(log)
                raise
            if strict:
                if unexpected_keys:
                    error_msgs.insert(
                        0,
                        "Unexpected key(s) in state_dict: {}. ".format(
                            ", ".join(f'"{k}"' for k in unexpected_keys)
                        ),
                    )
                if missing_keys:
                    error_msgs.insert(
                        0,
                        "Missing key(s) in state_dict: {}. ".format(
                            ", ".join(f'"{k}"' for k in missing_keys)
                        ),
                    )
            if error_msgs:
                _rollback(log)
                raise RuntimeError(
                    "Error(s) in loading state_dict for {}:\n\t{}".format(
                        self.__class__.__name__, "\n\t".join(error_msgs)
                    )
                )
        if log:
            _structure.export(state_dict.values())  # the cells may now hold the caller's arrays
        return _IncompatibleKeys(missing_keys, unexpected_keys)

    # ---- hooks ---------------------------------------------------------------------------------
    def register_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, prefix, keep_vars)` before `state_dict` saves this module. Mirrors torch."""
        return add_hook(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, state_dict, prefix, local_metadata)` after; must return None. Mirrors torch."""
        hook._from_public_api = True  # type: ignore[attr-defined]
        return add_hook(self._state_dict_hooks, hook)

    def _register_state_dict_hook(self, hook: Callable) -> RemovableHandle:
        """torch's private variant: the hook may return a replacement state_dict."""
        if getattr(hook, "_from_public_api", False):
            raise RuntimeError(
                "Cannot register the same function as the state dict post hook that was "
                "previously registered via register_state_dict_post_hook"
            )
        return add_hook(self._state_dict_hooks, hook)

    def register_load_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)` before this module loads. Mirrors torch."""
        return self._register_load_state_dict_pre_hook(hook, with_module=True)

    def _register_load_state_dict_pre_hook(
        self, hook: Callable, with_module: bool = False
    ) -> RemovableHandle:
        return add_hook(
            self._load_state_dict_pre_hooks, _WrappedHook(hook, self if with_module else None)
        )

    def register_load_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, incompatible_keys)` after this module and its children loaded; may edit
        the key lists in place. Mirrors torch."""
        return add_hook(self._load_state_dict_post_hooks, hook)
