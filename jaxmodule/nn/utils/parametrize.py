"""Parametrizations: make `module.weight` a function of other parameters. Mirrors
`torch.nn.utils.parametrize`.

How it works (as in torch): registering a parametrization on `module.<name>` moves the original
array into `module.parametrizations.<name>.original` (or `original0`, `original1`, ... when the
parametrization's `right_inverse` returns several arrays), swaps the module's class for a
dynamically created subclass `Parametrized<Class>`, and puts a property `<name>` on that class
which evaluates the parametrization on every access. The state_dict keys are therefore torch's.

The dynamic subclass is registered as a JAX pytree like every Module subclass, so parametrized
modules work under `jax.jit`/`jax.grad`; the property is evaluated on the traced values.
Assigning an array to `module.<name>` calls `right_inverse` and writes the result into the
originals, as in torch.
"""

from __future__ import annotations

import collections.abc
import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeGuard

import jax
import numpy as np

from ... import _structure
from ..._grad_mode import no_grad
from ..._tensor import as_array
from ..modules import _pytree
from ..modules.container import ModuleDict, ModuleList
from ..modules.module import TRANSIENT_KEYS, Module
from ..parameter import Buffer, Parameter, _TensorCell

__all__ = [
    "cached",
    "ParametrizationList",
    "register_parametrization",
    "is_parametrized",
    "remove_parametrizations",
    "type_before_parametrizations",
    "transfer_parametrizations_and_params",
]

_cache_enabled = 0
_cache: dict[tuple[int, str], Any] = {}


@contextmanager
def cached() -> Iterator[None]:
    """Within this context, each parametrized tensor is computed once and reused. Mirrors torch."""
    global _cache, _cache_enabled
    _cache_enabled += 1
    try:
        yield
    finally:
        _cache_enabled -= 1
        if not _cache_enabled:
            _cache = {}


def _is_tensor(x: Any) -> TypeGuard[jax.Array | _TensorCell | np.ndarray]:
    """torch's `isinstance(x, Tensor)`: a jax array (tracers included) or a Parameter/Buffer."""
    return isinstance(x, (jax.Array, _TensorCell, np.ndarray))


def _array(x: Any) -> Any:
    return x._value if isinstance(x, _TensorCell) else x


def _register_parameter_or_buffer(module: Module, name: str, x: Any) -> None:
    if isinstance(x, Parameter):
        module.register_parameter(name, x)
    else:
        module.register_buffer(name, x)


def _maybe_set(dest: _TensorCell, src: Any) -> None:
    """torch's `dest.set_(src)`: the cell keeps its identity and takes `src`'s array."""
    dest._value = as_array(src)


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor and its original(s). Mirrors
    `torch.nn.utils.parametrize.ParametrizationList`.

    Args:
        modules: the parametrizations, applied in order.
        original: the Parameter or Buffer being parametrized.
        unsafe: skip the dtype/shape consistency checks.
    """

    def __init__(self, modules: Sequence[Module], original: Any, unsafe: bool = False) -> None:
        if len(modules) == 0:
            raise ValueError("ParametrizationList requires one or more modules.")
        super().__init__(modules)
        self.unsafe = unsafe
        original_shape, original_dtype = tuple(original.shape), original.dtype
        with no_grad():
            new = original
            for module in reversed(self):
                if hasattr(module, "right_inverse"):
                    try:
                        new = module.right_inverse(new)
                    except NotImplementedError:
                        pass
        if not _is_tensor(new) and not isinstance(new, Sequence):
            raise ValueError(
                "'right_inverse' must return a Tensor or a Sequence of tensors (list, tuple...). "
                f"Got {type(new).__name__}"
            )
        self.is_tensor = _is_tensor(new)
        self.ntensors = 1 if self.is_tensor else len(new)
        if _is_tensor(new):  # self.is_tensor, written so that mypy narrows `new`
            if original.dtype != new.dtype:
                raise ValueError(
                    "When `right_inverse` outputs one tensor, it may not change the dtype.\n"
                    f"original.dtype: {original.dtype}\nright_inverse(original).dtype: {new.dtype}"
                )
            if new is not original:
                _maybe_set(original, new)
            _register_parameter_or_buffer(self, "original", original)
        else:
            for i, originali in enumerate(new):
                if not _is_tensor(originali):
                    raise ValueError(
                        "'right_inverse' must return a Tensor or a Sequence of tensors (list, "
                        f"tuple...). Got element {i} of the sequence with type {type(originali).__name__}."
                    )
                if isinstance(original, Parameter):
                    originali = Parameter(_array(originali), original.requires_grad)
                else:
                    originali = _array(originali)
                _register_parameter_or_buffer(self, f"original{i}", originali)
        if not self.unsafe:
            z = self()
            if not _is_tensor(z):
                raise ValueError(f"A parametrization must return a tensor. Got {type(z).__name__}.")
            if z.dtype != original_dtype:
                raise ValueError(
                    "Registering a parametrization may not change the dtype of the tensor, unless "
                    f"`unsafe` flag is enabled.\nunparametrized dtype: {original_dtype}\n"
                    f"parametrized dtype: {z.dtype}"
                )
            if tuple(z.shape) != original_shape:
                raise ValueError(
                    "Registering a parametrization may not change the shape of the tensor, unless "
                    f"`unsafe` flag is enabled.\nunparametrized shape: {original_shape}\n"
                    f"parametrized shape: {tuple(z.shape)}"
                )

    def right_inverse(self, value: Any) -> None:
        """Write `value` into the original(s) through each parametrization's `right_inverse`."""
        with no_grad():
            for module in reversed(self):
                if not hasattr(module, "right_inverse"):
                    raise RuntimeError(
                        f"parametrization {type(module).__name__} does not implement right_inverse."
                    )
                value = module.right_inverse(value)
            if self.is_tensor:
                if not _is_tensor(value):
                    raise ValueError(
                        f"`right_inverse` should return a tensor. Got {type(value).__name__}"
                    )
                if value.dtype != self.original.dtype:
                    raise ValueError(
                        f"The tensor returned by `right_inverse` has dtype {value.dtype} while "
                        f"`original` has dtype {self.original.dtype}"
                    )
                _maybe_set(self.original, _array(value))
                return
            if not isinstance(value, collections.abc.Sequence):
                raise ValueError(
                    f"'right_inverse' must return a sequence of tensors. Got {type(value).__name__}."
                )
            if len(value) != self.ntensors:
                raise ValueError(
                    f"'right_inverse' must return a sequence of tensors of length {self.ntensors}. "
                    f"Got a sequence of length {len(value)}."
                )
            for i, tensor in enumerate(value):
                original_i = getattr(self, f"original{i}")
                if not _is_tensor(tensor):
                    raise ValueError(
                        "'right_inverse' must return a sequence of tensors or reference-type opaques. "
                        f"Got element {i} of type {type(tensor).__name__}."
                    )
                if original_i.dtype != tensor.dtype:
                    raise ValueError(
                        f"Tensor {i} returned by `right_inverse` has dtype {tensor.dtype} while "
                        f"`original{i}` has dtype {original_i.dtype}"
                    )
                _maybe_set(original_i, _array(tensor))

    def forward(self) -> Any:
        if self.is_tensor:
            x = self[0](self.original)
        else:
            x = self[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for module in list(self._modules.values())[1:]:
            x = module(x)
        return x


def _default_deepcopy(self: Module, memo: dict) -> Module:
    obj = memo.get(id(self))
    if obj is not None:
        return obj
    replica = self.__new__(self.__class__)
    memo[id(self)] = replica
    _pytree.materialize(self)
    state = {k: v for k, v in self.__dict__.items() if k not in TRANSIENT_KEYS}
    replica.__dict__.update(copy.deepcopy(state, memo))
    return replica


def _getstate(self: Module) -> Any:
    raise RuntimeError(
        "Serialization of parametrized modules is only supported through state_dict(). See:\n"
        "https://pytorch.org/tutorials/beginner/saving_loading_models.html"
        "#saving-loading-a-general-checkpoint-for-inference-and-or-resuming-training"
    )


def _inject_new_class(module: Module) -> None:
    """Swap `module`'s class for a fresh subclass `Parametrized<Class>` that can hold properties."""
    cls = module.__class__
    dct: dict[str, Any] = {"__getstate__": _getstate}
    if not hasattr(cls, "__deepcopy__"):
        dct["__deepcopy__"] = _default_deepcopy
    module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), dct)
    _structure.bump()


def _inject_property(module: Module, tensor_name: str) -> None:
    if hasattr(module, tensor_name):
        raise AssertionError(f"Module already has an attribute named '{tensor_name}'")

    def get_parametrized(self: Module) -> Any:
        parametrization = self.parametrizations[tensor_name]
        if not _cache_enabled:
            return parametrization()
        key = (id(self), tensor_name)
        tensor = _cache.get(key)
        if tensor is None:
            tensor = _cache[key] = parametrization()
        return tensor

    def set_original(self: Module, value: Any) -> None:
        self.parametrizations[tensor_name].right_inverse(value)

    setattr(module.__class__, tensor_name, property(get_parametrized, set_original))


def register_parametrization(
    module: Module, tensor_name: str, parametrization: Module, *, unsafe: bool = False
) -> Module:
    """Make `module.<tensor_name>` the output of `parametrization` applied to its original value.

    Mirrors `torch.nn.utils.parametrize.register_parametrization`: the original moves to
    `module.parametrizations.<tensor_name>.original` (or `original0`, ... if `right_inverse`
    returns a sequence); registering again on the same name chains parametrizations.

    Args:
        module: the module holding the parameter or buffer.
        tensor_name: the parameter or buffer's name.
        parametrization: a Module whose `forward` maps the original(s) to the tensor; it may
            define `right_inverse`.
        unsafe: skip the checks that the parametrization keeps dtype and shape.

    >>> import jax.numpy as jnp
    >>> from jaxmodule import nn
    >>> class Symmetric(nn.Module):
    ...     def forward(self, x):
    ...         return jnp.triu(x) + jnp.triu(x, 1).T
    >>> m = register_parametrization(nn.Linear(3, 3), "weight", Symmetric())
    >>> bool((m.weight == m.weight.T).all()), list(m.state_dict())
    (True, ['bias', 'parametrizations.weight.original'])
    """
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            y = getattr(module, tensor_name)
            x = parametrization(y)
            if not _is_tensor(x):
                raise ValueError(f"A parametrization must return a tensor. Got {type(x).__name__}.")
            if x.dtype != y.dtype:
                raise ValueError(
                    "Registering a parametrization may not change the dtype of the tensor, unless the "
                    f"`unsafe` flag is enabled.\nmodule.{tensor_name}.dtype: {y.dtype}\n"
                    f"parametrization(module.{tensor_name}).dtype: {x.dtype}"
                )
            if tuple(x.shape) != tuple(y.shape):
                raise ValueError(
                    "Registering a parametrization may not change the shape of the tensor, unless the "
                    f"`unsafe` flag is enabled.\nmodule.{tensor_name}.shape: {tuple(y.shape)}\n"
                    f"parametrization(module.{tensor_name}).shape: {tuple(x.shape)}"
                )
            if hasattr(parametrization, "right_inverse"):
                try:
                    z = parametrization.right_inverse(x)
                except NotImplementedError:
                    pass
                else:
                    if not _is_tensor(z):
                        raise ValueError(
                            f"parametrization.right_inverse must return a tensor. Got: {type(z).__name__}"
                        )
                    if z.dtype != y.dtype:
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have the same "
                            f"dtype as module.{tensor_name}, unless the `unsafe` flag is enabled.\n"
                            f"module.{tensor_name}.dtype: {y.dtype}\nreturned dtype: {z.dtype}"
                        )
                    if tuple(z.shape) != tuple(y.shape):
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have the same "
                            f"shape as module.{tensor_name}, unless the `unsafe` flag is enabled.\n"
                            f"module.{tensor_name}.shape: {tuple(y.shape)}\n"
                            f"returned shape: {tuple(z.shape)}"
                        )
        plist = module.parametrizations[tensor_name]
        plist.append(parametrization)
        plist.unsafe |= unsafe
    elif tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        plist = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            _inject_new_class(module)
            module.parametrizations = ModuleDict()
        _inject_property(module, tensor_name)
        module.parametrizations[tensor_name] = plist
    else:
        raise ValueError(
            f"Module '{module}' does not have a parameter, a buffer, or a parametrized element "
            f"with name '{tensor_name}'"
        )
    return module


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """True if `module` has any parametrization (or one on `tensor_name`). Mirrors torch."""
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is None or not isinstance(parametrizations, ModuleDict):
        return False
    if tensor_name is None:
        return len(parametrizations) > 0
    return tensor_name in parametrizations


def remove_parametrizations(
    module: Module, tensor_name: str, leave_parametrized: bool = True
) -> Module:
    """Remove the parametrizations on `module.<tensor_name>`. Mirrors torch.

    Args:
        module: the parametrized module.
        tensor_name: the parametrized name.
        leave_parametrized: keep the current parametrized value (True) or restore the original
            (False, only possible when there is a single original).

    The restored entry is a Parameter if the original(s) were trainable Parameters, else a
    buffer (torch decides by the computed tensor's `requires_grad`).
    """
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with no_grad():
                t = getattr(module, tensor_name)
            _maybe_set(original, _array(t))
    elif leave_parametrized:
        with no_grad():
            t = _array(getattr(module, tensor_name))
        trainable = any(
            isinstance(p, Parameter) and p.requires_grad for p in plist._parameters.values()
        )
        original = Parameter(t) if trainable else Buffer(t)
    else:
        raise ValueError(
            "Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is parametrized "
            "in terms of a sequence of tensors."
        )
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    _register_parameter_or_buffer(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = module.__class__.__bases__[0]
        _structure.bump()
    return module


def type_before_parametrizations(module: Module) -> type:
    """The module's class before parametrizations were registered. Mirrors torch."""
    return module.__class__.__bases__[0] if is_parametrized(module) else type(module)


def transfer_parametrizations_and_params(
    from_module: Module, to_module: Module, tensor_name: str | None = None
) -> Module:
    """Copy the parametrizations (and share the originals) of `from_module` onto `to_module`.

    Mirrors torch; `tensor_name=None` transfers every parametrized name.
    """
    if not is_parametrized(from_module):
        return to_module
    names = list(from_module.parametrizations) if tensor_name is None else [tensor_name]
    for name in names:
        if not hasattr(to_module, name):
            setattr(to_module, name, Parameter(_array(getattr(from_module, name))))
        for param_func in from_module.parametrizations[name]:
            register_parametrization(to_module, name, param_func)
        src = from_module.parametrizations[name]
        dst = to_module.parametrizations[name]
        if hasattr(src, "original"):
            dst.original = src.original
        else:
            num = 0
            while hasattr(src, f"original{num}"):
                setattr(dst, f"original{num}", getattr(src, f"original{num}"))
                num += 1
    return to_module
